"""The kernel's seams (issue #16) stay where they were put: the strategy context documented
and complete, no built-in reaching past it, node.py a dispatcher rather than the whole kernel."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from gossipmq.core.context import CONTEXT_API, StrategyContext
from gossipmq.core.node import Node
from tests.helpers import config, registry

ROOT = Path(__file__).resolve().parents[1]


def a_context() -> StrategyContext:
    return Node.from_config(config({"node": {"id": "n1"}}), registry(), incarnation=1).ctx


def test_context_api_is_exactly_the_public_face_of_strategy_context() -> None:
    ctx = a_context()
    public = {name for name in dir(ctx) if not name.startswith("_")}
    assert public == set(CONTEXT_API), public ^ set(CONTEXT_API)


def test_docs_plugins_md_lists_every_context_member_in_order() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## What a strategy gets"):text.index("## Hook reference")]
    listed = re.findall(r"`ctx\.([a-z_]+)", section)
    assert set(listed) == set(CONTEXT_API), set(listed) ^ set(CONTEXT_API)
    first = [name for i, name in enumerate(listed) if name not in listed[:i]]
    assert first == list(CONTEXT_API), "docs/plugins.md lists the context in CONTEXT_API's order"


def test_no_built_in_strategy_reaches_past_its_context() -> None:
    """getattr/hasattr on the context or the node, or a private attribute of either, would be a
    back door a third-party plugin does not have."""
    offenders = []
    for path in [*sorted((ROOT / "plugins").glob("*.py")), ROOT / "core" / "anti_entropy.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
                target = node.args[0]
                if isinstance(target, ast.Name) and target.id in ("ctx", "node"):
                    offenders.append(f"{path.name}:{node.lineno} {node.func.id}({target.id}, ...)")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and isinstance(node.value, ast.Name) and node.value.id == "ctx":
                offenders.append(f"{path.name}:{node.lineno} ctx.{node.attr}")
    assert not offenders, offenders


def test_node_py_stays_a_dispatcher() -> None:
    """Inputs -> effects, the dispatch tables and the outbox; mechanics live in cluster.py,
    replication.py, convergence.py (docs/architecture.md)."""
    lines = (ROOT / "core" / "node.py").read_text().count("\n")
    assert lines < 300, f"core/node.py has {lines} lines: move mechanics to their part"

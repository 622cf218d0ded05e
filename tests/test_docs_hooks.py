"""Every hook, with its exact signature, is documented in docs/plugins.md (datasette's rule)."""
from __future__ import annotations

import inspect
from pathlib import Path

from gossipmq.core import hookspecs

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def test_every_hook_is_documented_with_its_signature() -> None:
    hooks = [name for name in dir(hookspecs) if name.startswith("gossipmq_")]
    assert hooks
    for name in hooks:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"{name}({params})" in DOC, f"docs/plugins.md lacks `{name}({params})`"

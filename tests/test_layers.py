"""The package's layers, bottom to top: core (the sans-I/O kernel) < plugins (strategies) <
transports (runtimes) < the top package (Agent, CLI). A module may import its own layer and the
ones below, never above: the kernel stays usable without any runtime, and a plugin never reaches
into a runtime. Checked over the AST, so imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"core": 0, "plugins": 1, "transports": 2, "gossipmq": 3}
PACKAGE_OF = {"gossipmq.core": "core", "gossipmq.plugins": "plugins", "gossipmq.transports": "transports"}


def _layer_of_module(name: str) -> str | None:
    if not (name == "gossipmq" or name.startswith("gossipmq.")):
        return None
    for prefix, folder in PACKAGE_OF.items():
        if name == prefix or name.startswith(prefix + "."):
            return folder
    return "gossipmq"


def _imports(path: Path, package: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the module's package
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


def test_no_module_imports_a_layer_above_its_own() -> None:
    violations = []
    for folder, rank in LAYERS.items():
        dotted = "gossipmq" if folder == "gossipmq" else f"gossipmq.{folder}"
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            package = ".".join([dotted, *rel.parts[:-1]])
            for name in _imports(path, package):
                layer = _layer_of_module(name)
                if layer is not None and LAYERS[layer] > rank:
                    violations.append(f"{folder}/{rel}.py imports {name} ({layer} is above {folder})")
    assert not violations, "\n".join(violations)

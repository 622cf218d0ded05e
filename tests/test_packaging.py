"""The install mapping lists every sub-package, and the built-ins use the public entry-point group."""
from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found == listed, f"pyproject packages {sorted(listed)} != folders {sorted(found)}"


def test_builtins_are_entry_points_of_the_gossipmq_group() -> None:
    """Every built-in strategy module registers through the public entry-point group."""
    modules = {f"gossipmq.plugins.{p.stem}" for p in (ROOT / "plugins").glob("*.py")
               if p.stem != "__init__" and "gossipmq_register_strategies" in p.read_text()}
    declared = set(PYPROJECT["project"]["entry-points"]["gossipmq"].values())
    assert modules == declared
    installed = {ep.value for ep in importlib.metadata.entry_points(group="gossipmq")}
    assert declared <= installed, "reinstall with `pip install -e .` after adding a built-in"

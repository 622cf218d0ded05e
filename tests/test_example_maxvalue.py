"""The example third-party resolver (examples/gossipmq-maxvalue) is selectable from TOML and
settles concurrent writes by value, not by clock."""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from gossipmq.core.config import parse_config
from gossipmq.core.plugins import build_registry, make_plugin_manager, register_plugin
from gossipmq.core.resolution import Op
from gossipmq.transports.memory import MemoryNetwork, checksums, make_nodes
from tests.helpers import FAST

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gossipmq-maxvalue"


def _plugin():  # type: ignore[no-untyped-def]
    if "gossipmq_maxvalue" in sys.modules:
        return sys.modules["gossipmq_maxvalue"]
    spec = importlib.util.spec_from_file_location("gossipmq_maxvalue", EXAMPLE / "gossipmq_maxvalue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gossipmq_maxvalue"] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_declares_its_entry_point() -> None:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["gossipmq"] == {"maxvalue": "gossipmq_maxvalue"}


def test_max_value_is_chosen_from_toml_and_the_largest_concurrent_write_wins() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    if pm.get_plugin("gossipmq_maxvalue") is None:
        register_plugin(pm, _plugin(), name="gossipmq_maxvalue")
    registry = build_registry(pm)
    doc = {**FAST, "conflict_resolution": {"strategy": "lww", "rules": [
        {"prefix": "hwm/", "resolver": "max_value", "allow_decrease": False}]}}
    cfg = parse_config(doc, registry)
    net = MemoryNetwork(seed=3, encode=True)
    addrs = [net.add(node).address for node in make_nodes(cfg, registry, 3)]
    assert net.wait_for(lambda: all(len(n.members.reachable_ids()) == 2 for n in net.nodes.values()), 10)
    net.partition([addrs[0]], [addrs[1]], [addrs[2]])
    for i, value in ((0, 7), (1, 42), (2, 5)):          # n2's 5 is written last (largest HLC)
        net.run_for(0.01)
        _, effects = net.nodes[addrs[i]].mutate(net.now, "hwm/offset", Op("put", value))
        net._apply(addrs[i], effects)
    net.heal()
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1, 10)
    assert {net.nodes[a].read("hwm/offset").value for a in addrs} == {42}
    with pytest.raises(ValueError, match="would not win"):
        net.nodes[addrs[0]].mutate(net.now, "hwm/offset", Op("put", 3))
    with pytest.raises(ValueError, match="only `put NUMBER`"):
        net.nodes[addrs[0]].mutate(net.now, "hwm/offset", Op("put", "many"))

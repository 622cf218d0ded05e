"""Vivaldi coordinates in the kernel: SWIM pings and acks carry them, direct acks time the
round trip, and the estimates serve `gossipctl rtt`, the `nearest` selector and Plumtree."""
from __future__ import annotations

import math
from typing import Any

import pytest

from gossipmq.core.config import parse_config
from gossipmq.core.vivaldi import Coordinate
from gossipmq.transports.memory import MemoryNetwork, make_nodes

from .helpers import registry
from .sim_cluster import SWIM_FAST

ZONES = 3
INTRA, CROSS = 0.001, 0.010     # one-way seconds


def zone(address: str) -> int:
    return int(address.rsplit("n", 1)[1]) % ZONES


def link_delay(src: str, dst: str) -> float:
    return INTRA if zone(src) == zone(dst) else CROSS


def zoned_cluster(n: int, **tables: dict[str, Any]) -> tuple[MemoryNetwork, list[str]]:
    doc: dict[str, Any] = {"failure_detection": {**SWIM_FAST, "probe_timeout_ms": 100},
                           "dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200}}
    doc.update(tables)
    cfg = parse_config(doc, registry())
    net = MemoryNetwork(seed=3, encode=True, delay=link_delay)
    nodes = make_nodes(cfg, registry(), n, seed=3, prefill=True)
    return net, [net.add(node).address for node in nodes]


def test_probes_train_coordinates_that_tell_near_from_far() -> None:
    net, addrs = zoned_cluster(24)
    net.run_for(90.0)
    node = net.nodes[addrs[0]]
    assert node.stats["swim.rtt_samples"] > 200
    near = [node.coordinates.rtt(f"n{i}") for i in range(3, 24, 3)]
    far = [node.coordinates.rtt(f"n{i}") for i in range(1, 24) if i % 3]
    assert all(r is not None for r in near + far)
    assert max(near) < 0.008 < 0.012 < min(far), (near, far)   # RTTs: 2 ms vs 20 ms
    est = node.coordinates.estimate("n0", "n4", "n7")          # two other nodes, same zone
    assert est["rtt_ms"] < 8 and est["a"] == "n4" and est["b"] == "n7"
    assert 12 < node.coordinates.estimate("n0", "n1")["rtt_ms"] < 30
    with pytest.raises(ValueError, match="no network coordinate known for 'ghost'"):
        node.coordinates.estimate("n0", "ghost")


def test_nearest_selector_prefers_the_own_zone_once_coordinates_settle() -> None:
    net, addrs = zoned_cluster(24, peer_selection={"strategy": "nearest", "random_share": 0.0})
    net.run_for(60.0)
    node = net.nodes[addrs[0]]
    picks = node.ctx.select_peers(4)
    assert len(picks) == 4 and all(int(p[1:]) % ZONES == 0 for p in picks), picks


def test_hostile_coordinates_are_refused_without_moving_ours() -> None:
    net, addrs = zoned_cluster(4)
    node = net.nodes[addrs[0]]
    before = node.coordinates.mine
    bad = Coordinate(vec=(math.inf,) + (0.0,) * 7, error=0.5, adjustment=0.0, height=0.001)
    assert node.coordinates.observe("n1", bad, 0.01) == "bad coordinate"
    assert node.coordinates.learn("n1", Coordinate((0.0,) * 3, 0.5, 0.0, 0.001)) is False
    assert node.coordinates.mine == before and node.coordinates.refused == 2


def test_swim_can_leave_coordinates_out() -> None:
    net, addrs = zoned_cluster(6, failure_detection={**SWIM_FAST, "coordinates": False})
    net.run_for(10.0)
    assert all(not n.coordinates.peers for n in net.nodes.values())

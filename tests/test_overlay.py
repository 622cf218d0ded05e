"""`[membership] overlay = "hyparview"` in the kernel: the member table is the active view,
joins walk, a dead neighbour is replaced from the passive view, claims stay local. Real kernels
and plugins on the in-memory network (virtual time, encoded frames)."""
from __future__ import annotations

from typing import Any

import pytest

from gossipmq.core.config import Config, parse_config
from gossipmq.core.effects import MemberChanged
from gossipmq.core.overlay import FullMesh, HyParViewOverlay
from gossipmq.transports.control import members_view
from gossipmq.transports.memory import MemoryNetwork, checksums, make_nodes

from .helpers import config, registry
from .sim_cluster import SWIM_FAST

HV = {"overlay": "hyparview", "active_size": 4, "passive_size": 12, "shuffle_interval_ms": 1000,
      "neighbor_request_timeout_ms": 1500, "size_probe_interval_ms": 0}


def hv_cluster(n: int, *, seed: int = 1, membership: dict[str, Any] | None = None,
               overrides: dict[str, Any] | None = None, **net_kw: Any) -> tuple[MemoryNetwork, list[str]]:
    """n nodes joining through n0 and n1, SWIM on the active view."""
    cfg = hv_config(membership, overrides)
    net = MemoryNetwork(seed=seed, encode=True, **net_kw)
    nodes = make_nodes(cfg, registry(), n, seed=seed)
    for node in nodes[2:]:
        node.cluster.seeds.append(nodes[1].address)
    addrs = [net.add(node).address for node in nodes]
    return net, addrs


def hv_config(membership: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    doc = {"membership": {**HV, **(membership or {})}, "failure_detection": dict(SWIM_FAST),
           "dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200}, **(overrides or {})}
    return parse_config(doc, registry())


def overlays(net: MemoryNetwork) -> dict[str, HyParViewOverlay]:
    return {node.node_id: node.cluster.overlay for node in net.nodes.values()}  # type: ignore[misc]


def connected(net: MemoryNetwork) -> bool:
    views = {node.node_id: set(node.members.reachable_ids()) for node in net.nodes.values()}
    start = next(iter(views))
    seen, stack = {start}, [start]
    while stack:
        for peer in views[stack.pop()]:
            if peer in views and peer not in seen:
                seen.add(peer)
                stack.append(peer)
    return len(seen) == len(views)


def symmetric(net: MemoryNetwork) -> bool:
    views = {node.node_id: set(node.members.reachable_ids()) for node in net.nodes.values()}
    return all(me in views[p] for me, peers in views.items() for p in peers if p in views)


def test_full_is_the_default_and_unchanged() -> None:
    node = make_nodes(config(), registry(), 1)[0]
    assert isinstance(node.cluster.overlay, FullMesh) and not node.cluster.overlay.partial
    assert node.cluster.overlay.describe() == {"overlay": "full", "size_estimate": 1.0}


def test_membership_keys_reach_hyparview() -> None:
    node = make_nodes(hv_config({"swap_rate": 0, "swap_memory": 12, "escalate_at": 1}), registry(), 1)[0]
    opts = node.cluster.overlay.hv.options    # type: ignore[attr-defined]
    assert (opts.swap_rate, opts.swap_memory, opts.escalate_at, opts.active_size) == (0.0, 12, 1, 4)
    defaults = make_nodes(hv_config(), registry(), 1)[0].cluster.overlay.hv.options  # type: ignore[attr-defined]
    assert (defaults.swap_rate, defaults.swap_memory) == (4.0, 30)
    counters = node.cluster.overlay.describe()["counters"]    # what `gossipctl status` shows operators
    assert {"swaps_asked", "swaps_taken", "heal_disconnects"} <= set(counters)


def test_nodes_join_into_a_connected_symmetric_overlay_whose_tables_are_the_active_views() -> None:
    net, addrs = hv_cluster(24)
    assert net.wait_for(lambda: connected(net) and symmetric(net)
                        and all(len(n.members.reachable_ids()) >= 2 for n in net.nodes.values()), 20.0)
    net.run_for(5.0)
    for node_id, overlay in overlays(net).items():
        table = net.nodes[f"mem://{node_id}"].members
        assert set(table.reachable_ids()) == set(overlay.active) == {p.id for p in overlay.hv.active}
        assert len(table) <= 4, "the member table holds the active view only"
        assert not {p.id for p in overlay.hv.passive} & set(overlay.active)
        for member_id in table.reachable_ids():
            assert table.get(member_id).tags == {}   # nobody set tags; but the claim arrived
    assert connected(net) and symmetric(net)
    # every node is in somebody's view, and tags ride with the links
    assert all(n.cluster.joined for n in net.nodes.values())


def test_writes_reach_everyone_over_the_active_views_and_stores_converge() -> None:
    net, addrs = hv_cluster(20, overrides={"dissemination": {"strategy": "hybrid", "fanout": 2}})
    assert net.wait_for(lambda: connected(net), 20.0)
    for i in range(5):
        net.put(addrs[i * 3], f"k{i}", i)
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1
                        and all(n.get("k4") is not None for n in net.nodes.values()), 10.0)


def test_a_dead_neighbour_is_replaced_from_the_passive_view_and_claims_stay_local() -> None:
    net, addrs = hv_cluster(30, seed=3)
    assert net.wait_for(lambda: connected(net) and symmetric(net), 30.0)
    net.run_for(5.0)
    victim = "n7"
    holders = [n for n in net.nodes.values() if victim in n.members.reachable_ids()]
    assert holders
    net.crash(f"mem://{victim}")
    # the neighbours' SWIM declares it dead; each then fills the slot from its passive view
    assert net.wait_for(lambda: all(n.members.get(victim) is None or n.members.get(victim).status == "dead"
                                    for n in holders), 30.0)
    assert net.wait_for(lambda: all(victim not in n.cluster.overlay.active for n in net.nodes.values()), 10.0)
    net.run_for(5.0)
    assert connected(net) and symmetric(net)
    sizes = [len(n.members.reachable_ids()) for n in net.nodes.values()]
    assert min(sizes) >= 2 and sum(sizes) / len(sizes) >= 3.0
    # only the victim's neighbours (and a few that heard it from them) ever declared it failed
    told = sum(1 for events in net.events.values() for e in events
               if isinstance(e, MemberChanged) and e.member["id"] == victim and e.reason == "failed")
    assert told <= len(holders) + 4, f"{told} nodes declared {victim} failed; it had {len(holders)} neighbours"


def test_transport_refusals_replace_a_crashed_neighbour_without_a_detector() -> None:
    net, addrs = hv_cluster(20, seed=5, overrides={"failure_detection": {"strategy": "static"},
                                                   "dissemination": {"strategy": "hybrid", "fanout": 4}},
                            refuse=True)
    assert net.wait_for(lambda: connected(net), 20.0)
    net.run_for(3.0)
    for address in addrs[10:15]:
        net.crash(address)
    crashed = {f"n{i}" for i in range(10, 15)}
    assert net.wait_for(lambda: all(not (set(n.members.reachable_ids()) & crashed) for n in net.nodes.values()),
                        10.0)
    net.run_for(3.0)
    assert connected(net)
    net.put(addrs[0], "after", 1)
    assert net.wait_for(lambda: all(n.get("after") is not None for n in net.nodes.values()), 5.0)


def test_members_view_shows_active_and_passive_views_and_the_size_estimate() -> None:
    net, addrs = hv_cluster(16, membership={"size_probe_interval_ms": 500})
    assert net.wait_for(lambda: connected(net), 20.0)
    net.run_for(20.0)
    node = net.nodes[addrs[3]]
    rows = members_view(node)
    assert rows[0]["self"] and rows[0]["view"] == "self" and rows[0]["overlay"] == "hyparview"
    active = [r for r in rows if r.get("view") == "active"]
    passive = [r for r in rows if r.get("view") == "passive"]
    assert {r["id"] for r in active} == set(node.members.reachable_ids())
    assert passive and all(r["status"] == "passive" for r in passive)
    assert not {r["id"] for r in active} & {r["id"] for r in passive}
    estimates = [n.cluster.overlay.size_estimate() for n in net.nodes.values()]
    known = [e for e in estimates if e is not None]
    assert len(known) >= 8, "tours and shuffles spread an estimate"
    mean = sum(known) / len(known)
    assert 8 <= mean <= 32, f"size estimate {mean:.1f} for 16 nodes"
    assert rows[0]["size_estimate"] == node.cluster.overlay.describe()["size_estimate"]


def test_graceful_leave_is_replaced_and_a_restarted_node_rejoins() -> None:
    net, addrs = hv_cluster(16, seed=9)
    assert net.wait_for(lambda: connected(net), 20.0)
    net.run_for(3.0)
    net.leave(addrs[6])
    del net.nodes[addrs[6]]
    assert net.wait_for(lambda: all("n6" not in n.members.reachable_ids() for n in net.nodes.values()), 10.0)
    net.run_for(5.0)
    assert connected(net)
    # n6 comes back (a new life: a higher incarnation) through the same seed
    cfg = hv_config()
    back = make_nodes(cfg, registry(), 7, seed=77, incarnation=5)[6]
    back.cluster.seeds.append(addrs[1])
    net.add(back)
    assert net.wait_for(lambda: len(back.members.reachable_ids()) >= 2 and connected(net) and symmetric(net), 20.0)


@pytest.mark.parametrize("detector", ["swim", "phi"])
def test_detectors_run_on_the_active_view(detector: str) -> None:
    fd = dict(SWIM_FAST) if detector == "swim" else {"strategy": "phi", "interval_ms": 200}
    net, addrs = hv_cluster(12, overrides={"failure_detection": fd,
                                           "dissemination": {"strategy": "hybrid", "fanout": 3}})
    assert net.wait_for(lambda: connected(net), 20.0)
    net.run_for(10.0)
    wrong = [e for events in net.events.values() for e in events
             if isinstance(e, MemberChanged) and e.reason in ("suspected", "failed")]
    assert wrong == [], "no neighbour may be suspected on a loss-free network"

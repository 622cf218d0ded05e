"""Tombstone garbage collection: purged once causally stable; or after tombstone_ttl, with the
documented trade-off that a replica which missed the delete resurrects the data."""
from __future__ import annotations

from typing import Any

from gossipmq.core.gc import TombstoneCollector, frontier
from gossipmq.core.messages import Entry
from gossipmq.core.resolution import Op
from gossipmq.transports.memory import checksums
from tests.helpers import memory_cluster

RULES = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "set/", "resolver": "crdt", "type": "orset"},
    {"prefix": "mv/", "resolver": "multi_value"}]}}


def agree(net: Any) -> bool:
    return len(set(checksums(net).values())) == 1


def with_storage(overrides: dict[str, Any], **storage: Any) -> dict[str, Any]:
    return {**overrides, "storage": storage}


def test_tombstones_and_emptied_sets_are_purged_once_every_live_member_has_seen_them() -> None:
    net, addrs = memory_cluster(4, with_storage(RULES, tombstone_ttl_ms=3_600_000, gc_interval_ms=200))
    a = net.nodes[addrs[0]]
    net.put(addrs[0], "plain", 1)
    e, eff = a.mutate(net.now, "set/s", Op("sadd", "x"))
    net._apply(addrs[0], eff)
    e, eff = net.nodes[addrs[1]].mutate(net.now, "mv/m", Op("put", "v"))
    net._apply(addrs[1], eff)
    assert net.wait_for(lambda: agree(net) and all(n.store.is_live("set/s") for n in net.nodes.values()), 5)
    net.delete(addrs[2], "plain")
    e, eff = net.nodes[addrs[3]].mutate(net.now, "set/s", Op("srem", "x"))   # removed tag: no tombstone left
    net._apply(addrs[3], eff)
    e, eff = net.nodes[addrs[3]].mutate(net.now, "mv/m", Op("delete"))
    net._apply(addrs[3], eff)
    keys = ("plain", "set/s", "mv/m")
    assert all(n.store.versions(k) for n in net.nodes.values() for k in keys)   # tombstones exist first
    assert net.wait_for(lambda: all(not n.store.versions(k) for n in net.nodes.values() for k in keys), 10)
    assert agree(net)
    stats = [n.replication.gc.stats for n in net.nodes.values()]
    assert all(s.get("gc_purged_stable") == 3 and not s.get("gc_purged_ttl") for s in stats)
    # a live member's silence blocks stability (next test); a late copy is ignored, not resurrected
    stale = Entry("plain", 1, False, a.origin, 1 << 20 | 1, 1, {a.origin: 1 << 20 | 1})
    assert a.replication.apply_entry(stale) is False and a.stats["entries_purged"] == 1


def test_ttl_purges_without_confirmation_and_a_returning_replica_resurrects() -> None:
    """n3 is cut off (but not declared dead) when k is deleted: stability never comes, the TTL
    purges. When n3 returns, its old version comes back: the documented trade-off. With Merkle
    anti-entropy on, it comes back everywhere, so the cluster still converges."""
    overrides = with_storage({"failure_detection": {"suspect_after_ms": 60_000, "dead_after_ms": 120_000},
                              "anti_entropy": {"interval_ms": 500}}, tombstone_ttl_ms=3_000, gc_interval_ms=200)
    net, addrs = memory_cluster(4, overrides)
    net.put(addrs[0], "k", "old")
    assert net.wait_for(lambda: agree(net) and all(n.get("k") for n in net.nodes.values()), 5)
    net.partition(addrs[:3], addrs[3:])
    net.delete(addrs[1], "k")
    net.run_for(2.0)
    assert all(net.nodes[a].store.versions("k") for a in addrs[:3]), "purged before the TTL without n3's digest"
    assert net.wait_for(lambda: all(not net.nodes[a].store.versions("k") for a in addrs[:3]), 5)
    assert all(net.nodes[a].replication.gc.stats["gc_purged_ttl"] == 1 for a in addrs[:3])
    assert net.nodes[addrs[3]].get("k").value == "old"     # n3 never saw the delete
    net.heal()
    assert net.wait_for(lambda: agree(net), 60)
    assert all(n.get("k") is not None and n.get("k").value == "old" for n in net.nodes.values())


def test_two_phase_stability_waits_for_concurrent_writes_to_be_covered() -> None:
    gc = TombstoneCollector(ttl=1000)
    tomb = Entry("k", None, True, "a", 5, 50, {"a": 5, "b": 2})
    gc.touch("k", 0.0, dead=True)
    versions = {"k": (tomb,)}
    assert frontier(versions["k"]) == {"a": 5, "b": 2}
    # b has not seen a:5 yet: nothing
    assert gc.due(1.0, versions.__getitem__, [{"a": 5, "b": 2}, {"a": 4, "b": 9}]) == []
    # everyone has seen it; b had written up to 9 meanwhile (maybe concurrently): snapshot D
    assert gc.due(2.0, versions.__getitem__, [{"a": 5, "b": 2}, {"a": 5, "b": 9}]) == []
    assert gc.candidates["k"].snapshot == {"a": 5, "b": 9}
    # a has not yet covered b:9 -> still waiting; then it has -> purge
    assert gc.due(3.0, versions.__getitem__, [{"a": 5, "b": 8}, {"a": 5, "b": 9}]) == []
    assert gc.due(4.0, versions.__getitem__, [{"a": 5, "b": 9}, {"a": 5, "b": 9}]) == [("k", "stable")]
    # unknown digest of a live member: only the TTL applies
    gc.touch("j", 0.0, dead=True)
    assert gc.due(5.0, lambda k: (tomb,), None) == []
    assert sorted(gc.due(1000.0, lambda k: (tomb,), None)) == [("j", "ttl"), ("k", "ttl")]


def test_context_entries_of_departed_writers_are_compacted_once_stable() -> None:
    """n2 writes, everyone sees it, n2 leaves: the next lww write drops n2 from its context
    (every live member has seen n2's dots, and n2 will not write again under this id... or if it
    does, its new dots are above every live digest, so they are still ordered correctly)."""
    net, addrs = memory_cluster(3, with_storage({}, gc_interval_ms=0))
    net.put(addrs[2], "k", "from n2")
    assert net.wait_for(lambda: agree(net) and net.nodes[addrs[1]].get("k") is not None, 5)
    net.put(addrs[1], "k", "from n1")           # context now {n1, n2}
    assert net.wait_for(lambda: agree(net), 5)
    origin = {i: net.nodes[addrs[i]].origin for i in range(3)}   # "n1/<life>": each node's dots
    assert set(net.nodes[addrs[0]].store.get("k").vv) == {origin[1], origin[2]}
    net.leave(addrs[2])
    net.crash(addrs[2])
    n0 = net.nodes[addrs[0]]
    assert net.wait_for(lambda: "n2" not in n0.members.reachable_ids() and "n1" in n0.replication.peer_digests, 5)
    net.run_for(1.0)                            # fresh digests from n1
    net.put(addrs[0], "k", "from n0")
    assert set(n0.store.get("k").vv) == {origin[0], origin[1]} and n0.stats["context_compacted"] == 1
    assert net.wait_for(lambda: agree(net), 5)


def test_a_member_declared_dead_still_holds_its_state_so_stability_waits_for_it() -> None:
    """The chaos run's resurrected OR-Set member: n3 is cut off while x is removed, and the
    others declare it dead. Dead is not gone - a partitioned or paused member comes back with
    the add it holds - so the emptied set must not be purged on the others' word alone: once
    n3 is back, the remove covers its add everywhere and x stays removed."""
    overrides = with_storage({**RULES, "anti_entropy": {"interval_ms": 500},
                              "gossip": {"reap_after_ms": 600_000}},
                             tombstone_ttl_ms=3_600_000, gc_interval_ms=200)
    net, addrs = memory_cluster(4, overrides)
    e, eff = net.nodes[addrs[0]].mutate(net.now, "set/s", Op("sadd", "x"))
    net._apply(addrs[0], eff)
    assert net.wait_for(lambda: all(n.store.is_live("set/s") for n in net.nodes.values()), 5)
    net.partition(addrs[:3], addrs[3:])
    e, eff = net.nodes[addrs[1]].mutate(net.now, "set/s", Op("srem", "x"))
    net._apply(addrs[1], eff)
    n0 = net.nodes[addrs[0]]
    cut_off = net.nodes[addrs[3]].node_id
    assert net.wait_for(lambda: all(net.nodes[a].members.get(cut_off).status == "dead" for a in addrs[:3]), 30)
    net.run_for(5.0)
    assert n0.store.versions("set/s"), "purged while a member that holds the add was only declared dead"
    net.heal()
    assert net.wait_for(lambda: agree(net) and all(not n.store.versions("set/s") for n in net.nodes.values()), 60)
    net.run_for(90.0)    # past the purge guard: nothing brings x back
    assert agree(net) and all(not n.store.is_live("set/s") for n in net.nodes.values())

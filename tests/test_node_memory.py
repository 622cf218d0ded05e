"""Multi-node behaviour of the kernel on the in-memory runtime (virtual time, encoded frames)."""
from __future__ import annotations

import pytest

from gossipmq.core.codec import HEADER
from gossipmq.core.effects import MemberChanged
from gossipmq.transports.memory import checksums
from tests.helpers import memory_cluster


def everyone_has(net, key, value=...):  # type: ignore[no-untyped-def]
    def check() -> bool:
        entries = [n.get(key) for n in net.nodes.values()]
        return all(e is not None and (value is ... or e.value == value) for e in entries)
    return check


@pytest.mark.parametrize("mode", ["push", "pull", "hybrid"])
def test_put_reaches_every_node_within_a_few_intervals(mode: str) -> None:
    net, addrs = memory_cluster(8, {"dissemination": {"strategy": mode, "fanout": 2}})
    net.put(addrs[5], "greeting", {"hello": "world"})
    start = net.now
    assert net.wait_for(everyone_has(net, "greeting", {"hello": "world"}), 3.0)
    assert net.now - start < 3.0
    assert len(set(checksums(net).values())) == 1


@pytest.mark.parametrize("mode", ["push", "pull", "hybrid"])
def test_delete_spreads_as_a_tombstone(mode: str) -> None:
    net, addrs = memory_cluster(5, {"dissemination": {"strategy": mode}})
    net.put(addrs[1], "k", 1)
    assert net.wait_for(everyone_has(net, "k"), 3.0)
    net.delete(addrs[4], "k")
    assert net.wait_for(lambda: all(n.get("k") is None for n in net.nodes.values()), 3.0)
    assert all(n.store.get("k").deleted for n in net.nodes.values())


def test_writes_from_both_sides_of_a_partition_merge_after_heal() -> None:
    net, addrs = memory_cluster(6, {"failure_detection": {"suspect_after_ms": 5000, "dead_after_ms": 10000}})
    net.partition(addrs[:3], addrs[3:])
    net.put(addrs[0], "left-only", "L")
    net.put(addrs[5], "right-only", "R")
    net.put(addrs[1], "both", "from-left")
    net.put(addrs[4], "both", "from-right")
    net.run_for(2.0)
    assert net.nodes[addrs[5]].get("left-only") is None
    net.heal()
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1
                        and everyone_has(net, "left-only")() and everyone_has(net, "right-only")(), 5.0)
    winners = {n.get("both").value for n in net.nodes.values()}
    assert winners == {"from-right"}   # the later HLC write wins everywhere


def test_crashed_node_is_suspected_then_declared_dead_by_heartbeat() -> None:
    net, addrs = memory_cluster(5)
    net.crash(addrs[3])
    crash_time = net.now
    assert net.wait_for(lambda: all(n.members.get("n3").status == "dead" for n in net.nodes.values()), 10.0)
    # dead_after_ms is 2 s of silence: detection must not be instant nor much later than that
    assert 1.0 < net.now - crash_time < 4.0
    reasons = [e.reason for e in net.events[addrs[0]] if isinstance(e, MemberChanged) and e.member["id"] == "n3"]
    assert reasons[-2:] == ["suspected", "failed"] or reasons[-1] == "failed"


def test_graceful_leave_is_left_not_failed_and_is_reaped() -> None:
    net, addrs = memory_cluster(4, {"gossip": {"reap_after_ms": 3000}})
    net.leave(addrs[2])
    others = [n for a, n in net.nodes.items() if a != addrs[2]]
    assert net.wait_for(lambda: all(n.members.get("n2").status == "left" for n in others), 1.0)
    net.crash(addrs[2])
    assert net.wait_for(lambda: all(n.members.get("n2") is None for n in others), 6.0)
    assert all(n.members.count("dead") == 0 for n in others)


def test_suspected_node_refutes_with_a_higher_incarnation() -> None:
    net, addrs = memory_cluster(4, {"failure_detection": {"suspect_after_ms": 600, "dead_after_ms": 20000}})
    net.cut(addrs[0], addrs[1])       # n0 and n1 cannot talk directly, but heartbeats flow through others
    net.partition(addrs[:1], addrs[1:])
    net.run_for(1.5)                  # n0 hears no one and suspects everyone
    assert net.nodes[addrs[0]].members.get("n1").status == "suspect"
    inc_before = net.nodes[addrs[1]].inc
    net.heal()
    assert net.wait_for(lambda: all(n.members.get("n1") is None or n.members.get("n1").status == "alive"
                                    for n in net.nodes.values()), 5.0)
    assert net.nodes[addrs[1]].inc > inc_before


def test_restarted_node_is_alive_at_once_with_a_higher_incarnation() -> None:
    from gossipmq.core.node import Node
    from tests.helpers import config, registry
    net, addrs = memory_cluster(3)
    net.put(addrs[2], "before", 1)
    net.run_for(1.0)
    net.crash(addrs[2])
    cfg = config()
    net.add(Node.from_config(cfg.with_node(id="n2", advertise=addrs[2], seeds=[addrs[0]]), registry(),
                             incarnation=2, rng_seed=99))
    assert net.wait_for(lambda: all(n.members.get("n2").inc == 2
                                    for a, n in net.nodes.items() if a != addrs[2]), 2.0)
    assert net.wait_for(everyone_has(net, "before"), 2.0)   # the new life catches up
    net.put(addrs[2], "after", 2)                            # and its writes never reuse old dots
    assert net.wait_for(everyone_has(net, "after", 2), 3.0)


def test_malformed_frames_are_counted_and_the_node_keeps_working() -> None:
    net, addrs = memory_cluster(3)
    node = net.nodes[addrs[0]]
    net.inject_frames(addrs[0], [b"garbage"])
    net.inject_frames(addrs[0], [b"GMQ\x07", b"{}"])
    net.inject_frames(addrs[0], [HEADER, b"{]"])
    net.inject_frames(addrs[0], [HEADER, b'{"type":"warp","src":"x","addr":"y","inc":1,"body":{}}'])
    assert sum(v for k, v in node.stats.items() if k.startswith("dropped.")) == 4
    assert {k for k in node.stats if k.startswith("dropped.")} == {
        "dropped.frame_count", "dropped.version", "dropped.malformed", "dropped.unknown_type"}
    net.put(addrs[1], "still", "works")
    assert net.wait_for(everyone_has(net, "still"), 3.0)


def test_join_retries_with_backoff_until_the_seed_appears() -> None:
    from gossipmq.core.node import Node
    from gossipmq.transports.memory import MemoryNetwork
    from tests.helpers import config, registry
    cfg = config()
    net = MemoryNetwork(seed=3, encode=True)
    late = Node.from_config(cfg.with_node(id="late", advertise="mem://late", seeds=["mem://seed"]), registry(),
                            incarnation=1)
    net.add(late)
    net.run_for(3.0)
    joins = late.stats["out.join"]
    assert not late.cluster.joined and 3 <= joins <= 6           # 0.5, 1, 2 ... s backoff, not a storm
    net.add(Node.from_config(cfg.with_node(id="seed", advertise="mem://seed"), registry(), incarnation=1))
    assert net.wait_for(lambda: late.cluster.joined and late.members.get("seed") is not None, 6.0)

"""Quiet rounds (plugins/dissemination.py): a round skips the digest exchange with a peer that
last reported our store checksum, keeps one exchange per `idle_resync_ms`, and never holds back
news, membership updates or tombstone GC. With SWIM (the LAN preset): gossip-style heartbeats
are membership updates, so with `heartbeat` every round carries news and none is quiet."""
from __future__ import annotations

from collections import Counter
from typing import Any

from gossipmq.core.config import parse_config
from gossipmq.core.timers import Timer
from gossipmq.transports.memory import MemoryNetwork, checksums, make_nodes
from tests.helpers import memory_cluster, registry

N = 6


def cluster(idle_resync_ms: int | None = None, strategy: str = "hybrid",
            **storage: Any) -> tuple[MemoryNetwork, list[str]]:
    dissemination: dict[str, Any] = {"strategy": strategy, "fanout": 2, "interval_ms": 200}
    if idle_resync_ms is not None:
        dissemination["idle_resync_ms"] = idle_resync_ms
    doc: dict[str, Any] = {"dissemination": dissemination, "failure_detection": {"strategy": "swim"}}
    if storage:
        doc["storage"] = storage
    net = MemoryNetwork(seed=1)
    addrs = [net.add(node).address for node in make_nodes(parse_config(doc, registry()), registry(), N, seed=1)]
    assert net.wait_for(lambda: all(len(n.members.reachable_ids()) == N - 1 for n in net.nodes.values()), 10.0)
    return net, addrs


def settle(net: MemoryNetwork, addrs: list[str]) -> None:
    """A write everywhere, then until no membership update waits to ride along and every node has
    heard the new checksum from every peer (SWIM's pings and acks carry it too)."""
    net.put(addrs[0], "k", "v")
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1
                        and all(not len(n.cluster.broadcasts) for n in net.nodes.values())
                        and all(n.convergence.agrees() and n.convergence.last_reports_agree(n.store.checksum(), 4)
                                for n in net.nodes.values()), 60.0)


def syns_sent(net: MemoryNetwork) -> int:
    return sum(n.stats["out.syn"] for n in net.nodes.values())


def idle_syn_rate(net: MemoryNetwork, seconds: float = 10.0) -> float:
    """Digest exchanges opened per node per second over an idle window."""
    before = syns_sent(net)
    net.run_for(seconds)
    return (syns_sent(net) - before) / N / seconds


def time_to_all(net: MemoryNetwork, addrs: list[str], key: str) -> float:
    start = net.now
    net.put(addrs[-1], key, "news")
    assert net.wait_for(lambda: all(n.store.get(key) is not None for n in net.nodes.values()), 10.0)
    return net.now - start


def test_an_idle_cluster_exchanges_one_digest_per_resync_interval_instead_of_fanout_per_round() -> None:
    net, addrs = cluster()
    settle(net, addrs)
    rate = idle_syn_rate(net)
    # default: one exchange per second per node (fanout 2 / 0.2 s would be 10)
    assert rate <= 1.2, rate
    assert all(n.stats["syncs_skipped_agreed"] > 0 for n in net.nodes.values())

    every_round, addrs0 = cluster(idle_resync_ms=0)
    settle(every_round, addrs0)
    assert idle_syn_rate(every_round) >= 9.5   # 0 keeps the exchange with every pick
    assert all(n.stats["syncs_skipped_agreed"] == 0 for n in every_round.nodes.values())


def test_news_ends_the_quiet_and_spreads_within_a_round_of_every_exchange() -> None:
    quiet, addrs = cluster()
    settle(quiet, addrs)
    quiet.run_for(10.0)
    loud, addrs0 = cluster(idle_resync_ms=0)
    settle(loud, addrs0)
    loud.run_for(10.0)
    t_quiet, t_loud = time_to_all(quiet, addrs, "news"), time_to_all(loud, addrs0, "news")
    assert t_quiet <= t_loud + 0.2, (t_quiet, t_loud)   # at most one round apart
    skipped = sum(n.stats["syncs_skipped_agreed"] for n in quiet.nodes.values())
    quiet.put(addrs[2], "more", "news")   # while news is in flight, no round is quiet
    assert quiet.wait_for(lambda: all(n.store.get("more") is not None for n in quiet.nodes.values()), 10.0)
    assert sum(n.stats["syncs_skipped_agreed"] for n in quiet.nodes.values()) - skipped <= N


def test_pull_rounds_are_never_quiet() -> None:
    """The uninformed side opens a pull: skipping a peer it wrongly believes equal would leave it
    waiting until that peer speaks first."""
    net, addrs = cluster(strategy="pull")
    settle(net, addrs)
    assert idle_syn_rate(net) >= 9.5
    assert all(n.stats["syncs_skipped_agreed"] == 0 for n in net.nodes.values())


def test_gossiped_heartbeats_are_news_so_no_round_is_quiet() -> None:
    net, addrs = memory_cluster(N, {"dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200}})
    net.put(addrs[0], "k", "v")
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1, 10.0)
    assert idle_syn_rate(net) >= 9.5
    assert all(n.stats["syncs_skipped_agreed"] == 0 for n in net.nodes.values())


def test_a_tombstone_still_becomes_stable_and_is_purged_while_rounds_are_quiet() -> None:
    net, addrs = cluster(tombstone_ttl_ms=3_600_000, gc_interval_ms=200)
    settle(net, addrs)
    net.run_for(5.0)
    net.delete(addrs[1], "k")
    assert net.wait_for(lambda: all(not n.store.versions("k") for n in net.nodes.values()), 60.0), \
        "the tombstone was never purged: quiet rounds starved the digests GC reads"
    assert all(n.replication.gc.stats.get("gc_purged_stable") == 1 for n in net.nodes.values())


def test_only_the_last_reports_heard_say_whether_news_is_in_flight() -> None:
    from gossipmq.core.convergence import Convergence
    c = Convergence(None)  # type: ignore[arg-type]   # heard/forget/last_reports_agree never touch the node
    assert not c.last_reports_agree("a", 2)          # nothing heard yet: no evidence that all agree
    c.heard("m1", "a")
    c.heard("m2", "b")                               # m2 had not got the news when it spoke
    assert not c.last_reports_agree("a", 2) and c.last_reports_agree("b", 1)
    c.heard("m1", "a")
    assert not c.last_reports_agree("a", 3)
    c.heard("m3", "a")
    assert c.last_reports_agree("a", 2)              # m2's report is older than the last two
    assert c.peer_sums == {"m1": "a", "m2": "b", "m3": "a"}   # what each member last said is kept
    c.opened_exchange("a")                           # an unanswered exchange counts as agreement
    assert c.last_reports_agree("a", 3)
    c.heard("m2", "b")                               # ... until the peer answers with other news
    assert not c.last_reports_agree("a", 3)
    c.forget("m2")
    assert "m2" not in c.peer_sums


def test_an_idle_converged_node_skips_the_convergence_and_gc_checks_until_something_changes() -> None:
    """The convergence check runs while replicas differ and once more to confirm, then only after
    a change; the tombstone collector only while a key holds a dead version."""
    net, addrs = cluster()
    settle(net, addrs)
    assert net.wait_for(lambda: all(n.convergence.converged() for n in net.nodes.values()), 30.0)
    net.run_for(1.0)   # the check that confirms agreement
    fired: Counter[str] = Counter()
    for node in net.nodes.values():
        handle = node.handle_timer

        def counted(now: float, timer: Timer, handle: Any = handle) -> Any:
            fired[timer.name] += 1
            return handle(now, timer)
        node.handle_timer = counted   # type: ignore[method-assign]
    net.run_for(10.0)
    assert fired["convergence"] == 0 and fired["gc"] == 0 and fired["round"] > 0, fired
    assert all(n.convergence.converged() for n in net.nodes.values())

    first = net.nodes[addrs[0]]
    since = first.convergence.since
    net.delete(addrs[0], "k")   # a change: checks resume (the tombstone arms the collector too)
    assert not first.convergence.converged()
    assert net.wait_for(lambda: all(n.convergence.converged() for n in net.nodes.values()), 30.0)
    assert first.convergence.since is not None and since is not None and first.convergence.since > since
    assert fired["convergence"] > 0 and fired["gc"] > 0


def test_a_large_cluster_falls_quiet_once_a_write_has_spread() -> None:
    """At 100 nodes a node hears from a given peer rarely: the checksums heard while the write
    spread must not keep the rounds loud (they did, at 10 exchanges per node per second), nor
    may the exchanges nobody answers (a peer with nothing to trade stays silent)."""
    n = 100
    doc: dict[str, Any] = {"dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200},
                           "failure_detection": {"strategy": "swim"}}
    net = MemoryNetwork(seed=1)
    addrs = [net.add(node).address for node in make_nodes(parse_config(doc, registry()), registry(), n, seed=1)]
    assert net.wait_for(lambda: all(len(x.members.reachable_ids()) == n - 1 for x in net.nodes.values())
                        and all(not len(x.cluster.broadcasts) for x in net.nodes.values()), 60.0)
    net.put(addrs[0], "k", "v")
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1, 30.0)
    net.run_for(1.0)   # a few rounds: the exchanges since then agree (the time-based rule took 2-3 s)
    before = syns_sent(net)
    net.run_for(5.0)
    rate = (syns_sent(net) - before) / n / 5.0
    assert rate <= 1.5, f"{rate:.2f} exchanges per node per second once idle (fanout 2 every 0.2 s is 10)"
    net.put(addrs[50], "news", "v")   # and news still ends the quiet
    assert net.wait_for(lambda: all(x.store.get("news") is not None for x in net.nodes.values()), 10.0)

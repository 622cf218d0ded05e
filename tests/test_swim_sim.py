"""SWIM, Lifeguard and phi in the seeded in-memory network: the same kernel and plugins as the
ZeroMQ runtime, with virtual time (so bounds are checked exactly and the tests are fast)."""
from __future__ import annotations

import math

import pytest

from gossipmq.core.codec import encode_envelope
from gossipmq.core.messages import Envelope, MemberUpdate
from gossipmq.core.node import Node
from gossipmq.core.timers import Timer
from gossipmq.plugins.swim import PingAck

from .helpers import registry
from .sim_cluster import SWIM_FAST, StarvingNetwork, cluster, everyone_sees, member_events, sim_config, status_of

LAN = {"strategy": "swim", "probe_interval_ms": 1000, "probe_timeout_ms": 500}


def _bound(n: int, interval: float, timeout_mult: int = 4, max_mult: int = 6) -> float:
    """Worst case to 'dead everywhere': every survivor probes the victim within two passes of
    its shuffled list, the probe takes one interval, an unconfirmed suspicion at most
    max_mult * min, then a few gossip rounds spread the verdict."""
    min_s = timeout_mult * max(1.0, math.log10(n)) * interval
    return 2 * (n - 1) * interval + interval + max_mult * min_s + 2.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_is_detected_everywhere_within_the_bound(seed: int) -> None:
    n = 12
    net, addrs = cluster(n, sim_config(SWIM_FAST), seed=seed)
    net.run_for(3.0)
    net.crash(addrs[4])
    crashed_at = net.now
    assert net.wait_for(lambda: everyone_sees(net, "n4", ["dead"]), _bound(n, 0.2))
    took = net.now - crashed_at
    # With confirmations the suspicion shrinks to its minimum: far below the worst case.
    assert took < 0.5 * _bound(n, 0.2), f"dead everywhere after {took:.2f}s"
    wrongly = [(a, e.member["id"]) for a, e in member_events(net) if e.reason in ("suspected", "failed")
               and e.member["id"] != "n4"]
    assert wrongly == [], "no healthy member may be suspected on a loss-free network"


def test_injected_false_suspicion_is_refuted_and_never_becomes_death() -> None:
    net, addrs = cluster(8, sim_config(LAN), seed=5)
    net.run_for(2.0)
    n3_inc = net.nodes[addrs[3]].inc
    # n1 tells n0 that n3 is suspect (as a slow prober would); n3 is in fact fine.
    claim = MemberUpdate("n3", addrs[3], n3_inc, "suspect", 0, {}, "n1")
    env = Envelope(type="ping_ack", src="n1", addr=addrs[1], inc=net.nodes[addrs[1]].inc, body=PingAck(0),
                   members=[claim])
    net.inject_frames(addrs[0], encode_envelope(env))
    assert status_of(net, addrs[0], "n3") == "suspect"
    assert net.wait_for(lambda: net.nodes[addrs[3]].inc > n3_inc, 5.0), "n3 never learned it was suspected"
    assert net.wait_for(lambda: everyone_sees(net, "n3", ["alive"]), 5.0)
    net.run_for(30.0)  # well past any suspicion timeout
    assert everyone_sees(net, "n3", ["alive"])
    assert not [e for _, e in member_events(net, "failed")]
    assert [e for _, e in member_events(net, "alive_again") if e.member["id"] == "n3"]
    assert net.nodes[addrs[3]].stats["refutations"] >= 1


@pytest.mark.parametrize("dead_probe_ms, heals", [(2000, True), (0, False)])
def test_partition_then_heal_remerges_by_itself(dead_probe_ms: int, heals: bool) -> None:
    cfg = sim_config(LAN, gossip={"dead_probe_ms": dead_probe_ms, "reap_after_ms": 60_000})
    net, addrs = cluster(10, cfg, seed=7)  # no seeds: only gossip to the dead can bring them back
    net.run_for(2.0)
    left, right = addrs[:5], addrs[5:]
    net.partition(left, right)
    assert net.wait_for(lambda: all(status_of(net, a, f"n{j}") == "dead" for a in left for j in range(5, 10))
                        and all(status_of(net, a, f"n{j}") == "dead" for a in right for j in range(5)), 40.0)
    net.heal()
    merged = net.wait_for(lambda: all(len(nd.members.reachable_ids()) == 9 and
                                      all(m.status == "alive" for m in nd.members.all())
                                      for nd in net.nodes.values()), 30.0)
    assert merged is heals
    if heals:
        assert member_events(net, "rejoined"), "the other side came back as rejoined"


@pytest.mark.parametrize("lifeguard", [True, False])
def test_lifeguard_suppresses_false_deaths_caused_by_a_starved_node(lifeguard: bool) -> None:
    """n0 is starved: every message to it waits 3-6 s. Plain SWIM lets its doomed probes
    kill healthy members; Lifeguard's local health and unconfirmed-suspicion timeout do not."""
    net = StarvingNetwork(seed=1)
    net, addrs = cluster(10, sim_config(dict(LAN, lifeguard=lifeguard)), seed=1, net=net)
    net.run_for(2.0)
    net.starved[addrs[0]] = (3.0, 6.0)
    net.run_for(120.0)
    healthy_deaths = [e for _, e in member_events(net, "failed") if e.member["id"] != "n0"]
    healthy_suspicions = [e for _, e in member_events(net, "suspected") if e.member["id"] != "n0"]
    if lifeguard:
        assert healthy_deaths == []
        assert len(healthy_suspicions) < 50
        assert net.nodes[addrs[0]].failure_detector.health_score >= 4, "n0 knows it is the slow one"
    else:  # the control: the scenario does bite without Lifeguard
        assert len(healthy_deaths) > 0
        assert len(healthy_suspicions) > 200


def _restart(net, addrs: list[str], i: int, cfg, inc: int) -> Node:  # type: ignore[no-untyped-def]
    node = Node.from_config(cfg.with_node(id=f"n{i}", advertise=addrs[i], seeds=[addrs[0]]), registry(),
                            incarnation=inc, rng_seed=99)
    return net.add(node)


def test_restarted_node_is_alive_at_once_with_a_higher_incarnation() -> None:
    cfg = sim_config(LAN)
    net, addrs = cluster(6, cfg, seed=11)
    net.run_for(2.0)
    old_inc = net.nodes[addrs[2]].inc
    net.crash(addrs[2])
    net.run_for(0.3)  # back before anyone noticed
    _restart(net, addrs, 2, cfg, old_inc + 1000)
    assert net.wait_for(lambda: all(net.nodes[a].members.get("n2").inc == old_inc + 1000  # type: ignore[union-attr]
                                    for a in addrs if a != addrs[2]), 3.0)
    assert everyone_sees(net, "n2", ["alive"])
    net.run_for(20.0)
    assert not [e for _, e in member_events(net) if e.member["id"] == "n2" and e.reason in ("suspected", "failed")]


def test_leave_is_not_failure_and_reaped_members_may_rejoin() -> None:
    cfg = sim_config(LAN, gossip={"reap_after_ms": 5000})
    net, addrs = cluster(6, cfg, seed=13)
    net.run_for(2.0)
    net.leave(addrs[1])
    net.crash(addrs[1])  # a departed process stops answering, which must not turn 'left' into 'dead'
    assert net.wait_for(lambda: everyone_sees(net, "n1", ["left"]), 2.0)
    net.run_for(4.0)
    assert not [e for _, e in member_events(net) if e.member["id"] == "n1" and e.reason in ("suspected", "failed")]
    assert net.wait_for(lambda: all(net.nodes[a].members.get("n1") is None for a in addrs if a != addrs[1]), 10.0)
    assert len(member_events(net, "reaped")) == 5
    _restart(net, addrs, 1, cfg, 10_000)
    assert net.wait_for(lambda: everyone_sees(net, "n1", ["alive"]), 5.0)


def test_every_member_is_probed_once_per_round_robin_pass() -> None:
    net, addrs = cluster(9, sim_config(LAN), seed=17)
    probes: dict[str, list[str]] = {}

    def spy(src: str, send) -> None:  # type: ignore[no-untyped-def]
        if send.envelope.type == "ping" and src == addrs[0]:
            probes.setdefault(src, []).append(send.envelope.body.target)

    net.on_send = spy
    net.run_for(8.0 + 16.0)
    targets = probes[addrs[0]]
    assert len(targets) >= 16
    first, second = targets[:8], targets[8:16]
    assert sorted(first) == sorted(second) == [f"n{i}" for i in range(1, 9)]
    assert first != second, "each pass is reshuffled"


@pytest.mark.parametrize("seed", [1, 2])
def test_phi_detects_a_crash_and_stays_quiet_otherwise(seed: int) -> None:
    phi = {"strategy": "phi", "interval_ms": 200, "threshold": 8.0, "min_std_dev_ms": 100, "acceptable_pause_ms": 200,
           "dead_after_ms": 1000}
    net, addrs = cluster(8, sim_config(phi), seed=seed, loss=0.02)
    net.run_for(20.0)
    assert not member_events(net, "suspected"), "phi 8 at 2% loss: no false suspicion in 20 s"
    net.crash(addrs[3])
    crashed_at = net.now
    assert net.wait_for(lambda: everyone_sees(net, "n3", ["dead"]), 10.0)
    assert net.now - crashed_at < 5.0


@pytest.mark.parametrize("late_s, accuses", [(0.0, True), (2.0, False)])
def test_timers_that_fire_late_do_not_accuse_anyone(late_s: float, accuses: bool) -> None:
    """A paused process wakes up with its probe timer overdue and the ack still unread in its
    inbox: it must not judge the target (on time, the same unanswered probe does)."""
    net, addrs = cluster(6, sim_config(LAN), seed=21)
    net.run_for(3.0)
    node = net.nodes[addrs[0]]
    probe = node.failure_detector.probe
    assert probe is not None
    probe.acked = False  # as if the ack were still queued, unread
    effects = node.handle_timer(probe.deadline + late_s, Timer("failure_detection", "probe_deadline"))
    suspected = [e for e in effects if getattr(e, "reason", None) == "suspected"]
    assert bool(suspected) is accuses
    assert node.stats["swim.late_probes"] == (0 if accuses else 1)


def test_tags_reach_every_member_through_joins() -> None:
    cfg = sim_config(LAN, node={"tags": {"zone": "z1"}})
    net, _ = cluster(8, cfg, seed=23, prefill=False)   # real joins through n0
    net.run_for(5.0)
    assert all(m.tags == {"zone": "z1"} for nd in net.nodes.values() for m in nd.members.all())

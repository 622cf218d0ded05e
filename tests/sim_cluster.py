"""In-memory clusters for the failure-detection tests: any detector, seeded, with a network
that can starve one node (its inbound messages are delayed, as under CPU starvation)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gossipmq.core.config import Config, parse_config
from gossipmq.core.effects import MemberChanged, Send
from gossipmq.transports.memory import MemoryNetwork, make_nodes

from .helpers import registry

SWIM_FAST = {"strategy": "swim", "probe_interval_ms": 200, "probe_timeout_ms": 100, "indirect_checks": 3,
             "suspicion_mult": 4, "suspicion_max_mult": 6}


def sim_config(detector: dict[str, Any], **tables: dict[str, Any]) -> Config:
    doc: dict[str, Any] = {"dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200},
                           "failure_detection": dict(detector)}
    for table, values in tables.items():
        doc.setdefault(table, {}).update(values)
    return parse_config(doc, registry())


class StarvingNetwork(MemoryNetwork):
    """Messages to a starved node wait an extra uniform(lo, hi) seconds before it sees them."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.starved: dict[str, tuple[float, float]] = {}

    def _push(self, at: float, kind: str, address: str, payload: Any) -> None:
        if kind == "msg" and address in self.starved:
            lo, hi = self.starved[address]
            at += self.rng.uniform(lo, hi)
        super()._push(at, kind, address, payload)


def cluster(n: int, cfg: Config, *, seed: int = 1, net: MemoryNetwork | None = None, prefill: bool = True,
            **net_kw: Any) -> tuple[MemoryNetwork, list[str]]:
    """n nodes; with `prefill` every table starts complete (no join phase to wait for)."""
    net = net or MemoryNetwork(seed=seed, **net_kw)
    addrs = [net.add(node).address for node in make_nodes(cfg, registry(), n, seed=seed, prefill=prefill)]
    if not prefill:
        assert net.wait_for(lambda: all(len(x.members.reachable_ids()) == n - 1 for x in net.nodes.values()), 20.0)
    return net, addrs


def status_of(net: MemoryNetwork, observer: str, member_id: str) -> str | None:
    member = net.nodes[observer].members.get(member_id)
    return None if member is None else member.status


def everyone_sees(net: MemoryNetwork, member_id: str, statuses: Iterable[str]) -> bool:
    wanted = set(statuses)
    return all(status_of(net, a, member_id) in wanted for a, node in net.nodes.items() if node.node_id != member_id)


def member_events(net: MemoryNetwork, reason: str | None = None) -> list[tuple[str, MemberChanged]]:
    out = []
    for address, events in net.events.items():
        for ev in events:
            if isinstance(ev, MemberChanged) and (reason is None or ev.reason == reason):
                out.append((address, ev))
    return out


__all__ = ["SWIM_FAST", "Send", "StarvingNetwork", "cluster", "everyone_sees", "member_events", "sim_config",
           "status_of"]

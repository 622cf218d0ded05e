"""Shared by the issue #15 benchmarks (B16-B19, B24): the modes and overlays compared, one
measured broadcast in the simulator, per-message-type byte accounting, plots and JSON."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import OUT, REGISTRY, read_loadavg

from gossipmq.core.config import Config, parse_config
from gossipmq.core.effects import Send
from gossipmq.transports.epidemic import informed_curve
from gossipmq.transports.simulator import Scenario, Simulation

INTERVAL_MS = 200          # one round for every mode: push-pull/rumor rounds, Plumtree's IHAVE batching
LATENCY_MS = (5.0, 5.0)    # one-way (within a zone)

#: message types that carry dissemination (payload or its announcements), by mode
DISSEMINATION_TYPES = frozenset({"syn", "syn_ack", "ack", "rumor", "rumor_ack", "pt_gossip", "pt_ihave",
                                 "pt_graft", "pt_prune"})

MODES: dict[str, dict[str, Any]] = {
    "push-pull k=3": {"strategy": "hybrid", "fanout": 3},
    "rumor": {"strategy": "rumor", "fanout": 3},
    "plumtree": {"strategy": "plumtree", "optimization": "off"},
}
OVERLAYS: dict[str, dict[str, Any]] = {
    "full": {},
    "hyparview": {"overlay": "hyparview"},
}


def config(dissemination: dict[str, Any], membership: dict[str, Any] | None = None,
           detector: dict[str, Any] | None = None, anti_entropy: dict[str, Any] | None = None,
           peer_selection: dict[str, Any] | None = None) -> Config:
    doc: dict[str, Any] = {"dissemination": {"interval_ms": INTERVAL_MS, **dissemination},
                           "failure_detection": detector or {"strategy": "static"}}
    if membership:
        doc["membership"] = membership
    if anti_entropy:
        doc["anti_entropy"] = anti_entropy
    if peer_selection:
        doc["peer_selection"] = peer_selection
    return parse_config(doc, REGISTRY, "<benchmark>")


def hyparview_for(n: int) -> dict[str, Any]:
    """The paper's sizing: active log10(n) + 1, passive 6x."""
    active = max(3, math.ceil(math.log10(n)) + 1)
    return {"overlay": "hyparview", "active_size": active, "passive_size": 6 * active}


@dataclass
class TypeBytes:
    """Bytes and messages by type, and bytes across zones, of what the simulation sends."""

    sim: Simulation
    types: frozenset[str] = DISSEMINATION_TYPES
    bytes: int = 0
    messages: int = 0
    cross: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from gossipmq.core.codec import encoded_size
        inner = self.sim.net.on_send
        index, zones = self.sim.index, self.sim.topology.zones

        def on_send(src: str, send: Send) -> None:
            if inner is not None:
                inner(src, send)
            env = send.envelope
            if env.type not in self.types:
                return
            size = encoded_size(env)
            self.bytes += size
            self.messages += 1
            self.by_type[env.type] = self.by_type.get(env.type, 0) + 1
            j = index.get(send.address)
            if zones > 1 and j is not None and index[src] % zones != j % zones:
                self.cross += size
        self.sim.net.on_send = on_send

    def reset(self) -> None:
        self.bytes = self.messages = self.cross = 0
        self.by_type = {}


def broadcast(sim: Simulation, writers: Iterable[str], *, rounds: int, meter: TypeBytes | None = None,
              until_all: bool = True, tail: int = 2) -> dict[str, Any]:
    """Reset the counters, write one tracked key on each writer now, run up to `rounds` rounds
    (stopping `tail` rounds after every live node has them all: Plumtree's batched IHAVEs and
    PRUNEs leave then), and measure: copies, messages and bytes per node per update
    (dissemination types only when `meter` is given), rounds and ms to the last."""
    sim.reset_counters()
    if meter is not None:
        meter.reset()
    writers = list(writers)
    start = sim.net.now
    first = len(sim.informed)
    keys = sim.inject(writers)
    live = sim.scenario.nodes - len(sim.crashed)
    done_round = None
    for r in range(1, rounds + 1):
        sim.advance(start + r * sim.interval)
        counts = [len(sim.informed[u] - sim.crashed) for u in range(first, first + len(keys))]
        if done_round is None and all(c == live for c in counts):
            done_round = r
        if until_all and done_round is not None and r >= done_round + tail:
            break
    updates = len(keys)
    copies = sum(sim.per_node["copies_received"]) / (live * updates)
    informed = [len(sim.informed[u] - sim.crashed) / live for u in range(first, first + updates)]
    ms = [(sim.last_informed_at[u] - sim.injected_at[u]) * 1000 for u in range(first, first + updates)]
    out: dict[str, Any] = {"updates": updates, "reached": round(min(informed), 6), "rounds_to_all": done_round,
                           "ms_to_all": round(max(ms), 1) if done_round is not None else None,
                           "copies_per_node": round(copies, 4)}
    nodes = sim.scenario.nodes
    if meter is not None:
        out.update(messages_per_node=round(meter.messages / nodes / updates, 3),
                   bytes_per_node=round(meter.bytes / nodes / updates, 1),
                   cross_zone_bytes_per_node=round(meter.cross / nodes / updates, 1),
                   by_type={k: round(v / nodes / updates, 3) for k, v in sorted(meter.by_type.items())})
    else:
        out.update(messages_per_node=round(sum(sim.per_node["messages_sent"]) / nodes / updates, 3),
                   bytes_per_node=round(sum(sim.per_node["bytes_sent"]) / nodes / updates, 1))
    return out


def reference_rounds(mode: str, n: int, fanout: int) -> int | None:
    """Round at which the mean-field curve reaches all but half a node (B1's reference)."""
    curve = informed_curve(mode, n, fanout, 200)
    return next((r for r, f in enumerate(curve) if f * n > n - 0.5), None)


def save(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    payload = {**payload, "loadavg_end": read_loadavg()["raw"]}
    path.write_text(json.dumps(payload, indent=2))
    return path


def plot(path: Path, draw: Callable[[Any], None], size: tuple[float, float] = (7.5, 4.5)) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no {path.name}: matplotlib is not installed (pip install 'gossipmq[bench]')")
        return None
    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scenario(n: int, *, seed: int = 1, **kw: Any) -> Scenario:
    return Scenario(nodes=n, rounds=1, seed=seed, latency_ms=kw.pop("latency_ms", LATENCY_MS), **kw)

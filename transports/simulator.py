"""Deterministic simulator: N real kernels with the configured plugins, in virtual time.

It runs the very `Node` and strategies a real deployment runs, over `MemoryNetwork` (latency,
loss, partitions, crash-stop), injects updates and records per round: informed fraction,
payload copies, contacts, messages and bytes. Same seed, same result.

What makes 10,000 nodes cheap:

* Membership is bootstrapped, not joined, and shared: one `MemberTable` holds everyone, and
  each node sees it through a `MemberView` that hides the node itself in O(1) (no node keeps
  its own n-entry table: that would be n^2 members). The failure detector is forced to
  `static` (no detection; the heartbeat detector gossips every member's counter, O(n) per
  round): the simulator studies dissemination, with membership as an oracle. Crashed nodes stay
  in everybody's view, so contacts to them are wasted, as in the theory.
* Rounds are aligned (`aligned_rounds=True`): every node gossips at t = r * interval, as in
  the synchronous model. With a fixed latency (the default) every request of a round arrives
  before any reply, so nothing travels two hops in one round - exactly the model's rounds. A
  latency range makes rounds overlap, like a real cluster.
* Byte counts are the codec's own (`encoded_size`: the bytes the wire carries). The mode,
  fanout and interval come from the dissemination strategy itself (`round_shape`).
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from gossipmq.core.codec import encoded_size
from gossipmq.core.config import Config, StrategyChoice
from gossipmq.core.effects import Effect, KeyChanged, Send
from gossipmq.core.membership import REACHABLE, Member, MemberTable
from gossipmq.core.messages import Entry, MemberUpdate, body_lists
from gossipmq.core.node import Node
from gossipmq.core.registry import StrategyRegistry
from gossipmq.core.strategies import NoOptions

from .epidemic import informed_curve
from .memory import MemoryNetwork

CONTACT_TYPES = frozenset({"syn", "rumor"})   # messages that open a gossip exchange


# ---- scenario ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    """Split the nodes into `groups` equal blocks (by index) from round `start` to `end`."""

    groups: int
    start: int = 0
    end: int | None = None   # the round at which it heals; None = never


@dataclass(frozen=True)
class Scenario:
    nodes: int
    rounds: int
    loss: float = 0.0
    latency_ms: tuple[float, float] = (5.0, 5.0)
    partition: Partition | None = None
    crash: float = 0.0
    seed: int = 0
    updates: int = 1
    count_bytes: bool = True


def parse_latency(text: str) -> tuple[float, float]:
    """"5" -> (5, 5); "1..20" -> (1, 20) milliseconds."""
    number = r"(\d+(?:\.\d+)?)"
    match = re.fullmatch(rf"\s*{number}\s*(?:\.\.\s*{number}\s*)?", text)
    if not match:
        raise ValueError(f"latency {text!r}: expected MS or MIN..MAX (milliseconds)")
    lo = float(match.group(1))
    hi = float(match.group(2)) if match.group(2) else lo
    if hi < lo:
        raise ValueError(f"latency {text!r}: MAX is below MIN")
    return lo, hi


def parse_partition(text: str) -> Partition:
    """"2" (two halves from the start, never healed), "2@5" (from round 5), "2@0..10" (heal at 10)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:@\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?)?", text)
    if not match or int(match.group(1)) < 2:
        raise ValueError(f"partition {text!r}: expected GROUPS[@FROM[..TO]] with GROUPS >= 2, e.g. 2@0..10")
    start = int(match.group(2) or 0)
    end = int(match.group(3)) if match.group(3) else None
    if end is not None and end <= start:
        raise ValueError(f"partition {text!r}: TO must be after FROM")
    return Partition(int(match.group(1)), start, end)


# ---- shared membership ------------------------------------------------------------------
class _Others(Sequence[str]):
    """The shared reachable list without one id, O(1) per access: the index that holds the
    node itself is served by the list's last element instead."""

    __slots__ = ("ids", "me", "table")

    def __init__(self, table: MemberTable, me: str) -> None:
        self.ids = table.reachable_ids()
        self.me = me
        self.table = table

    def __len__(self) -> int:
        me = self.table.get(self.me)
        return len(self.ids) - (1 if me is not None and me.status in REACHABLE else 0)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        item = self.ids[i]
        return self.ids[-1] if item == self.me else item

    def __iter__(self) -> Iterator[str]:
        return (m for m in self.ids if m != self.me)

    def __contains__(self, member_id: object) -> bool:
        return member_id != self.me and self.table.get(member_id) is not None  # type: ignore[arg-type]


class MemberView:
    """One node's view of the shared member table: everything but itself."""

    def __init__(self, table: MemberTable, me: str) -> None:
        self._table = table
        self._me = me
        self._others = _Others(table, me)

    def __getattr__(self, name: str) -> Any:   # set_status, remove, heard_order, graveyard, ...
        return getattr(self._table, name)

    # the two the kernel calls on every message, forwarded without the __getattr__ detour
    def apply(self, claim: MemberUpdate, now: float) -> Any:
        return self._table.apply(claim, now)

    def mark_heard(self, member_id: str, now: float) -> None:
        self._table.mark_heard(member_id, now)

    def __len__(self) -> int:
        return len(self._table) - 1

    def __contains__(self, member_id: str) -> bool:
        return member_id != self._me and member_id in self._table

    def get(self, member_id: str) -> Member | None:
        return None if member_id == self._me else self._table.get(member_id)

    def all(self) -> list[Member]:
        return [m for m in self._table.all() if m.id != self._me]

    def reachable_ids(self) -> _Others:
        return self._others

    def count(self, status: str) -> int:
        return sum(1 for m in self.all() if m.status == status)

    def counts(self) -> dict[str, int]:
        out = self._table.counts()
        me = self._table.get(self._me)
        if me is not None:
            out[me.status] -= 1
        return out


# ---- results ----------------------------------------------------------------------------
@dataclass
class SimResult:
    scenario: Scenario
    mode: str
    fanout: int
    live: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def rounds_to_all(self) -> int | None:
        """First round after which every live node had every update (None: never)."""
        for row in self.rows:
            if row["all_informed"]:
                return row["round"]
        return None

    def summary(self) -> dict[str, Any]:
        last = self.rows[-1] if self.rows else {}
        return {"nodes": self.scenario.nodes, "live": self.live, "rounds": self.scenario.rounds,
                "mode": self.mode, "fanout": self.fanout, "seed": self.scenario.seed,
                "loss": self.scenario.loss, "crash": self.scenario.crash,
                "latency_ms": list(self.scenario.latency_ms),
                "partition": None if self.scenario.partition is None else vars(self.scenario.partition),
                "updates": self.scenario.updates, "rounds_to_all": self.rounds_to_all,
                "final_informed": last.get("informed"), "payload_copies": last.get("payload_copies"),
                "messages": sum(r["messages"] for r in self.rows), "bytes": sum(r["bytes"] for r in self.rows),
                "wall_s": round(self.wall_s, 3)}


# ---- the simulation ---------------------------------------------------------------------
class Simulation:
    """Build once, then `run()`. Nodes are n0..n{N-1} at sim://n{i}."""

    def __init__(self, config: Config, registry: StrategyRegistry, scenario: Scenario) -> None:
        if scenario.nodes < 2:
            raise ValueError("a simulation needs at least 2 nodes")
        self.config = config
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        strategies = dict(config.strategies)
        strategies["failure_detection"] = StrategyChoice("failure_detection", "static", NoOptions())
        lo, hi = scenario.latency_ms
        self.net = MemoryNetwork(seed=scenario.seed, latency=(lo / 1000, hi / 1000), loss=scenario.loss)
        self.net.on_send = self._on_send
        self.net.on_event = self._on_event
        self.table = MemberTable()
        self.addresses = [f"sim://n{i}" for i in range(scenario.nodes)]
        # no per-node RNG seed, no seeds, no O(n) convergence checks: the simulator watches itself
        gossip = msgspec.structs.replace(config.gossip, rng_seed=None, convergence_check_ms=0)
        base = replace(config, strategies=strategies, gossip=gossip, node=msgspec.structs.replace(config.node, seeds=[]))
        nodes = []
        for i, address in enumerate(self.addresses):
            node = Node.from_config(base.with_node(id=f"n{i}", advertise=address), registry, incarnation=1,
                                    rng_seed=scenario.seed * 1_000_003 + i, aligned_rounds=True,
                                    members=MemberView(self.table, f"n{i}"))
            self.table.apply(MemberUpdate(node.node_id, address, node.inc, "alive"), 0.0)
            nodes.append(node)
        shape = nodes[0].dissemination.round_shape(scenario.nodes)
        if shape is None:
            raise ValueError(f"dissemination {config.strategies['dissemination'].name!r} is not round-based: "
                             f"the simulator compares rounds against theory")
        self.mode, self.fanout, self.interval = shape.mode, shape.fanout, shape.interval
        for node in nodes:
            self.net.add(node)
        self.tracked: dict[str, int] = {}          # key -> update index
        self.informed: list[set[str]] = []
        self.crashed: set[str] = set()
        self._round = {"messages": 0, "bytes": 0, "contacts": 0, "copies": 0}
        self._copies_total = 0

    # -- instruments ------------------------------------------------------------------------
    def _on_send(self, src: str, send: Send) -> None:
        env = send.envelope
        stats = self._round
        stats["messages"] += 1
        if self.scenario.count_bytes:
            stats["bytes"] += encoded_size(env)
        if env.type in CONTACT_TYPES:
            stats["contacts"] += 1
        tracked = self.tracked
        for entry in env.rumors:
            if entry.key in tracked:
                stats["copies"] += 1
        for _, items in body_lists(env.body):
            for entry in items:
                if isinstance(entry, Entry) and entry.key in tracked:
                    stats["copies"] += 1

    def _on_event(self, address: str, event: Effect) -> None:
        if isinstance(event, KeyChanged):
            update = self.tracked.get(event.key)
            if update is not None:
                self.informed[update].add(address)

    # -- running ----------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None, stop_when_informed: bool = False) -> SimResult:
        """Run the scenario's rounds (or, with `stop_when_informed`, until everyone has every update)."""
        import time
        started = time.perf_counter()
        sc = self.scenario
        candidates = list(self.addresses)
        self.rng.shuffle(candidates)
        sources = candidates[:sc.updates]
        crash_count = min(int(round(sc.crash * sc.nodes)), sc.nodes - len(sources))
        for address in candidates[len(candidates) - crash_count:] if crash_count else []:
            self.net.crash(address)
            self.crashed.add(address)
        live = sc.nodes - len(self.crashed)
        if sc.partition is not None and sc.partition.start == 0:
            self._partition(sc.partition.groups)
        for u, address in enumerate(sources):
            key = f"sim/update-{u}"
            self.tracked[key] = u
            self.informed.append(set())
            self.net.put(address, key, u)
        result = SimResult(sc, self.mode, self.fanout, live)
        theory = informed_curve(self.mode, sc.nodes, self.fanout, sc.rounds, live=live, loss=sc.loss,
                                sources=1)
        for r in range(1, sc.rounds + 1):
            if sc.partition is not None:
                if r == sc.partition.start and r > 0:
                    self._partition(sc.partition.groups)
                if sc.partition.end is not None and r == sc.partition.end:
                    self.net.heal()
            self.net.run_until(r * self.interval + self.interval / 2)
            counts = [len(s - self.crashed) for s in self.informed]
            stats, self._round = self._round, {"messages": 0, "bytes": 0, "contacts": 0, "copies": 0}
            self._copies_total += stats["copies"]
            result.rows.append({
                "round": r,
                "time_s": round(r * self.interval, 6),
                "informed": round(sum(counts) / (live * len(counts)), 6),
                "informed_min": round(min(counts) / live, 6),
                "all_informed": all(c == live for c in counts),
                "theory": round(theory[r], 6),
                "payload_copies": round(self._copies_total / (live * len(counts)), 4),
                "contacts": round(stats["contacts"] / live, 4),
                "messages": stats["messages"],
                "bytes": stats["bytes"],
            })
            if progress is not None:
                progress(r)
            if stop_when_informed and result.rows[-1]["all_informed"]:
                break
        result.wall_s = time.perf_counter() - started
        return result

    def _partition(self, groups: int) -> None:
        n = len(self.addresses)
        blocks: list[list[str]] = [[] for _ in range(groups)]
        for i, address in enumerate(self.addresses):
            blocks[i * groups // n].append(address)
        self.net.partition(*blocks)

    @property
    def nodes(self) -> dict[str, Node]:
        return self.net.nodes



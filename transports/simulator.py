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

import gc
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import msgspec

from gossipmq.core.broadcast import BroadcastQueue
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
    latency_ms: tuple[float, float] = (5.0, 5.0)      # one-way; within a zone when there are zones
    partition: Partition | None = None
    crash: float = 0.0
    seed: int = 0
    updates: int = 1
    count_bytes: bool = True
    zones: int = 1                                     # node i is in zone i % zones (tag zone=z<k>)
    cross_zone_ms: tuple[float, float] | None = None   # one-way between zones (default: latency_ms)
    detector: bool = False                             # keep the configured failure detector (else static)
    warmup_rounds: int = 0                             # rounds run (and not reported) before the updates
    warmup_updates: int = 0                            # writes spread during the warm-up (build trees)
    refuse: bool | None = None                         # sends to crashed nodes are refused (None: with hyparview)


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

    # the ones the kernel calls on every message, forwarded without the __getattr__ detour
    @property
    def version(self) -> int:
        return self._table.version

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

    def holders(self) -> list[Member]:
        return [m for m in self._table.holders() if m.id != self._me]

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


# ---- topology ---------------------------------------------------------------------------
class Topology:
    """Zones and per-link latency: node i sits in zone i % zones (interleaved, so the index
    blocks a partition cuts span every zone); a message takes `intra` (ms, uniform in the
    range) inside a zone and `cross` between zones."""

    def __init__(self, zones: int, intra_ms: tuple[float, float], cross_ms: tuple[float, float],
                 rng: random.Random) -> None:
        self.zones = max(1, zones)
        self.intra = (intra_ms[0] / 1000, intra_ms[1] / 1000)
        self.cross = (cross_ms[0] / 1000, cross_ms[1] / 1000)
        self.rng = rng
        self.index: dict[str, int] = {}     # address -> node index

    def zone(self, address: str) -> int:
        return self.index[address] % self.zones

    def delay(self, src: str, dst: str) -> float:
        index = self.index
        zones = self.zones
        lo, hi = self.intra if index[src] % zones == index.get(dst, -1) % zones else self.cross
        return lo if hi <= lo else self.rng.uniform(lo, hi)


# ---- results ----------------------------------------------------------------------------
@dataclass
class SimResult:
    scenario: Scenario
    mode: str
    fanout: int
    live: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    overlay: str = "full"
    #: per node index: messages and bytes it sent, bytes it sent across zones, copies it received
    per_node: dict[str, list[int]] = field(default_factory=dict)
    ms_to_all: float | None = None
    build_s: float = 0.0

    @property
    def rounds_to_all(self) -> int | None:
        """First round after which every live node had every update (None: never)."""
        for row in self.rows:
            if row["all_informed"]:
                return row["round"]
        return None

    def summary(self) -> dict[str, Any]:
        sc = self.scenario
        last = self.rows[-1] if self.rows else {}
        messages = sum(r["messages"] for r in self.rows)
        nbytes = sum(r["bytes"] for r in self.rows)
        cross = sum(r["cross_zone_bytes"] for r in self.rows)
        copies = self.per_node.get("copies_received", [])
        return {"nodes": sc.nodes, "live": self.live, "rounds": sc.rounds,
                "mode": self.mode, "fanout": self.fanout, "seed": sc.seed,
                "loss": sc.loss, "crash": sc.crash,
                "latency_ms": list(sc.latency_ms),
                "partition": None if sc.partition is None else vars(sc.partition),
                "updates": sc.updates, "rounds_to_all": self.rounds_to_all,
                "final_informed": last.get("informed"), "payload_copies": last.get("payload_copies"),
                "messages": messages, "bytes": nbytes,
                "wall_s": round(self.wall_s, 3),
                # issue #15's fields (never rename): per node = divided by the nodes (copies: per live
                # node and per update, as `payload_copies`)
                "payload_copies_per_node": last.get("payload_copies"),
                "messages_per_node": round(messages / sc.nodes, 3),
                "bytes_per_node": round(nbytes / sc.nodes, 1),
                "cross_zone_bytes_per_node": round(cross / sc.nodes, 1),
                "cross_zone_bytes": cross,
                "payload_copies_max_node": max(copies) if copies else None,
                "ms_to_all": self.ms_to_all,
                "overlay": self.overlay, "zones": sc.zones,
                "cross_zone_ms": list(sc.cross_zone_ms) if sc.cross_zone_ms else None,
                "detector": sc.detector, "warmup_rounds": sc.warmup_rounds, "warmup_updates": sc.warmup_updates}


# ---- the simulation ---------------------------------------------------------------------
class Simulation:
    """Build once, then `run()` (or drive it: `inject`, `crash_now`, `run_rounds`). Nodes are
    n0..n{N-1} at sim://n{i}.

    Member state: with the full overlay every node sees one shared table (an oracle: O(n)
    in all). With ``[membership] overlay = "hyparview"`` each node has its own table - its
    active view - and a passive view: O(n log n) in all. The overlay starts in HyParView's
    steady state instead of running 10^5 joins: random symmetric active views of
    `active_size` (a union of random matchings) and random passive views of `passive_size`;
    shuffles, failure handling and neighbour replacement then run for real. Joins themselves
    are exercised by tests/test_overlay.py and the real-process tests."""

    def __init__(self, config: Config, registry: StrategyRegistry, scenario: Scenario) -> None:
        import time
        started = time.perf_counter()
        if scenario.nodes < 2:
            raise ValueError("a simulation needs at least 2 nodes")
        # Millions of long-lived objects: the cyclic collector would rescan them again and again
        # while they are built (it tripled the build time at 10^4 nodes). Off while building;
        # then frozen (never rescanned) until `run` ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._build(config, registry, scenario)
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
        self.build_s = time.perf_counter() - started

    def _build(self, config: Config, registry: StrategyRegistry, scenario: Scenario) -> None:
        self.config = config
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        strategies = dict(config.strategies)
        if not scenario.detector:
            strategies["failure_detection"] = StrategyChoice("failure_detection", "static", NoOptions())
        self.overlay = config.membership.overlay
        partial = self.overlay != "full"
        lo, hi = scenario.latency_ms
        self.topology = Topology(scenario.zones, scenario.latency_ms, scenario.cross_zone_ms or scenario.latency_ms,
                                 random.Random(scenario.seed + 1))
        zoned = scenario.zones > 1 or scenario.cross_zone_ms is not None
        refuse = partial if scenario.refuse is None else scenario.refuse
        self.net = MemoryNetwork(seed=scenario.seed, latency=(lo / 1000, hi / 1000), loss=scenario.loss,
                                 refuse=refuse, delay=self.topology.delay if zoned else None)
        self.net.on_send = self._on_send
        self.net.on_event = self._on_event
        self.table = MemberTable()
        n = scenario.nodes
        self.addresses = [f"sim://n{i}" for i in range(n)]
        self.index = self.topology.index
        for i, address in enumerate(self.addresses):
            self.index[address] = i
        # no per-node RNG seed, no seeds, no O(n) convergence checks: the simulator watches itself
        gossip = msgspec.structs.replace(config.gossip, rng_seed=None, convergence_check_ms=0)
        # the simulator knows n: no random tours for a size estimate
        membership = msgspec.structs.replace(config.membership, size_probe_interval_ms=0)
        base = replace(config, strategies=strategies, gossip=gossip, membership=membership,
                       node=msgspec.structs.replace(config.node, seeds=[]))
        nodes = []
        for i, address in enumerate(self.addresses):
            tags = {**config.node.tags, "zone": f"z{i % scenario.zones}"} if scenario.zones > 1 else None
            # a MemberView stands in for a MemberTable (what it does not define, it forwards)
            view = None if partial else cast(MemberTable, MemberView(self.table, f"n{i}"))
            node = Node.from_config(base.with_node(id=f"n{i}", advertise=address, tags=tags), registry,
                                    incarnation=1, rng_seed=scenario.seed * 1_000_003 + i, aligned_rounds=True,
                                    members=view)
            if not partial:
                self.table.apply(MemberUpdate(node.node_id, address, node.inc, "alive", 0, dict(node.tags)), 0.0)
            nodes.append(node)
        if partial:
            self._bootstrap_overlay(nodes)
        shape = nodes[0].dissemination.round_shape(n)
        if shape is None:
            raise ValueError(f"dissemination {config.strategies['dissemination'].name!r} is not round-based: "
                             f"the simulator compares rounds against theory")
        self.mode, self.fanout, self.interval = shape.mode, shape.fanout, shape.interval
        self.tracked: dict[str, int] = {}          # key -> update index
        self.informed: list[set[str]] = []
        self.injected_at: list[float] = []
        self.last_informed_at: list[float] = []
        self.crashed: set[str] = set()
        self._round = self._zero()
        self._copies_total = 0
        self.per_node = {name: [0] * n for name in ("messages_sent", "bytes_sent", "cross_zone_bytes_sent",
                                                    "copies_received")}
        for node in nodes:
            self.net.add(node)
        self.build_s = 0.0

    @staticmethod
    def _zero() -> dict[str, int]:
        return {"messages": 0, "bytes": 0, "contacts": 0, "copies": 0, "cross": 0}

    def _bootstrap_overlay(self, nodes: list[Node]) -> None:
        """HyParView's steady state: symmetric random active views (a union of `active_size`
        random matchings: every node gets about that many distinct neighbours), random passive
        views, each installed through the overlay (so member tables, events and the tree's
        neighbours follow exactly as after real joins)."""
        from gossipmq.core.hyparview import PeerRef
        from gossipmq.core.overlay import HyParViewOverlay
        n = len(nodes)
        options = self.config.membership
        d = min(options.active_size, n - 1)
        rng = self.rng
        adj: list[list[int]] = [[] for _ in range(n)]
        for _ in range(d):
            order = list(range(n))
            rng.shuffle(order)
            for a, b in zip(order[0::2], order[1::2], strict=False):
                if len(adj[a]) < d and len(adj[b]) < d and b not in adj[a]:
                    adj[a].append(b)
                    adj[b].append(a)
        refs = [PeerRef(node.node_id, node.address) for node in nodes]
        passive_size = min(options.passive_size, n - 1)
        for i, node in enumerate(nodes):
            overlay = node.cluster.overlay
            assert isinstance(overlay, HyParViewOverlay)   # only a partial overlay is bootstrapped
            mine = set(adj[i])
            passive = [refs[j] for j in rng.sample(range(n), min(n, passive_size + d + 1)) if j != i and j not in mine]
            overlay.sync_on_link = False          # a bootstrap, not a join: nothing to catch up
            overlay.install([(refs[j], nodes[j].inc, nodes[j].tags) for j in adj[i]], passive[:passive_size])
            overlay.sync_on_link = True
            # Steady state: nothing new to gossip about the neighbours (a real join would have
            # spread these claims already); only each node's own claim goes out at start.
            node.cluster.broadcasts = BroadcastQueue()
            node.ctx.broadcasts = node.cluster.broadcasts

    # -- instruments ------------------------------------------------------------------------
    def _on_send(self, src: str, send: Send) -> None:
        env = send.envelope
        stats = self._round
        stats["messages"] += 1
        index = self.index
        i = index[src]
        per_node = self.per_node
        per_node["messages_sent"][i] += 1
        if self.scenario.count_bytes:
            size = encoded_size(env)
            stats["bytes"] += size
            per_node["bytes_sent"][i] += size
            j = index.get(send.address)
            zones = self.topology.zones
            if zones > 1 and j is not None and i % zones != j % zones:
                stats["cross"] += size
                per_node["cross_zone_bytes_sent"][i] += size
        if env.type in CONTACT_TYPES:
            stats["contacts"] += 1
        tracked = self.tracked
        if not tracked:
            return
        copies = 0
        for entry in env.rumors:
            if entry.key in tracked:
                copies += 1
        for _, items in body_lists(env.body):
            for item in items:
                if isinstance(item, Entry) and item.key in tracked:
                    copies += 1
        if copies:
            stats["copies"] += copies
            j = index.get(send.address)
            if j is not None:
                per_node["copies_received"][j] += copies

    def _on_event(self, address: str, event: Effect) -> None:
        if isinstance(event, KeyChanged):
            update = self.tracked.get(event.key)
            if update is not None and address not in self.informed[update]:
                self.informed[update].add(address)
                self.last_informed_at[update] = self.net.now

    # -- driving ----------------------------------------------------------------------------
    def live_addresses(self) -> list[str]:
        return [a for a in self.addresses if a not in self.crashed]

    def crash_now(self, fraction: float, spare: Iterable[str] = ()) -> list[str]:
        """Crash-stop that fraction of all nodes now (never those in `spare`); returns them."""
        keep = set(spare)
        candidates = [a for a in self.live_addresses() if a not in keep]
        victims = self.rng.sample(candidates, min(len(candidates), int(round(fraction * self.scenario.nodes))))
        for address in victims:
            self.net.crash(address)
            self.crashed.add(address)
        return victims

    def inject(self, addresses: Sequence[str], prefix: str = "sim/update") -> list[str]:
        """Write one tracked key on each of these nodes now; returns the keys."""
        keys = []
        for address in addresses:
            u = len(self.informed)
            key = f"{prefix}-{u}"
            self.tracked[key] = u
            self.informed.append(set())
            self.injected_at.append(self.net.now)
            self.last_informed_at.append(self.net.now)
            self.net.put(address, key, u)
            keys.append(key)
        return keys

    def reached(self, key: str) -> float:
        """Fraction of the live nodes holding tracked `key`."""
        live = self.scenario.nodes - len(self.crashed)
        return len(self.informed[self.tracked[key]] - self.crashed) / live

    def reset_counters(self) -> None:
        self._round = self._zero()
        self._copies_total = 0
        for values in self.per_node.values():
            values[:] = [0] * len(values)

    def warm_up(self) -> float:
        """Run the scenario's warm-up and return its end time: `warmup_updates` untracked writes
        from random nodes, one per round from round 0 (concurrent first broadcasts prune each
        other's links and leave Plumtree's tree broken in places - repaired by GRAFTs, but
        that is start-up, not the steady state a warm-up is for), then the rest of the rounds."""
        sc = self.scenario
        if sc.warmup_rounds <= 0:
            return 0.0
        writers = self.rng.sample(self.addresses, min(sc.warmup_updates, sc.nodes))
        for w, address in enumerate(writers):
            self.advance(w * self.interval)
            if address in self.net.nodes:
                self.net.put(address, f"sim/warmup-{w}", w)
        end = max(sc.warmup_rounds, len(writers) + 1) * self.interval
        self.advance(end)
        self.reset_counters()
        return end

    # -- running ----------------------------------------------------------------------------
    def advance(self, until: float) -> None:
        """Run the network up to virtual time `until` (a round, usually) with the cyclic collector
        paused, then collect the young generations once. A round makes hundreds of thousands of
        short-lived objects (envelopes, heap entries); collections triggered by allocation counts
        rescanned every survivor again and again (a quarter of the run at 10^4 nodes)."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.net.run_until(until)
        finally:
            if collecting:
                gc.enable()
                gc.collect(1)

    def run(self, progress: Callable[[int], None] | None = None, stop_when_informed: bool = False,
            release: bool = True) -> SimResult:
        """Run the scenario's rounds (or, with `stop_when_informed`, until everyone has every update).
        `release=False` keeps the nodes frozen from the cyclic collector afterwards: right for a
        process that exits next (at 10^5 nodes one more full collection costs half a minute),
        a leak for one that builds more simulations."""
        import time
        started = time.perf_counter()
        sc = self.scenario
        t0 = self.warm_up()
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
        self.inject(sources)
        result = SimResult(sc, self.mode, self.fanout, live, overlay=self.overlay, build_s=self.build_s)
        theory = informed_curve(self.mode, sc.nodes, self.fanout, sc.rounds, live=live, loss=sc.loss,
                                sources=1)
        done_at: list[float | None] = [None] * len(self.informed)
        for r in range(1, sc.rounds + 1):
            if sc.partition is not None:
                if r == sc.partition.start and r > 0:
                    self._partition(sc.partition.groups)
                if sc.partition.end is not None and r == sc.partition.end:
                    self.net.heal()
            self.advance(t0 + r * self.interval + self.interval / 2)
            counts = [len(s - self.crashed) for s in self.informed]
            for u, c in enumerate(counts):
                if c == live and done_at[u] is None:
                    done_at[u] = self.last_informed_at[u] - self.injected_at[u]
            stats, self._round = self._round, self._zero()
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
                "cross_zone_bytes": stats["cross"],
                "messages_per_node": round(stats["messages"] / sc.nodes, 4),
                "bytes_per_node": round(stats["bytes"] / sc.nodes, 2),
                "cross_zone_bytes_per_node": round(stats["cross"] / sc.nodes, 2),
            })
            if progress is not None:
                progress(r)
            if stop_when_informed and result.rows[-1]["all_informed"]:
                break
        if all(d is not None for d in done_at):
            result.ms_to_all = round(max(d for d in done_at if d is not None) * 1000, 3)
        result.per_node = {name: list(values) for name, values in self.per_node.items()}
        result.wall_s = time.perf_counter() - started
        if release:
            gc.unfreeze()   # the nodes may be garbage now: let the collector see them again
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

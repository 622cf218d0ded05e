"""`plumtree`: epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007) as a
dissemination strategy, over core/plumtree.py.

Every local write is broadcast at once: its entry is pushed (``pt_gossip``) to the eager
neighbours and announced by id (``pt_ihave``, batched for `interval_ms`) to the lazy ones.
A node receiving a payload it already had PRUNEs that link (``pt_prune``), so after the first
broadcasts the eager links form a spanning tree and a write costs about one payload copy per
node; a node that hears an IHAVE for a write it lacks GRAFTs the announcer (``pt_graft``)
after `timeout1_ms`, which repairs the tree where a node failed. Message ids are dots
``(origin, counter)``; the payload is the entry itself, so the store's idempotence absorbs
whatever arrives twice, and an IHAVE for a dot the store already covers is ignored (a write
that came by another path - the digest sync with a new neighbour, Merkle anti-entropy - needs
no GRAFT).

Neighbours. Over ``[membership] overlay = "hyparview"`` they are the active view (the member
table); its NeighborUp/NeighborDown become the tree's. Over the full mesh they are a bounded
random subset, kept stable: `neighbors` members chosen by the configured peer selector
(`uniform`, `tag_aware`, `nearest`...), replaced only when one becomes unreachable, plus every
member that chose us (a PRUNE needs both ends to know the link, so a node tells each member
it chooses with a bare GRAFT). Redrawing the subset every round would rebuild the tree every
round; keeping it stable keeps the tree, and the peer selector still decides its shape.

Optimisation. `optimization = "latency"` (the default) swaps an eager link for a lazy one
whose path from the write's origin is estimated faster - estimates come from Vivaldi
coordinates (``ctx.coordinates``): ours is trained by SWIM's probes, and since the tree's
neighbours need not be the members SWIM probes, a Plumtree message carries our coordinate to a
neighbour at most every 30 s. Without coordinates (no SWIM) nothing is swapped, which is
"off". Over the full overlay `repick_ms` lets the neighbour picks move toward near peers over
time: every period the second-slowest pick is replaced by the selector's fastest candidate if
that one is estimated twice as fast (the slowest stays: one long link keeps regions joined; the
dropped peer gets a PRUNE with `unlink`) - with `nearest`, picks made at start-up, before any
coordinate existed, become near ones. Each swap removes a link that may carry a tree edge, so
the next writes are repaired by GRAFT (B19 measures the cost).
`trees = "per_origin"` (the default) keeps a tree per origin for the swaps (forked from the
shared one on its first swap), because on one shared tree the swaps for different writers undo
each other and never settle (docs/scale-algorithms.md measures both).

What Plumtree does not do: announce a write more than once per link. A node whose every
announcement was lost never hears of the write; pair it with ``[anti_entropy] interval_ms``
(Merkle repair), as configs/plumtree.toml does. Failure detection over hyparview should be
`swim` (it probes the neighbours; heartbeat-based detectors need gossip rounds that an idle
tree does not send).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from gossipmq.core import plumtree as pt
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.membership import REACHABLE
from gossipmq.core.messages import Count, Counter, Entry, Envelope
from gossipmq.core.strategies import Context, Dissemination, RoundShape
from gossipmq.core.timers import Timer
from gossipmq.core.vivaldi import Coordinate

Dot = tuple[str, int]
#: latency mode: a neighbour gets our Vivaldi coordinate with a Plumtree message at most this often
COORD_EVERY_S = 30.0
Cost = Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)]


class PlumtreeOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 200     # IHAVE batching; the simulator's round
    timeout1_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 400      # IHAVE heard, payload missing: GRAFT after
    timeout2_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 200      # then the next announcer after
    max_grafts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10           # GRAFTs per missing write
    optimization: Literal["off", "hops", "latency"] = "latency"            # tree reshaping (see module doc)
    trees: Literal["shared", "per_origin"] = "per_origin"                   # where the swaps happen
    optimization_threshold: Annotated[int, msgspec.Meta(ge=1, le=64)] = 7  # "hops": rounds saved to swap
    latency_threshold_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 5.0     # "latency": faster by this much ...
    latency_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.2    # ... and by this share
    neighbors: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4               # full overlay: peers we choose
    repick_ms: Annotated[int, msgspec.Meta(ge=0)] = 0                      # full overlay: swap a slow pick for a
                                                                           # 2x nearer one this often (0: never)
    max_ihave_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256   # ids per IHAVE
    id_retention_ms: Annotated[int, msgspec.Meta(ge=1)] = 120_000          # duplicate detection memory
    max_ids: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    payload_retention_ms: Annotated[int, msgspec.Meta(ge=1)] = 30_000      # payloads kept for GRAFTs
    max_payloads: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    max_missing: Annotated[int, msgspec.Meta(ge=1)] = 10_000               # announced-but-missing ids tracked
    max_trees: Annotated[int, msgspec.Meta(ge=1)] = 1024                   # per-origin trees kept


# ---- wire bodies (strategy-owned; bounded, entries in a list so security and limits see them) ----
class PtGossip(msgspec.Struct, frozen=True):
    """The payload, pushed along an eager link: one entry, its round (hops from the origin) and,
    in latency mode, the sender's estimated time from the origin."""

    entries: list[Entry]
    round: Count
    cost: Cost | None = None
    coord: Coordinate | None = None   # latency mode: the sender's coordinate, now and then


class PtAnnouncement(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    counter: Counter
    round: Count
    cost: Cost | None = None


class PtIHave(msgspec.Struct, frozen=True):
    """Lazy push: dots the sender has, batched."""

    ids: list[PtAnnouncement]
    coord: Coordinate | None = None


class PtGraft(msgspec.Struct, frozen=True):
    """Make the link eager (in the tree of `root` when `tree`); resend the dot (origin,
    counter) unless counter is 0 (an optimisation graft: the link only)."""

    origin: str = ""
    counter: Count = 0
    round: Count = 0
    root: str = ""
    tree: bool = False
    coord: Coordinate | None = None


class PtPrune(msgspec.Struct, frozen=True):
    """Make the link lazy (in the tree of `root` when `tree`); `unlink`: we no longer choose
    you as a neighbour (full overlay), drop the link."""

    root: str = ""
    tree: bool = False
    unlink: bool = False


def _origin(dot: Dot) -> str:
    return dot[0]


class Plumtree(Dissemination):
    """Eager push along a spanning tree, lazy IHAVE on the other links, GRAFT repairs, PRUNE cuts cycles."""

    message_types: ClassVar = {"pt_gossip": PtGossip, "pt_ihave": PtIHave, "pt_graft": PtGraft, "pt_prune": PtPrune}
    STATS: ClassVar = ("delivered", "duplicates", "grafts_sent", "prunes_sent", "optimizations", "gave_up",
                       "trees_forked", "trees_dropped")

    def __init__(self, options: PlumtreeOptions) -> None:
        self.options = options
        self.interval = options.interval_ms / 1000
        self.tree: pt.Plumtree[str, Dot] = pt.Plumtree(pt.PlumtreeOptions(
            timeout1=options.timeout1_ms / 1000, timeout2=options.timeout2_ms / 1000, max_grafts=options.max_grafts,
            optimization=options.optimization, optimization_threshold=options.optimization_threshold,
            latency_threshold=options.latency_threshold_ms / 1000, latency_ratio=options.latency_ratio,
            lazy_flush_delay=self.interval, max_ihave_batch=options.max_ihave_batch,
            id_retention=options.id_retention_ms / 1000, max_ids=options.max_ids,
            payload_retention=options.payload_retention_ms / 1000, max_payloads=options.max_payloads,
            max_missing=options.max_missing, trees=options.trees, max_trees=options.max_trees),
            latency=self._latency if options.optimization == "latency" else None, root_of=_origin)
        self.ctx: Context | None = None
        self.picks: dict[str, None] = {}       # full overlay: the members we chose
        self.inbound: dict[str, None] = {}     # full overlay: members that chose us
        self._coord_sent: OrderedDict[str, float] = OrderedDict()   # peer -> when it last got our coordinate
        self._version = -1
        self._reported = dict.fromkeys(self.STATS, 0)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self._sync(ctx)
        if self.options.repick_ms > 0 and not ctx.overlay.partial:
            ctx.schedule(self.concern, "repick", ctx.round_delay(self.options.repick_ms / 1000, first=True))

    def round_shape(self, n: int) -> RoundShape:
        """Not round-based: a write goes out at once. The "round" is the IHAVE batching period,
        and the fanout the neighbours we choose."""
        return RoundShape("plumtree", self.options.neighbors, self.interval)

    def on_members_changed(self, ctx: Context) -> None:
        self._sync(ctx)

    def on_local_write(self, ctx: Context, entry: Entry) -> None:
        self._sync(ctx)
        self._apply(ctx, self.tree.broadcast(ctx.now, entry.dot, entry))

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        if timer.name == "pt" and isinstance(timer.arg, tuple):
            self._sync(ctx)
            self._apply(ctx, self.tree.on_timer(ctx.now, timer.arg))
        elif timer.name == "repick":
            self._repick(ctx)
            ctx.schedule(self.concern, "repick", ctx.round_delay(self.options.repick_ms / 1000))

    def _repick(self, ctx: Context) -> None:
        """Replace our second-slowest pick by the selector's fastest candidate when the candidate
        is estimated at least twice as fast (Vivaldi): picks made at start-up, before
        coordinates existed, move toward near peers one link per period, and stop moving once
        they are near - no churn from the selector's random share. The slowest pick is kept:
        one long link per node keeps far regions joined. The dropped peer is told (PRUNE with
        `unlink`)."""
        if not self.picks:
            return
        candidates = [p for p in ctx.select_peers(self.options.neighbors) if p not in self.picks]
        if not candidates:
            return

        def estimate(peer: str) -> float:
            rtt = ctx.coordinates.rtt(peer)
            return math.inf if rtt is None else rtt
        ranked = sorted(self.picks, key=estimate)
        if len(ranked) < 2:
            return
        worst = ranked[-2]        # the slowest pick stays: one long link per node keeps regions joined
        best = min(candidates, key=estimate)
        if not 2 * estimate(best) < estimate(worst):
            return
        del self.picks[worst]
        if worst not in self.inbound:
            self.tree.neighbor_down(worst)
            ctx.send(worst, "pt_prune", PtPrune(unlink=True))
        self.picks[best] = None
        self.tree.neighbor_up(best)
        ctx.send(best, "pt_graft", PtGraft(coord=self._coord_for(ctx, best)))
        ctx.count("plumtree_repicks")

    # ---- receiving ------------------------------------------------------------------------------
    def on_message(self, ctx: Context, env: Envelope) -> None:
        self._sync(ctx)
        sender, body = env.src, env.body
        if not ctx.overlay.partial and sender not in self.picks and sender not in self.inbound:
            member = ctx.members.get(sender)
            if member is not None and member.status in REACHABLE:
                self.inbound[sender] = None       # it chose us: the link is undirected now
                self.tree.neighbor_up(sender)
        coord = getattr(body, "coord", None)
        if coord is not None:
            ctx.coordinates.learn(sender, coord)
        if isinstance(body, PtPrune) and body.unlink:
            if sender in self.inbound:
                del self.inbound[sender]
                if sender not in self.picks:
                    self.tree.neighbor_down(sender)
            return
        msg: pt.Message
        if isinstance(body, PtGossip):
            if len(body.entries) != 1:
                ctx.drop("plumtree_malformed", f"pt_gossip from {sender} carries {len(body.entries)} entries")
                return
            entry = body.entries[0]
            msg = pt.Gossip(entry.dot, entry, body.round, body.cost)
        elif isinstance(body, PtIHave):
            marks = ctx.store.watermarks
            anns = tuple(pt.Announcement((a.origin, a.counter), a.round, a.cost) for a in body.ids
                         if marks.get(a.origin, 0) < a.counter)   # covered here already: no GRAFT
            if not anns:
                return
            msg = pt.IHave(anns)
        elif isinstance(body, PtGraft):
            msg = pt.Graft((body.origin, body.counter) if body.counter else None, body.round,
                           body.root or None, body.tree)
        elif isinstance(body, PtPrune):
            msg = pt.Prune(body.root or None, body.tree)
        else:
            return
        self._apply(ctx, self.tree.on_message(ctx.now, sender, msg), env)

    # ---- outputs ----------------------------------------------------------------------------------
    def _apply(self, ctx: Context, outs: list[pt.Output], env: Envelope | None = None) -> None:
        for out in outs:
            if isinstance(out, pt.Send):
                self._send(ctx, out.peer, out.message, env)
            elif isinstance(out, pt.Deliver):
                ctx.apply_entry(out.payload)
            else:
                ctx.schedule(self.concern, "pt", max(0.0, out.at - ctx.now), out.key)
        stats = self.tree.stats
        for name, last in self._reported.items():
            if stats[name] != last:
                ctx.count(f"plumtree_{name}", stats[name] - last)
                self._reported[name] = stats[name]

    def _send(self, ctx: Context, peer: str, msg: pt.Message, env: Envelope | None) -> None:
        body: msgspec.Struct
        if isinstance(msg, pt.Gossip):
            body = PtGossip([msg.payload], msg.round, msg.cost, self._coord_for(ctx, peer))
        elif isinstance(msg, pt.IHave):
            body = PtIHave([PtAnnouncement(a.id[0], a.id[1], a.round, a.cost) for a in msg.ids],
                           self._coord_for(ctx, peer))
        elif isinstance(msg, pt.Graft):
            origin, counter = msg.id if msg.id is not None else ("", 0)
            body = PtGraft(origin, counter, msg.round, msg.root or "", msg.tree, self._coord_for(ctx, peer))
        else:
            body = PtPrune(msg.root or "", msg.tree)
        type_name = _TYPE_OF[type(body)]
        if peer in ctx.members:
            ctx.send(peer, type_name, body)
        elif env is not None and env.src == peer:   # a GRAFT answer to a node outside our view
            ctx.send_to_address(env.addr, type_name, body)

    # ---- neighbours -------------------------------------------------------------------------------
    def _sync(self, ctx: Context) -> None:
        """Bring the tree's neighbours in line with the overlay (only when the member table's
        reachable set changed: `version`)."""
        members = ctx.members
        version = members.version
        if version == self._version:
            return
        self._version = version
        if ctx.overlay.partial:
            wanted = dict.fromkeys(members.reachable_ids())
        else:
            for chosen in (self.picks, self.inbound):
                for peer in [p for p in chosen if (m := members.get(p)) is None or m.status not in REACHABLE]:
                    del chosen[peer]
            need = self.options.neighbors - len(self.picks)
            if need > 0:
                for peer in ctx.select_peers(need, exclude=self.picks):
                    self.picks[peer] = None
                    # Tell it now (a GRAFT for no message: "this link is eager"), so the link is
                    # known at both ends before the first broadcast needs it.
                    ctx.send(peer, "pt_graft", PtGraft(coord=self._coord_for(ctx, peer)))
            wanted = {**self.picks, **self.inbound}
        for peer in [p for p in self.tree.neighbors if p not in wanted]:
            self.tree.neighbor_down(peer)
        for peer in wanted:
            self.tree.neighbor_up(peer)

    def _coord_for(self, ctx: Context, peer: str) -> Coordinate | None:
        """Our coordinate for `peer` in latency mode, at most every COORD_EVERY_S per peer: the
        tree's neighbours need not be the members SWIM happens to probe."""
        if self.options.optimization != "latency" or not ctx.coordinates.client.updates:
            return None
        sent = self._coord_sent.get(peer)
        if sent is not None and ctx.now - sent < COORD_EVERY_S:
            return None
        self._coord_sent[peer] = ctx.now
        self._coord_sent.move_to_end(peer)
        while len(self._coord_sent) > 4096:
            self._coord_sent.popitem(last=False)
        return ctx.coordinates.mine

    def _latency(self, peer: str) -> float | None:
        """One-way estimate to `peer` (seconds): half the RTT its Vivaldi coordinate predicts."""
        ctx = self.ctx
        if ctx is None:
            return None
        rtt = ctx.coordinates.rtt(peer)
        return None if rtt is None else rtt / 2


_TYPE_OF: dict[type, str] = {body: name for name, body in Plumtree.message_types.items()}


@hookimpl
def gossipmq_register_strategies(registry: Any) -> None:
    registry.register("dissemination", "plumtree", Plumtree, PlumtreeOptions)

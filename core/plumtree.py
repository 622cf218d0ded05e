"""Plumtree: epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007), sans-I/O.

Flooding a gossip overlay delivers every message over every link: each node receives it
once per neighbour. Plumtree keeps flooding's reliability at close to a tree's cost by
splitting a node's neighbours into two sets:

* eager peers get the payload at once (GOSSIP);
* lazy peers only get the message id, batched (IHAVE).

Everyone starts eager. A node that receives a payload it already has PRUNEs the link (the
sender becomes lazy on both ends), so after the first broadcast the eager links are the ones
that delivered first: a spanning tree, since any undirected spanning tree carries a
broadcast from any root exactly once per node. The lazy links are the safety net: a node
that hears IHAVE for a message it lacks starts a timer (`timeout1`); if the payload has not
come when it fires, the node GRAFTs the announcer (asking for the payload and making the
link eager again), then tries the next announcer after `timeout2`, so the tree heals where
it broke. Every payload carries its *round* (hops from the origin) and IHAVE announces the
round the payload would have had over that link.

Optimisation (paper section 3.8), opt-in (`optimization`): when a lazy link announces a
message with round r_lazy and the eager path delivered it with r_eager, r_eager - r_lazy >=
`optimization_threshold`, the lazy link is a much shorter path: graft it (GRAFT without an
id) and prune the eager one. With a latency estimate per peer (a callable, e.g. fed by
Vivaldi), "latency" mode replaces hops by estimated time: GOSSIP and IHAVE carry the
sender's *cost* (estimated time from the origin to the sender, the sum of per-link
estimates), a receiver adds its estimate of the last link, and a lazy path estimated faster
by `latency_threshold` seconds and `latency_ratio` of the eager cost replaces the eager one.
A lazy peer downstream of us never qualifies: its path includes ours. Caveat: with one tree
shared by all origins (the paper's, `trees="shared"`), a swap that shortens the path from one
origin can lengthen it from others; with many origins the swaps never settle.

Per-origin trees (`trees="per_origin"` with a `root_of(id)` callable; riak_core and partisan
keep eager/lazy sets per root too): the shared tree is built as in the paper - by the first
broadcasts' PRUNEs - and serves every origin, so a new origin's first broadcast already costs
one copy per node (riak_core instead starts each root from a tree computed over the member
list; we have no member list). An optimisation swap *forks* a tree for the message's origin
only (a copy of the shared sets, then the swap), and the GRAFT and PRUNE it sends name that
root and ask the peer to fork too. Each origin's tree then moves toward its own fastest paths
and stops there, and no origin's swaps touch another's. A PRUNE or a repairing GRAFT applies,
at each end, to whatever tree that root's messages use there. Forks are bounded
(`max_trees`, least recently used dropped: that origin falls back to the shared tree).

Peers and message ids are opaque hashable values; payloads are opaque. Outputs are values:
`Send`, `Deliver` and `Timer` (the caller calls ``on_timer(now, key)`` at `at`; a later
Timer with the same key replaces the earlier one, and stale firings are ignored anyway).
Memory is bounded: see `PlumtreeOptions` (received ids, cached payloads, missing ids).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import msgspec

P = TypeVar("P", bound=Hashable)     # a peer
I = TypeVar("I", bound=Hashable)     # a message id  # noqa: E741


# ---- wire messages (JSON objects, usable as envelope bodies) ------------------------------

class Gossip(msgspec.Struct, Generic[I], frozen=True):
    """A payload, eagerly pushed. `round` = hops from the origin (0 on the origin's links)."""

    id: I
    payload: Any
    round: int
    cost: float | None = None   # sender's estimated time from the origin (latency mode only)


class Announcement(msgspec.Struct, Generic[I], frozen=True, array_like=True):
    """One entry of an IHAVE: the id and the round it would have had over this link."""

    id: I
    round: int
    cost: float | None = None


class IHave(msgspec.Struct, Generic[I], frozen=True):
    """Lazy push: ids the sender has, batched."""

    ids: tuple[Announcement[I], ...]


class Graft(msgspec.Struct, Generic[I], frozen=True):
    """Make this link eager again; resend `id` if given (None: optimisation, link only).
    Per-origin trees: `root` names the tree; `tree` says the sender changed its own tree for
    that root (the receiver then changes its tree for it too, forking it if needed)."""

    id: I | None
    round: int
    root: Any = None
    tree: bool = False


class Prune(msgspec.Struct, frozen=True):
    """Make this link lazy: the sender got a payload it already had over it. `root` and
    `tree` as in `Graft`."""

    root: Any = None
    tree: bool = False


Message = Gossip[Any] | IHave[Any] | Graft[Any] | Prune

#: body type names for a future codec registry (as messages.KERNEL_BODIES)
MESSAGE_TYPES: dict[str, type[msgspec.Struct]] = {
    "pt_gossip": Gossip, "pt_ihave": IHave, "pt_graft": Graft, "pt_prune": Prune,
}


# ---- outputs ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send(Generic[P]):
    peer: P
    message: Message


@dataclass(frozen=True, slots=True)
class Deliver(Generic[P, I]):
    """A message seen for the first time (never for our own broadcasts)."""

    id: I
    payload: Any
    round: int
    sender: P


@dataclass(frozen=True, slots=True)
class Timer:
    """Call ``on_timer(now, key)`` at `at`. Keys: ("missing", id) and ("flush",)."""

    at: float
    key: tuple[Any, ...]


Output = Send[Any] | Deliver[Any, Any] | Timer


@dataclass(frozen=True, slots=True)
class PlumtreeOptions:
    """Parameters. The paper gives no timeout values: they depend on the overlay's diameter
    and link latency (timeout2 "in the order of an average round trip time to a neighbor")."""

    #: wait after the first IHAVE for a missing payload before grafting (seconds)
    timeout1: float = 0.4
    #: wait after each GRAFT before grafting the next announcer (seconds)
    timeout2: float = 0.2
    #: GRAFTs per missing message before giving up (anti-entropy repairs the rest). The paper
    #: stops when the announcers run out; we cycle through them, which rides out lost GRAFTs
    max_grafts: int = 10
    #: the optimisation: "off" (keep the tree the first broadcast built, repaired by GRAFTs),
    #: "hops" (the paper's rule) or "latency" (estimated time, needs the latency callable).
    #: Off by default here: on one shared tree, broadcasts from different origins undo each
    #: other's swaps; measured on 150-node overlays with many origins, "hops" kept swapping and
    #: made delivery 1.5-2.9x slower than "off". With trees="per_origin" the swaps settle
    #: (the `plumtree` strategy turns both on; docs/scale-algorithms.md)
    optimization: Literal["off", "hops", "latency"] = "off"
    #: "hops": r_eager - r_lazy that triggers a swap (the paper's experiments use 7)
    optimization_threshold: int = 7
    #: "latency": the lazy path must be faster by this many seconds ...
    latency_threshold: float = 0.005
    #: ... and by this fraction of the eager path's estimated time (margin for coordinate
    #: noise; Vivaldi's median error is around 10 %)
    latency_ratio: float = 0.2
    #: IHAVEs are batched per peer; 0 sends them at the end of each input, > 0 delays them
    #: (more ids per IHAVE, later repair)
    lazy_flush_delay: float = 0.0
    max_ihave_batch: int = 256
    #: received ids are remembered this long (seconds) and at most `max_ids` of them: a
    #: payload arriving again after that is delivered again (the store is idempotent)
    id_retention: float = 120.0
    max_ids: int = 100_000
    #: payloads kept to answer GRAFTs: this long and at most this many
    payload_retention: float = 30.0
    max_payloads: int = 10_000
    #: ids announced but not received that we track (oldest dropped first)
    max_missing: int = 10_000
    #: "shared": one tree for every origin (the paper). "per_origin" (needs `root_of`): the
    #: optimisation swaps links in a tree of the message's origin only, forked from the shared
    #: tree on its first swap, so swaps for one origin never undo another's
    trees: Literal["shared", "per_origin"] = "shared"
    #: per-origin trees kept (least recently used dropped: that origin uses the shared tree again)
    max_trees: int = 1024


class _Tree:
    """One origin's eager and lazy sets (per-origin trees): the same neighbours as the shared
    sets, split differently."""

    __slots__ = ("eager", "lazy")

    def __init__(self, eager: dict[Any, None], lazy: dict[Any, None]) -> None:
        self.eager = eager
        self.lazy = lazy


class _Seen:
    __slots__ = ("at", "round", "sender", "cost", "optimized")

    def __init__(self, at: float, round: int, sender: Any, cost: float | None) -> None:
        self.at = at
        self.round = round
        self.sender = sender        # None for our own broadcasts
        self.cost = cost            # our estimated time from the origin, None if unknown
        self.optimized = False      # at most one swap per message


class _Missing:
    __slots__ = ("announcers", "deadline", "grafts")

    def __init__(self) -> None:
        self.announcers: dict[Any, tuple[int, float | None]] = {}   # peer -> (round, cost)
        self.deadline: float | None = None
        self.grafts = 0


def _clean_cost(cost: float | None) -> float | None:
    return cost if isinstance(cost, float | int) and math.isfinite(cost) and cost >= 0 else None


class Plumtree(Generic[P, I]):
    """One node's Plumtree state over the neighbour set the caller maintains."""

    __slots__ = ("options", "_latency", "_root_of", "eager", "lazy", "_trees", "_received", "_payloads",
                 "_missing", "_lazy_queue", "_flush_at", "stats")

    def __init__(self, options: PlumtreeOptions | None = None, *,
                 latency: Callable[[P], float | None] | None = None,
                 neighbors: Iterable[P] = (), root_of: Callable[[I], Hashable] | None = None) -> None:
        """`root_of(id)`: the origin of a message (per-origin trees need it)."""
        self.options = options or PlumtreeOptions()
        self._latency = latency
        self._root_of = root_of if self.options.trees == "per_origin" else None
        self.eager: dict[P, None] = dict.fromkeys(neighbors)   # ordered sets (determinism); the shared tree
        self.lazy: dict[P, None] = {}
        self._trees: OrderedDict[Hashable, _Tree] = OrderedDict()   # origin -> its own tree, once forked
        self._received: OrderedDict[I, _Seen] = OrderedDict()
        self._payloads: OrderedDict[I, tuple[float, Any, float | None]] = OrderedDict()
        self._missing: OrderedDict[I, _Missing] = OrderedDict()
        self._lazy_queue: dict[P, list[Announcement[I]]] = {}
        self._flush_at: float | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            ("delivered", "duplicates", "gossip_sent", "ihave_sent", "grafts_sent", "prunes_sent",
             "optimizations", "gave_up", "trees_forked", "trees_dropped"), 0)

    # ---- neighbour set --------------------------------------------------------------

    @property
    def neighbors(self) -> list[P]:
        return [*self.eager, *self.lazy]

    def neighbor_up(self, peer: P) -> None:
        """A new neighbour starts eager (paper: "simply added to eagerPushPeers"), in every tree."""
        if peer not in self.eager and peer not in self.lazy:
            self.eager[peer] = None
            for tree in self._trees.values():
                tree.eager[peer] = None

    def neighbor_down(self, peer: P) -> None:
        """Forget a neighbour, its queued IHAVEs and its announcements."""
        self.eager.pop(peer, None)
        self.lazy.pop(peer, None)
        for tree in self._trees.values():
            tree.eager.pop(peer, None)
            tree.lazy.pop(peer, None)
        self._lazy_queue.pop(peer, None)
        for entry in self._missing.values():
            entry.announcers.pop(peer, None)

    def set_neighbors(self, peers: Iterable[P]) -> None:
        """Replace the neighbour set (e.g. with a full member list): new peers start eager."""
        wanted = dict.fromkeys(peers)
        for peer in [p for p in self.neighbors if p not in wanted]:
            self.neighbor_down(peer)
        for peer in wanted:
            self.neighbor_up(peer)

    def has_received(self, msg_id: I) -> bool:
        return msg_id in self._received

    @property
    def trees(self) -> int:
        """Per-origin trees currently forked from the shared one."""
        return len(self._trees)

    def tree_of(self, root: Hashable) -> tuple[list[P], list[P]]:
        """(eager, lazy) peers used for messages of origin `root`."""
        eager, lazy = self._sets(root)
        return list(eager), list(lazy)

    # ---- inputs ---------------------------------------------------------------------

    def broadcast(self, now: float, msg_id: I, payload: Any) -> list[Output]:
        """Originate a message (not delivered back to us). An id already seen is ignored."""
        out: list[Output] = []
        self._expire(now)
        if msg_id in self._received:
            return out
        cost = 0.0 if self._latency is not None else None
        self._remember(now, msg_id, payload, 0, None, cost)
        self._push(out, msg_id, payload, 0, cost, exclude=())
        self._finish(now, out)
        return out

    def on_message(self, now: float, sender: P, msg: Message) -> list[Output]:
        out: list[Output] = []
        self._expire(now)
        if isinstance(msg, Gossip):
            self._on_gossip(now, sender, msg, out)
        elif isinstance(msg, IHave):
            self._on_ihave(now, sender, msg, out)
        elif isinstance(msg, Graft):
            self._on_graft(sender, msg, out)
        elif isinstance(msg, Prune):
            eager, lazy = self._control_sets(msg.root, msg.tree)
            if sender in eager:
                eager.pop(sender, None)
                lazy[sender] = None
        self._finish(now, out)
        return out

    def on_timer(self, now: float, key: tuple[Any, ...]) -> list[Output]:
        out: list[Output] = []
        self._expire(now)
        if key and key[0] == "missing" and len(key) == 2:
            self._on_missing_timer(now, key[1], out)
        elif key == ("flush",) and self._flush_at is not None and now >= self._flush_at:
            self._flush_at = None
            self._flush(out)
        self._finish(now, out)
        return out

    # ---- handlers -------------------------------------------------------------------

    def _on_gossip(self, now: float, sender: P, msg: Gossip[I], out: list[Output]) -> None:
        if not isinstance(msg.round, int) or msg.round < 0:
            return
        root = self._root(msg.id)
        eager, lazy = self._sets(root)
        if msg.id in self._received:
            self.stats["duplicates"] += 1
            # The tree has a cycle here: cut this link. Also when the sender is lazy here: it
            # still believes the link eager (a crossing PRUNE/GRAFT), and would keep pushing.
            if sender in eager or sender in lazy:
                eager.pop(sender, None)
                lazy[sender] = None
            out.append(Send(sender, Prune(root, self._forked(root))))
            self.stats["prunes_sent"] += 1
            return
        link = self._link_latency(sender)
        upstream = _clean_cost(msg.cost)
        cost = upstream + link if upstream is not None and link is not None else None
        seen = self._remember(now, msg.id, msg.payload, msg.round, sender, cost)
        self.stats["delivered"] += 1
        out.append(Deliver(msg.id, msg.payload, msg.round, sender))
        if sender in lazy:
            lazy.pop(sender, None)
            eager[sender] = None
        entry = self._missing.pop(msg.id, None)
        announcers: dict[Any, tuple[int, float | None]] = entry.announcers if entry else {}
        # Paper's order: lazy announcements that came *before* the payload may show a shorter path.
        for peer, (lazy_round, lazy_cost) in announcers.items():
            if self._maybe_optimize(seen, root, peer, lazy_round, lazy_cost, out):
                break
        # Whoever announced the message has it: neither push nor announce it to them.
        self._push(out, msg.id, msg.payload, msg.round + 1, cost, exclude=(sender, *announcers))

    def _on_ihave(self, now: float, sender: P, msg: IHave[I], out: list[Output]) -> None:
        known = sender in self.eager or sender in self.lazy
        for ann in msg.ids:
            if not isinstance(ann.round, int) or ann.round < 0:
                continue
            seen = self._received.get(ann.id)
            if seen is not None:
                if known:
                    self._maybe_optimize(seen, self._root(ann.id), sender, ann.round, _clean_cost(ann.cost), out)
                continue
            if not known:
                continue                        # a peer that is no longer (or not yet) a neighbour
            entry = self._missing.get(ann.id)
            if entry is None:
                entry = self._missing[ann.id] = _Missing()
                while len(self._missing) > self.options.max_missing:
                    self._missing.popitem(last=False)
            entry.announcers.setdefault(sender, (ann.round, _clean_cost(ann.cost)))
            if entry.deadline is None:
                entry.deadline = now + self.options.timeout1
                out.append(Timer(entry.deadline, ("missing", ann.id)))

    def _on_graft(self, sender: P, msg: Graft[I], out: list[Output]) -> None:
        root = msg.root if msg.id is None else self._root(msg.id)
        eager, lazy = self._control_sets(root, msg.tree)
        if sender in lazy:
            lazy.pop(sender, None)
            eager[sender] = None
        if msg.id is None:
            return
        cached = self._payloads.get(msg.id)
        if cached is not None:      # answer even a non-neighbour: it costs one copy and repairs
            _, payload, cost = cached
            out.append(Send(sender, Gossip(msg.id, payload, max(0, int(msg.round)), cost)))
            self.stats["gossip_sent"] += 1

    def _on_missing_timer(self, now: float, msg_id: Any, out: list[Output]) -> None:
        entry = self._missing.get(msg_id)
        if entry is None or entry.deadline is None or now < entry.deadline:
            return                              # received meanwhile, or a stale timer
        if entry.grafts >= self.options.max_grafts:
            del self._missing[msg_id]
            self.stats["gave_up"] += 1
            return
        if not entry.announcers:
            entry.deadline = None               # a new IHAVE restarts the wait
            return
        # Round-robin over the announcers, oldest first (the paper's removeFirstAnnouncement,
        # but kept so a lost GRAFT or reply can be retried).
        peers = list(entry.announcers)
        peer = peers[entry.grafts % len(peers)]
        lazy_round, _ = entry.announcers[peer]
        entry.grafts += 1
        entry.deadline = now + self.options.timeout2
        out.append(Timer(entry.deadline, ("missing", msg_id)))
        root = self._root(msg_id)
        eager, lazy = self._sets(root)
        if peer in lazy:
            lazy.pop(peer, None)
            eager[peer] = None
        out.append(Send(peer, Graft(msg_id, lazy_round, root, self._forked(root))))
        self.stats["grafts_sent"] += 1

    # ---- optimisation ---------------------------------------------------------------

    def _maybe_optimize(self, seen: _Seen, root: Hashable, lazy_peer: Any, lazy_round: int,
                        lazy_cost: float | None, out: list[Output]) -> bool:
        """Swap the eager link that delivered a message (`seen`) for `lazy_peer` if the lazy path
        is much shorter in hops ("hops") or clearly faster by estimated time ("latency"). With
        per-origin trees only the tree of the message's origin changes (forked if need be)."""
        eager_peer = seen.sender
        eager, lazy = self._sets(root)
        if (seen.optimized or eager_peer is None or eager_peer == lazy_peer or eager_peer not in eager
                or lazy_peer not in lazy):
            return False
        mode = self.options.optimization
        if mode == "latency":
            link = self._link_latency(lazy_peer)
            if seen.cost is None or lazy_cost is None or link is None:
                return False                    # no estimate, no opinion (hops are not time)
            gain = seen.cost - (lazy_cost + link)
            better = gain >= self.options.latency_threshold and gain >= self.options.latency_ratio * seen.cost
        elif mode == "hops":
            threshold = self.options.optimization_threshold
            better = threshold > 0 and seen.round - lazy_round >= threshold
        else:
            return False
        if not better:
            return False
        seen.optimized = True
        if root is not None:
            tree = self._fork(root)
            eager, lazy = tree.eager, tree.lazy
        lazy.pop(lazy_peer, None)
        eager[lazy_peer] = None
        out.append(Send(lazy_peer, Graft(None, lazy_round, root, root is not None)))
        eager.pop(eager_peer, None)
        lazy[eager_peer] = None
        out.append(Send(eager_peer, Prune(root, root is not None)))
        self.stats["grafts_sent"] += 1
        self.stats["prunes_sent"] += 1
        self.stats["optimizations"] += 1
        return True

    # ---- helpers --------------------------------------------------------------------

    def _link_latency(self, peer: Any) -> float | None:
        if self._latency is None:
            return None
        return _clean_cost(self._latency(peer))

    def _root(self, msg_id: Any) -> Hashable:
        """The message's origin with per-origin trees, else None (everything on the shared tree)."""
        return None if self._root_of is None else self._root_of(msg_id)

    def _sets(self, root: Hashable) -> tuple[dict[Any, None], dict[Any, None]]:
        """The eager and lazy sets messages of `root` use: its own tree if forked, else the shared one."""
        if root is not None:
            tree = self._trees.get(root)
            if tree is not None:
                self._trees.move_to_end(root)
                return tree.eager, tree.lazy
        return self.eager, self.lazy

    def _forked(self, root: Hashable) -> bool:
        return root is not None and root in self._trees

    def _fork(self, root: Hashable) -> _Tree:
        """`root`'s own tree, copied from the shared one the first time."""
        tree = self._trees.get(root)
        if tree is None:
            tree = self._trees[root] = _Tree(dict(self.eager), dict(self.lazy))
            self.stats["trees_forked"] += 1
            while len(self._trees) > max(1, self.options.max_trees):
                self._trees.popitem(last=False)
                self.stats["trees_dropped"] += 1
        else:
            self._trees.move_to_end(root)
        return tree

    def _control_sets(self, root: Any, tree: Any) -> tuple[dict[Any, None], dict[Any, None]]:
        """Where a received GRAFT/PRUNE applies: the sender changed its own tree for `root`
        (`tree`), so we change ours (forking it); otherwise whatever `root`'s messages use here.
        Roots are ignored without per-origin trees (and must be hashable)."""
        if self._root_of is None or root is None:
            return self.eager, self.lazy
        try:
            hash(root)
        except TypeError:
            return self.eager, self.lazy
        if tree is True:
            forked = self._fork(root)
            return forked.eager, forked.lazy
        return self._sets(root)

    def _remember(self, now: float, msg_id: I, payload: Any, round: int, sender: Any,
                  cost: float | None) -> _Seen:
        seen = self._received[msg_id] = _Seen(now, round, sender, cost)
        self._payloads[msg_id] = (now, payload, cost)
        while len(self._received) > self.options.max_ids:
            self._received.popitem(last=False)
        while len(self._payloads) > self.options.max_payloads:
            self._payloads.popitem(last=False)
        return seen

    def _push(self, out: list[Output], msg_id: I, payload: Any, round: int, cost: float | None,
              exclude: tuple[Any, ...]) -> None:
        eager, lazy = self._sets(self._root(msg_id))
        for peer in eager:
            if peer not in exclude:
                out.append(Send(peer, Gossip(msg_id, payload, round, cost)))
                self.stats["gossip_sent"] += 1
        for peer in lazy:
            if peer not in exclude:
                self._lazy_queue.setdefault(peer, []).append(Announcement(msg_id, round, cost))

    def _finish(self, now: float, out: list[Output]) -> None:
        """Flush queued IHAVEs now, or make sure a flush timer is pending."""
        if not self._lazy_queue:
            return
        delay = self.options.lazy_flush_delay
        if delay <= 0:
            self._flush(out)
        elif self._flush_at is None:
            self._flush_at = now + delay
            out.append(Timer(self._flush_at, ("flush",)))

    def _flush(self, out: list[Output]) -> None:
        batch = max(1, self.options.max_ihave_batch)
        for peer, anns in self._lazy_queue.items():
            for i in range(0, len(anns), batch):
                out.append(Send(peer, IHave(tuple(anns[i:i + batch]))))
                self.stats["ihave_sent"] += 1
        self._lazy_queue.clear()

    def _expire(self, now: float) -> None:
        horizon = now - self.options.id_retention
        while self._received and next(iter(self._received.values())).at < horizon:
            self._received.popitem(last=False)
        horizon = now - self.options.payload_retention
        while self._payloads and next(iter(self._payloads.values()))[0] < horizon:
            self._payloads.popitem(last=False)

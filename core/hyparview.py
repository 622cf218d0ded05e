"""HyParView membership overlay (Leitão, Pereira, Rodrigues, DSN 2007), sans-I/O.

Each node keeps two partial views of the cluster:

* a small, *symmetric* active view (default 5 = log10(n) + 1 for n = 10,000): the
  neighbours it holds connections to and broadcasts over. Symmetric: q is in p's active view
  iff p is in q's, so the overlay is an undirected graph of bounded degree;
* a larger passive view (default 30 = 6 x 5): addresses of live-looking nodes, no
  connection, refreshed by periodic shuffles; the reserve a failed neighbour is replaced from.

The active view is maintained *reactively*: when a neighbour fails (the caller reports it,
from a failure detector or a transport error) a random passive node is asked to become a
neighbour, with high priority (it must accept) when our active view is empty, low priority
(accepted only into a free slot) otherwise. The passive view is maintained *cyclically*:
every shuffle period a node sends its own id, `shuffle_ka` active and `shuffle_kp` passive
ids on a random walk of `shuffle_ttl` hops; the node where the walk ends answers with as
many of its passive ids, and both merge what they got (evicting first what they sent).

Joining: the joiner sends JOIN to any contact, which adds it and sends FORWARD_JOIN to its
other neighbours; each starts a random walk of ARWL hops (default 6). The node where a
walk ends (TTL 0, or a dead end) adds the joiner to its active view; the node at TTL = PRWL
(default 3) adds it to its passive view. So a joiner gets up to `active_size` neighbours
spread over the graph, not clustered around its contact.

What this adds to the paper, and why:

* The paper leans on TCP for link state. Here adding a neighbour is a message (an accepted
  NEIGHBOR_REPLY, also sent unsolicited to a joiner) and removal is DISCONNECT, and messages
  may cross: a node can accept a link the peer has just dropped. Each side therefore counts
  the DISCONNECTs it sent to and processed from each peer, and every accepting reply carries
  both counts; a reply that predates a DISCONNECT one side has not yet seen is stale and
  ignored (its sender will process that DISCONNECT and drop the link too). DISCONNECTs carry
  their sequence number, so an old or duplicated one is ignored. Counters are per *epoch*
  (the caller passes its incarnation), so a restarted node is not judged by its previous
  life's counters. With per-pair FIFO delivery this keeps the active views symmetric.
* A SHUFFLE arriving from a node not in our active view shows it believes in a link we do not
  have (a duplicate message, a forgotten counter, a false failure suspicion); we answer with a
  DISCONNECT so it drops it. Shuffles flow every period, so any asymmetry is found.
* Rejected and timed-out NEIGHBOR requests are not retried until the next shuffle period (the
  paper retries another passive node at once, which never ends when all of them are full).
* At a shuffle tick, a node with at most `escalate_at` neighbours sends one high-priority
  request (the paper: only with none). When many nodes join through a few seeds at once, two
  nodes can end up linked only to each other; their low-priority requests to full nodes would
  be refused forever, and the overlay would stay partitioned.
* Swaps. A boot storm can also leave two or more parts in which *every* node has a full
  active view: no escalation, full nodes refuse low-priority requests, and shuffles trade
  only passive ids, so nothing would ever join them. Each node remembers, for `swap_memory`
  ticks, the ids it saw over active links - shuffle origins and their active ids, shuffle
  repliers, tour origins, its neighbours: its own part of the cluster. From its 4th tick on,
  a full node A asks at each tick, with probability `swap_rate` / (ids remembered), a passive
  node B it has not seen for a swap: a NEIGHBOR marked `swap`, with a `piece` of up to 30 ids
  it saw and the neighbour E it will `drop`. B refuses if it saw A or any id of the piece
  (same part). Otherwise it takes A even when full, dropping a neighbour D that it names in
  its accept (which carries the DISCONNECT counts as any accept), and A drops E; each
  DISCONNECT `hint`s the other dropped node, and D and E ask each other with high priority,
  naming the node that is dropping the receiver (a full receiver drops that one rather than a
  random neighbour). Edges (A, E) and (B, D) become (A, B) and (D, E): no degree changes and
  the two parts are one. A small part remembers few ids, so its nodes ask often; in a healthy
  overlay a node remembers most of it, so requests are rare and nearly all refused.

Cluster size. The view sizes are fixed by configuration, so nothing local measures n. On
request (`start_size_probe`) a node sends a *random tour* (Massoulié, Le Merrer, Kermarrec,
Ganesh, PODC 2006): a simple random walk over the active views that ends when it first
returns to its origin, adding 1/d(v) at every node v it visits (d = active view size). With
d0 the origin's degree, 1 + d0 * sum estimates n *without bias* on any connected undirected
graph: the expected visits to v per excursion from the origin are d(v)/d0 (renewal-reward),
so the expected sum is (n - 1)/d0. The price: a tour takes about n hops, and one tour's
estimate varies by about n, so `size_estimate` averages the last `size_samples` tours
(relative error about 1/sqrt(k) for k tours). It needs symmetric views, which is why they are
kept symmetric, and views that do not change much during a tour. Since a tour costs about n
messages, few nodes should run them: every SHUFFLE and SHUFFLE_REPLY carries its sender's
raw tour results (one drawn from its own and heard ones), and `size_estimate` averages what
a node ran and heard, so one tour informs many nodes at no extra message.

Inputs return lists of outputs: `Send` and the view events `NeighborUp` / `NeighborDown`.
Time and randomness are arguments.
"""
from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import msgspec

from .messages import Count

#: a size estimate on the wire (a random tour's or a peer's; 0 = none)
Estimate = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]


class PeerRef(msgspec.Struct, frozen=True, array_like=True):
    """A node as the overlay knows it: its id and the address to reach it at."""

    id: str
    addr: str


# ---- wire messages (JSON objects, usable as envelope bodies) ------------------------------

class Join(msgspec.Struct, frozen=True):
    """Sender wants in; the receiver is its contact."""

    epoch: Count


class ForwardJoin(msgspec.Struct, frozen=True):
    """A join's random walk; `ttl` hops left."""

    joiner: PeerRef
    joiner_epoch: Count
    ttl: Count


class Neighbor(msgspec.Struct, frozen=True):
    """Please make me your neighbour; `high` (our active view is empty) must be accepted.

    A `swap` request comes from a node whose active view is full, to a passive node it has not
    heard of lately: take me even if you are full, unless you have seen me or any id of
    `piece` (ids I saw lately) - then we are in the same part of the cluster already. `drop`:
    the neighbour I will drop for you (you hint it to the neighbour you drop). `replaces`: if
    you are full, drop this neighbour for me rather than a random one (a swap is dropping it
    from you anyway: the request follows a DISCONNECT's hint)."""

    high: bool
    epoch: Count
    swap: bool = False
    piece: tuple[str, ...] = ()
    drop: PeerRef | None = None
    replaces: PeerRef | None = None


class NeighborReply(msgspec.Struct, frozen=True):
    """Answer to NEIGHBOR; accepted also means "you are in my active view now", which is how a
    joiner learns its contact and walk ends. `out`/`seen`: DISCONNECTs the sender sent to /
    processed from the receiver (in epochs `epoch` / `to_epoch`), to spot stale replies."""

    accepted: bool
    epoch: Count
    to_epoch: Count | None = None
    out: Count = 0
    seen: Count = 0
    swap: bool = False             # the answer to a swap request
    drop: PeerRef | None = None    # swap accepted: the neighbour the sender dropped for us


class Disconnect(msgspec.Struct, frozen=True):
    """You are no longer in my active view; `seq` counts our DISCONNECTs to you. `hint` (a
    swap): the node dropped on the other side of it - ask it to be your neighbour instead,
    naming `hint_drops`, its neighbour that is dropping it, as the link you replace."""

    epoch: Count
    to_epoch: Count | None
    seq: Count
    hint: PeerRef | None = None
    hint_drops: PeerRef | None = None


class Shuffle(msgspec.Struct, frozen=True):
    """Passive-view exchange on a random walk: `origin` and a sample of its views."""

    origin: PeerRef
    nodes: tuple[PeerRef, ...]
    ttl: Count
    size: Estimate = 0.0     # the origin's cluster-size estimate (0: none), shared for free
    ka: Count = 0            # the first `ka` of `nodes` are the origin's neighbours (the rest passive)


class ShuffleReply(msgspec.Struct, frozen=True):
    """From where a shuffle walk ended, to its origin: a sample of that node's passive view."""

    nodes: tuple[PeerRef, ...]
    size: Estimate = 0.0     # the replier's cluster-size estimate (0: none)


class SizeProbe(msgspec.Struct, frozen=True):
    """A random tour for the size estimate: walks the active graph until back at `origin`,
    summing 1 / (active view size) over the nodes it visits."""

    origin: PeerRef
    probe: Count
    total: float
    hops: Count


Message = Join | ForwardJoin | Neighbor | NeighborReply | Disconnect | Shuffle | ShuffleReply | SizeProbe

#: body type names for a future codec registry (as messages.KERNEL_BODIES)
MESSAGE_TYPES: dict[str, type[msgspec.Struct]] = {
    "hv_join": Join, "hv_forward_join": ForwardJoin, "hv_neighbor": Neighbor,
    "hv_neighbor_reply": NeighborReply, "hv_disconnect": Disconnect, "hv_shuffle": Shuffle,
    "hv_shuffle_reply": ShuffleReply, "hv_size_probe": SizeProbe,
}


# ---- outputs ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    peer: PeerRef
    message: Message


@dataclass(frozen=True, slots=True)
class NeighborUp:
    peer: PeerRef


@dataclass(frozen=True, slots=True)
class NeighborDown:
    peer: PeerRef


Output = Send | NeighborUp | NeighborDown

#: ids sent along with a swap request (the requester's neighbours first, then the latest seen)
SWAP_PIECE = 30
#: a node asks for and accepts swaps from this shuffle tick on (it needs a few ticks of ids)
SWAP_FROM_TICK = 4
#: ids remembered as seen at most (the oldest are forgotten first)
SEEN_MAX = 4096


@dataclass(frozen=True, slots=True)
class HyParViewOptions:
    """Defaults are the paper's experimental settings (n = 10,000, fanout 4)."""

    #: active view size, log10(n) + c (paper: c = 1, so 5 for 10,000 nodes)
    active_size: int = 5
    #: passive view size, k (log10(n) + c) (paper: k = 6, so 30)
    passive_size: int = 30
    #: active random walk length: FORWARD_JOIN hops before the joiner is taken as a neighbour
    arwl: int = 6
    #: passive random walk length: the FORWARD_JOIN hop (TTL value) that files it as passive
    prwl: int = 3
    #: active / passive ids sent in a shuffle (paper: 3 and 4)
    shuffle_ka: int = 3
    shuffle_kp: int = 4
    #: hops of a shuffle's random walk (paper: as ARWL)
    shuffle_ttl: int = 6
    #: at a shuffle tick, a node with at most this many neighbours makes one of its requests
    #: high priority (the paper: only with none). A small group of nodes linked only to each
    #: other (a boot storm through several seeds can leave one) can then break into the
    #: overlay; without it their low-priority requests are refused forever. -1 disables.
    escalate_at: int = 2
    #: swaps: at each shuffle tick (from the 4th on) a node with a full active view asks, with
    #: probability swap_rate / (ids it saw in the last `swap_memory` ticks), a passive node it
    #: has not seen lately to trade links. Two parts of a boot storm whose nodes all have full
    #: active views are joined no other way; 0 disables (such a node also refuses swaps).
    swap_rate: float = 4.0
    swap_memory: int = 30
    #: a NEIGHBOR request unanswered this long (seconds) counts as a failed node
    neighbor_request_timeout: float = 5.0
    #: a size probe (random tour) is dropped after this many hops; keep it well above 10 n,
    #: since dropping the longest tours biases the estimate down
    probe_max_hops: int = 1_000_000
    #: tours averaged by `size_estimate`, and tours of ours in flight at most
    size_samples: int = 32
    max_probes: int = 4
    #: per-peer DISCONNECT counters kept (least recently used forgotten first, never those of
    #: current neighbours); a forgotten counter can only cost an asymmetry that a shuffle heals
    max_link_records: int = 1024

    def __post_init__(self) -> None:
        if self.active_size < 1 or self.passive_size < 1:
            raise ValueError("view sizes must be positive")
        if not 0 <= self.prwl <= self.arwl:
            raise ValueError("need 0 <= prwl <= arwl")
        if min(self.shuffle_ka, self.shuffle_kp, self.shuffle_ttl) < 0:
            raise ValueError("shuffle parameters must be non-negative")
        if not (math.isfinite(self.swap_rate) and self.swap_rate >= 0.0) or self.swap_memory < 1:
            raise ValueError("need swap_rate >= 0 and swap_memory >= 1")

    @classmethod
    def for_cluster_size(cls, n: int, *, c: int = 1, k: int = 6) -> HyParViewOptions:
        """Views sized as the paper does: active ceil(log10 n) + c, passive k times that."""
        active = max(2, math.ceil(math.log10(max(2, n))) + c)
        return cls(active_size=active, passive_size=k * active, escalate_at=active // 2)


class _Link:
    """What we know of one peer's link state: its epoch and the DISCONNECT counts."""

    __slots__ = ("epoch", "out", "seen")

    def __init__(self) -> None:
        self.epoch: int | None = None   # the peer's epoch these counters refer to
        self.out = 0                    # DISCONNECTs we sent it
        self.seen = 0                   # highest DISCONNECT seq we processed from it


class HyParView:
    """One node's views. Feed it messages, failures and the periodic shuffle tick."""

    __slots__ = ("me", "options", "epoch", "_rng", "_active", "_passive", "_pending", "_tried",
                 "_links", "_last_shuffle", "_probes", "_probe_seq", "_estimates", "_heard", "_tick",
                 "_seen", "stats")

    def __init__(self, me: PeerRef, options: HyParViewOptions | None = None,
                 rng: random.Random | None = None, *, epoch: int = 0) -> None:
        self.me = me
        self.options = options or HyParViewOptions()
        self.epoch = epoch
        self._rng = rng or random.Random(me.id)
        self._active: dict[PeerRef, None] = {}      # dicts as ordered sets: deterministic by seed
        self._passive: dict[PeerRef, None] = {}
        #: NEIGHBOR requests out -> (sent, high, the neighbour we drop if it is a swap and is taken)
        self._pending: dict[PeerRef, tuple[float, bool, PeerRef | None]] = {}
        self._tried: set[PeerRef] = set()           # refused us this period
        self._links: OrderedDict[PeerRef, _Link] = OrderedDict()
        self._last_shuffle: tuple[PeerRef, ...] = ()
        self._probes: OrderedDict[int, int] = OrderedDict()    # our tours in flight -> our degree
        self._probe_seq = 0
        self._estimates: deque[float] = deque(maxlen=max(1, self.options.size_samples))
        self._heard: deque[float] = deque(maxlen=max(1, self.options.size_samples))
        self._tick = 0                              # shuffle ticks so far
        self._seen: OrderedDict[str, int] = OrderedDict()   # ids in our part of the cluster -> last tick
        self.stats: dict[str, int] = dict.fromkeys(
            ("stale_replies", "stale_disconnects", "heal_disconnects", "old_epoch", "swaps_asked",
             "swaps_taken"), 0)

    # ---- views ----------------------------------------------------------------------

    @property
    def active(self) -> list[PeerRef]:
        return list(self._active)

    @property
    def passive(self) -> list[PeerRef]:
        return list(self._passive)

    @property
    def pending(self) -> list[PeerRef]:
        return list(self._pending)

    def is_neighbor(self, peer: PeerRef) -> bool:
        return peer in self._active

    @property
    def size_estimate(self) -> float | None:
        """Mean of the recent random-tour estimates of the cluster size - our own tours and the
        estimates peers shared on shuffles - or None before the first."""
        count = len(self._estimates) + len(self._heard)
        return (sum(self._estimates) + sum(self._heard)) / count if count else None

    @property
    def size_samples(self) -> tuple[int, int]:
        """(own tours, estimates heard from peers) behind `size_estimate`."""
        return len(self._estimates), len(self._heard)

    def epoch_of(self, peer: PeerRef) -> int | None:
        """The epoch (life) of `peer` as we last heard it, if we track its link."""
        link = self._links.get(peer)
        return None if link is None else link.epoch

    def install(self, active: Iterable[tuple[PeerRef, int]], passive: Iterable[PeerRef]) -> list[Output]:
        """Start from given views (a simulator bootstrapping an overlay in its steady state
        instead of running every join): `active` as (peer, epoch) pairs, which the caller must
        make symmetric. Returns the `NeighborUp` events."""
        out: list[Output] = []
        for peer, epoch in active:
            if peer != self.me and peer not in self._active and len(self._active) < self.options.active_size:
                self._link(peer).epoch = epoch
                self._active[peer] = None
                out.append(NeighborUp(peer))
        for peer in passive:
            self._add_passive(peer)
        return out

    def _share(self) -> float:
        """One raw tour result from our pool (ours or heard), never our average: single tours are
        heavy-tailed, so averages of small samples sit low, and averaging them again would keep
        that bias; raw samples passed around keep every pool an unbiased sample of tours."""
        pool = len(self._estimates) + len(self._heard)
        if not pool:
            return 0.0
        i = self._rng.randrange(pool)
        return self._estimates[i] if i < len(self._estimates) else self._heard[i - len(self._estimates)]

    def _hear(self, size: float) -> None:
        if isinstance(size, float | int) and math.isfinite(size) and size >= 1.0:
            self._heard.append(float(size))

    # ---- inputs ---------------------------------------------------------------------

    def join(self, contact: PeerRef) -> list[Output]:
        """Ask `contact` to let us in (again, if the caller retries after a timeout)."""
        if contact == self.me:
            return []
        return [Send(contact, Join(self.epoch))]

    def add_passive(self, peers: Iterable[PeerRef]) -> None:
        """Seed the passive view (e.g. with other configured seeds)."""
        for peer in peers:
            self._add_passive(peer)

    def on_message(self, now: float, sender: PeerRef, msg: Message) -> list[Output]:
        out: list[Output] = []
        if sender == self.me:
            return out
        if isinstance(msg, Join):
            self._on_join(sender, msg, out)
        elif isinstance(msg, ForwardJoin):
            self._on_forward_join(sender, msg, out)
        elif isinstance(msg, Neighbor):
            self._on_neighbor(sender, msg, out)
        elif isinstance(msg, NeighborReply):
            self._on_neighbor_reply(now, sender, msg, out)
        elif isinstance(msg, Disconnect):
            self._on_disconnect(now, sender, msg, out)
        elif isinstance(msg, Shuffle):
            self._on_shuffle(sender, msg, out)
        elif isinstance(msg, ShuffleReply):
            self._hear(msg.size)
            self._see(sender)
            self._merge_passive((sender, *msg.nodes[: self.options.passive_size]), self._last_shuffle)
        elif isinstance(msg, SizeProbe):
            self._on_size_probe(msg, out)
        return out

    def neighbor_failed(self, now: float, peer: PeerRef) -> list[Output]:
        """`peer` is unreachable (failure detector, transport error, refused connection):
        drop it from both views and replace it from the passive view."""
        out: list[Output] = []
        if peer in self._active:
            del self._active[peer]
            out.append(NeighborDown(peer))
            # In case it is alive after all (a false suspicion): tell it, so it drops us too.
            # If it is dead the send fails, and the caller's second report is a no-op.
            self._send_disconnect(peer, out)
        self._passive.pop(peer, None)
        self._pending.pop(peer, None)
        self._fill(now, out)
        return out

    def on_shuffle_timer(self, now: float) -> list[Output]:
        """The periodic tick: expire unanswered requests, top the active view up, shuffle, and
        now and then ask for a swap."""
        out: list[Output] = []
        self._tried.clear()
        for peer, (sent, _, _) in list(self._pending.items()):
            if now - sent >= self.options.neighbor_request_timeout:
                del self._pending[peer]
                self._passive.pop(peer, None)      # no answer: considered failed (paper)
        self._tick += 1
        horizon = self._tick - self.options.swap_memory
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)
        for peer in self._active:
            self._see(peer)
        self._fill(now, out, escalate=len(self._active) <= self.options.escalate_at)
        if self._active:
            opts = self.options
            active = list(self._active)
            target = self._rng.choice(active)
            sample = self._sample([p for p in active if p != target], opts.shuffle_ka)
            ka = len(sample)
            sample += self._sample(list(self._passive), opts.shuffle_kp)
            self._last_shuffle = tuple(sample)
            out.append(Send(target, Shuffle(self.me, tuple(sample), opts.shuffle_ttl, self._share(), ka)))
        self._maybe_swap(now, out)
        return out

    def start_size_probe(self) -> list[Output]:
        """Send a random tour to refine `size_estimate` (costs about n messages, see above)."""
        if not self._active:
            return []
        self._probe_seq += 1
        self._probes[self._probe_seq] = len(self._active)
        while len(self._probes) > max(1, self.options.max_probes):
            self._probes.popitem(last=False)        # presumed lost
        first = self._rng.choice(list(self._active))
        return [Send(first, SizeProbe(self.me, self._probe_seq, 0.0, 1))]

    def _on_size_probe(self, msg: SizeProbe, out: list[Output]) -> None:
        if not (math.isfinite(msg.total) and msg.total >= 0.0 and msg.hops >= 1):
            return
        self._see(msg.origin)                         # a tour walks our part of the cluster
        if msg.origin == self.me:
            degree = self._probes.pop(msg.probe, None)
            if degree is not None:
                self._estimates.append(1.0 + degree * msg.total)
            return
        if not self._active or msg.hops >= self.options.probe_max_hops:
            return
        nxt = self._rng.choice(list(self._active))    # uniform, the sender included: a simple walk
        out.append(Send(nxt, SizeProbe(msg.origin, msg.probe, msg.total + 1.0 / len(self._active), msg.hops + 1)))

    # ---- join -----------------------------------------------------------------------

    def _on_join(self, sender: PeerRef, msg: Join, out: list[Output]) -> None:
        if not self._note_epoch(sender, msg.epoch, out):
            return
        if sender in self._active:          # a retried JOIN: confirm, do not walk again
            self._send_accept(sender, out)
            return
        self._add_active(sender, out)
        self._send_accept(sender, out)
        for peer in self._active:
            if peer != sender:
                out.append(Send(peer, ForwardJoin(sender, msg.epoch, self.options.arwl)))

    def _on_forward_join(self, sender: PeerRef, msg: ForwardJoin, out: list[Output]) -> None:
        joiner = msg.joiner
        if joiner == self.me or not self._note_epoch(joiner, msg.joiner_epoch, out):
            return
        ttl = min(msg.ttl, self.options.arwl)
        if ttl > 0 and len(self._active) > 1:
            if ttl == self.options.prwl:
                self._add_passive(joiner)
            candidates = [p for p in self._active if p != sender and p != joiner]
            if candidates:
                out.append(Send(self._rng.choice(candidates), ForwardJoin(joiner, msg.joiner_epoch, ttl - 1)))
                return
        # The walk ends here (TTL spent, or nowhere else to go): take the joiner.
        if joiner not in self._active:
            self._add_active(joiner, out)
            self._send_accept(joiner, out)

    # ---- neighbour requests ---------------------------------------------------------

    def _on_neighbor(self, sender: PeerRef, msg: Neighbor, out: list[Output]) -> None:
        if not self._note_epoch(sender, msg.epoch, out):
            return
        if msg.swap and sender not in self._active:
            self._on_swap(sender, msg, out)
            return
        if sender not in self._active:
            if not msg.high and len(self._active) >= self.options.active_size:
                out.append(Send(sender, NeighborReply(False, self.epoch)))
                return
            self._add_active(sender, out, victim=msg.replaces)
        self._send_accept(sender, out)

    def _on_neighbor_reply(self, now: float, sender: PeerRef, msg: NeighborReply, out: list[Output]) -> None:
        if not self._note_epoch(sender, msg.epoch, out):
            return
        pending = self._pending.pop(sender, None)
        was_pending = pending is not None
        drop = pending[2] if pending is not None else None   # ours was a swap request: we drop this one
        if not msg.accepted:
            self._tried.add(sender)         # stays passive, but not asked again this period
            self._fill(now, out)
            return
        link = self._link(sender)
        if msg.to_epoch != self.epoch or msg.seen < link.out or msg.out < link.seen:
            # It accepted a link one of us has since dropped (a DISCONNECT is crossing it); its
            # sender will process that DISCONNECT and drop the link as well.
            self.stats["stale_replies"] += 1
            if was_pending:
                self._tried.add(sender)
                self._fill(now, out)
            return
        link.seen = max(link.seen, msg.out)
        if sender not in self._active:
            if drop is not None:
                # Our swap was taken: drop the neighbour we named, and hint it to the one the
                # sender dropped for us, so those two link up and no degree changes.
                self._add_active(sender, out, victim=drop, hint=msg.drop, hint_drops=sender)
            else:
                self._add_active(sender, out)

    def _on_disconnect(self, now: float, sender: PeerRef, msg: Disconnect, out: list[Output]) -> None:
        if not self._note_epoch(sender, msg.epoch, out):
            return
        link = self._link(sender)
        if (msg.to_epoch is not None and msg.to_epoch != self.epoch) or msg.seq <= link.seen:
            self.stats["stale_disconnects"] += 1
            return
        link.seen = msg.seq
        if sender in self._active:
            del self._active[sender]
            out.append(NeighborDown(sender))
            self._add_passive(sender)
            hint = msg.hint
            if (hint is not None and hint != self.me and hint != sender and hint not in self._active
                    and hint not in self._pending
                    and len(self._active) + len(self._pending) < self.options.active_size):
                # A swap dropped us for a node whose own neighbour (`hint`) was dropped for it:
                # link with that one, high priority (it has a free slot, or will have: should
                # our request come first, it drops `hint_drops`, which is dropping it anyway).
                replaces = msg.hint_drops if msg.hint_drops != self.me else None
                self._pending[hint] = (now, True, None)
                out.append(Send(hint, Neighbor(True, self.epoch, replaces=replaces)))
            self._fill(now, out)

    # ---- shuffle --------------------------------------------------------------------

    def _on_shuffle(self, sender: PeerRef, msg: Shuffle, out: list[Output]) -> None:
        if sender not in self._active:
            # Shuffles travel over active links only: the sender believes in a link we do not have.
            self.stats["heal_disconnects"] += 1
            self._send_disconnect(sender, out)
        if msg.origin == self.me:
            return
        nodes = msg.nodes[: self.options.passive_size]
        ka = min(msg.ka, len(nodes))
        # The walk came over active links, so its origin and the origin's neighbours are in our
        # part of the cluster (the passive ids need not be).
        self._see(msg.origin)
        for peer in nodes[:ka]:
            self._see(peer)
        ttl = min(msg.ttl, self.options.shuffle_ttl) - 1
        if ttl > 0 and len(self._active) > 1:
            candidates = [p for p in self._active if p != sender and p != msg.origin]
            if candidates:
                out.append(Send(self._rng.choice(candidates), Shuffle(msg.origin, nodes, ttl, msg.size, ka)))
                return
        passive = [p for p in self._passive if p != msg.origin]
        reply = tuple(self._sample(passive, len(nodes) + 1))
        out.append(Send(msg.origin, ShuffleReply(reply, self._share())))
        self._hear(msg.size)
        self._merge_passive((msg.origin, *nodes), reply)

    # ---- swaps ----------------------------------------------------------------------

    def _see(self, peer: PeerRef) -> None:
        """`peer` is in our part of the cluster as of this tick."""
        if peer == self.me:
            return
        seen = self._seen
        seen[peer.id] = self._tick
        seen.move_to_end(peer.id)
        if len(seen) > SEEN_MAX:
            seen.popitem(last=False)

    def _maybe_swap(self, now: float, out: list[Output]) -> None:
        """A full node, now and then, asks a passive node it has not seen lately to trade links:
        the smaller the part of the cluster it sees, the likelier (swap_rate / piece)."""
        opts = self.options
        if (opts.swap_rate <= 0.0 or self._tick < SWAP_FROM_TICK or self._pending
                or len(self._active) < opts.active_size):
            return
        if self._rng.random() >= min(1.0, opts.swap_rate / max(1, len(self._seen))):
            return
        candidates = [p for p in self._passive
                      if p.id not in self._seen and p not in self._pending and p not in self._tried]
        if not candidates:
            return
        target = self._rng.choice(candidates)
        drop = self._rng.choice(list(self._active))
        piece = [p.id for p in self._active]
        for peer_id in reversed(self._seen):         # the latest seen first
            if len(piece) >= SWAP_PIECE:
                break
            if peer_id != target.id and peer_id not in piece:
                piece.append(peer_id)
        self._pending[target] = (now, False, drop)
        self.stats["swaps_asked"] += 1
        out.append(Send(target, Neighbor(False, self.epoch, True, tuple(piece[:SWAP_PIECE]), drop)))

    def _on_swap(self, sender: PeerRef, msg: Neighbor, out: list[Output]) -> None:
        """A swap request from a non-neighbour. Refused if we have seen it or any of its piece
        lately (same part of the cluster); else taken even when full: we drop a neighbour D,
        hinting it to the requester's dropped neighbour E, so the requester's part and ours
        end up joined by (requester, us) and (D, E), with every degree unchanged."""
        opts = self.options
        piece = msg.piece[:SWAP_PIECE]
        others = [p for p in self._active if p != msg.drop]
        full = len(self._active) >= opts.active_size
        ours = {p.id for p in self._active}     # seen too, even if linked since the last tick
        if (opts.swap_rate <= 0.0 or self._tick < SWAP_FROM_TICK or sender.id in self._seen
                or self.me.id in piece or any(i in self._seen or i in ours for i in piece) or (full and not others)):
            out.append(Send(sender, NeighborReply(False, self.epoch, swap=True)))
            return
        hint = msg.drop if msg.drop is not None and msg.drop != self.me and msg.drop != sender else None
        dropped = None
        if full:
            # Our own swap request to the sender crossed this one: drop the neighbour we named
            # in it, which the sender hints to the one it drops.
            own = self._pending.get(sender)
            dropped = own[2] if own is not None and own[2] in others else self._rng.choice(others)
            self._drop_active(dropped, out, hint, sender if hint is not None else None)
        self._add_active(sender, out)
        self.stats["swaps_taken"] += 1
        self._send_accept(sender, out, swap=True, drop=dropped)

    # ---- view mechanics -------------------------------------------------------------

    def _add_active(self, peer: PeerRef, out: list[Output], victim: PeerRef | None = None,
                    hint: PeerRef | None = None, hint_drops: PeerRef | None = None) -> None:
        """Make `peer` a neighbour, dropping one (with DISCONNECT) if full: `victim` if it is a
        neighbour, else a random one; the DISCONNECT carries `hint` and `hint_drops` (a swap)."""
        if peer == self.me or peer in self._active:
            return
        self._passive.pop(peer, None)
        self._pending.pop(peer, None)
        if len(self._active) >= self.options.active_size:
            if victim is None or victim not in self._active:
                victim = self._rng.choice(list(self._active))
            if hint == victim:
                hint = hint_drops = None
            self._drop_active(victim, out, hint, hint_drops if hint is not None else None)
        self._active[peer] = None
        self._link(peer)          # a neighbour's counters are kept (and refreshed in the LRU)
        out.append(NeighborUp(peer))

    def _drop_active(self, victim: PeerRef, out: list[Output], hint: PeerRef | None = None,
                     hint_drops: PeerRef | None = None) -> None:
        del self._active[victim]
        out.append(NeighborDown(victim))
        self._send_disconnect(victim, out, hint, hint_drops)
        self._add_passive(victim)

    def _add_passive(self, peer: PeerRef, prefer_evict: Iterable[PeerRef] = ()) -> None:
        if peer == self.me or peer in self._active or peer in self._passive:
            return
        if len(self._passive) >= self.options.passive_size:
            victim = next((p for p in prefer_evict if p in self._passive), None)
            if victim is None:
                victim = self._rng.choice(list(self._passive))
            del self._passive[victim]
            self._pending.pop(victim, None)
        self._passive[peer] = None

    def _merge_passive(self, nodes: Iterable[PeerRef], sent: tuple[PeerRef, ...]) -> None:
        """Integrate ids from a shuffle, evicting first those we sent in exchange (paper)."""
        for peer in nodes:
            self._add_passive(peer, sent)

    def _fill(self, now: float, out: list[Output], escalate: bool = False) -> None:
        """Ask passive nodes to fill free active slots: one high-priority request when we have
        no neighbour at all (it cannot be refused) or `escalate`, low-priority ones otherwise."""
        want = self.options.active_size - len(self._active) - len(self._pending)
        if want <= 0:
            return
        candidates = [p for p in self._passive if p not in self._pending and p not in self._tried]
        high_out = any(high for _, high, _ in self._pending.values())
        for peer in self._sample(candidates, want):
            high = (escalate or not self._active) and not high_out
            high_out = high_out or high
            self._pending[peer] = (now, high, None)
            out.append(Send(peer, Neighbor(high, self.epoch)))

    def _send_accept(self, peer: PeerRef, out: list[Output], swap: bool = False,
                     drop: PeerRef | None = None) -> None:
        link = self._link(peer)
        out.append(Send(peer, NeighborReply(True, self.epoch, link.epoch, link.out, link.seen, swap, drop)))

    def _send_disconnect(self, peer: PeerRef, out: list[Output], hint: PeerRef | None = None,
                         hint_drops: PeerRef | None = None) -> None:
        link = self._link(peer)
        link.out += 1
        out.append(Send(peer, Disconnect(self.epoch, link.epoch, link.out, hint, hint_drops)))

    def _link(self, peer: PeerRef) -> _Link:
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = _Link()
            self._trim_links()
        else:
            self._links.move_to_end(peer)
        return link

    def _trim_links(self) -> None:
        excess = len(self._links) - max(self.options.max_link_records, self.options.active_size + 1)
        if excess <= 0:
            return
        victims: list[PeerRef] = []
        for peer in self._links:                # least recently used first
            if peer not in self._active:
                victims.append(peer)
                if len(victims) >= excess:
                    break
        for peer in victims:
            del self._links[peer]

    def _note_epoch(self, peer: PeerRef, epoch: int, out: list[Output]) -> bool:
        """Track `peer`'s epoch. False for a message from a life older than one we know. A
        newer life resets the counters and ends a link we still had with the old one."""
        link = self._link(peer)
        if link.epoch is not None and epoch < link.epoch:
            self.stats["old_epoch"] += 1
            return False
        if link.epoch is None or epoch > link.epoch:
            if link.epoch is not None:
                link.out = link.seen = 0
                if peer in self._active:
                    del self._active[peer]
                    out.append(NeighborDown(peer))
                    self._add_passive(peer)
            link.epoch = epoch
        return True

    def _sample(self, items: list[PeerRef], k: int) -> list[PeerRef]:
        return self._rng.sample(items, min(k, len(items))) if k > 0 else []

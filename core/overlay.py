"""Overlays: which members a node keeps in its member table, and how it gets in.

`Cluster` (cluster.py) owns what every overlay shares: claims and their precedence,
refutation, leaves, reaping and member events. The overlay it owns decides the rest - who
may enter the member table, what a join does, how a failed member is replaced, which seeds
to contact again - chosen by ``[membership] overlay``:

* ``full`` (`FullMesh`, the default): every member is in every table. A join is answered
  with the contact's whole table, claims about anyone are believed and re-gossiped, seeds
  missing from the view are contacted again (partition healing). O(n) state per node.
* ``hyparview`` (`HyParViewOverlay`): the member table *is* HyParView's small symmetric
  active view (core/hyparview.py) - what failure detectors probe, what peer selectors pick
  from, what Plumtree builds its tree over - and the passive view waits beside it. A join is
  HyParView's JOIN / FORWARD_JOIN walk; a neighbour that the failure detector declares dead
  (or that leaves, or whose address refuses connections) is replaced from the passive view;
  claims about members outside the active view are ignored, so a claim travels only as far
  as the neighbourhoods that hold that member - never cluster-wide. O(log n) state per node.

Why the member table holds the active view rather than a new "neighbours" face beside it:
every strategy already reads `ctx.members`, so SWIM probes neighbours, push-pull syncs with
neighbours and anti-entropy repairs with neighbours without a line of strategy code changing,
and the table's precedence rules still guard each neighbour's status.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from . import hyparview as hv
from .effects import MemberChanged, Notice
from .membership import REACHABLE, member_view
from .messages import Envelope, Join, JoinAck, MemberUpdate, Syn
from .timers import KERNEL

if TYPE_CHECKING:
    from .cluster import Cluster
    from .config import MembershipSection

#: members sent in one join answer (full mesh)
JOIN_ANSWER_MEMBERS = 1000


class Overlay:
    """The full mesh, and the interface every overlay offers `Cluster` (and, read-only,
    strategies through ``ctx.overlay``)."""

    name: ClassVar[str] = "full"
    #: True when the member table holds only part of the cluster
    partial: ClassVar[bool] = False
    #: message type -> body, handled by `on_message`
    message_types: ClassVar[Mapping[str, type[msgspec.Struct]]] = {}
    #: kernel timer names handled by `on_timer`
    timers: ClassVar[tuple[str, ...]] = ()
    #: ask the runtime to report refused or dropped connections (`Node.unreachable`)
    watches_links: ClassVar[bool] = False

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.node = cluster.node

    # -- lifecycle and inputs ---------------------------------------------------------------
    def start(self) -> None:
        """Called once when the node starts (after the joins to seeds went out)."""

    def contact(self, address: str) -> None:
        """Ask the node at `address` to let us in (a seed, a dead member's address, `gossipctl join`)."""
        self.node.send_to_address(address, "join", Join())

    def on_join(self, env: Envelope) -> None:
        """A kernel `join` arrived: answer with our table."""
        node = self.node
        table = [node.self_update()]
        table += [m.as_update() for m in self.cluster.members.all() if m.status in REACHABLE and m.id != env.src]
        node.send_to_address(env.addr, "join_ack", JoinAck(node.security.seal_claims(table[:JOIN_ANSWER_MEMBERS])))

    def on_message(self, env: Envelope) -> None:
        """One of `message_types` arrived."""

    def on_timer(self, name: str) -> None:
        """One of `timers` fired."""

    def admits(self, member_id: str) -> bool:
        """May a claim about `member_id` (or a message from it) enter the member table?"""
        return True

    def member_gone(self, member_id: str) -> None:
        """`member_id` became dead or left (a detector's verdict or a believed claim)."""

    def unreachable(self, address: str) -> None:
        """The transport reports that nothing accepts messages at `address` (connection refused)."""

    def missing_seeds(self, seeds: Sequence[str]) -> list[str]:
        """Seeds to contact again now (heals partitions): those not in our view."""
        known = {m.addr for m in self.cluster.members.all() if m.status in REACHABLE}
        return [s for s in seeds if s not in known]

    # -- queries ----------------------------------------------------------------------------
    def neighbors(self) -> Sequence[str]:
        """Member ids this node talks to directly (full mesh: every reachable member)."""
        return self.cluster.members.reachable_ids()

    def size_estimate(self) -> float | None:
        """How many nodes the cluster has, this node included (full mesh: counted exactly)."""
        return float(len(self.cluster.members.reachable_ids()) + 1)

    def describe(self) -> dict[str, Any]:
        """What `gossipctl members` / `status` show about the overlay."""
        return {"overlay": self.name, "size_estimate": self.size_estimate()}


FullMesh = Overlay

# message type names on the wire, both ways
HV_TYPES: dict[str, type[msgspec.Struct]] = dict(hv.MESSAGE_TYPES)
HV_NAME_OF: dict[type, str] = {body: name for name, body in HV_TYPES.items()}
#: HyParView messages that make a link: they carry the sender's own claim (its tags) along
LINK_MESSAGES = (hv.Join, hv.Neighbor, hv.NeighborReply)


class HyParViewOverlay(Overlay):
    """The member table is HyParView's active view (see module docstring)."""

    name = "hyparview"
    partial = True
    message_types = HV_TYPES
    timers = ("hv_shuffle", "hv_size")
    watches_links = True   # a dead neighbour is replaced at once, as HyParView over TCP does

    def __init__(self, cluster: Cluster, options: MembershipSection) -> None:
        super().__init__(cluster)
        node = self.node
        self.options = options
        self.me = hv.PeerRef(node.node_id, node.address)
        #: this process's life: a restarted node is a new epoch (its old links are void); a
        #: refutation raises the incarnation but keeps the epoch, so links survive it
        self.epoch = node.inc
        self.hv = hv.HyParView(self.me, hv.HyParViewOptions(
            active_size=options.active_size, passive_size=options.passive_size, arwl=options.arwl,
            prwl=options.prwl, shuffle_ka=options.shuffle_ka, shuffle_kp=options.shuffle_kp,
            shuffle_ttl=options.shuffle_ttl, escalate_at=options.escalate_at, swap_rate=options.swap_rate,
            swap_memory=options.swap_memory, neighbor_request_timeout=options.neighbor_request_timeout_ms / 1000),
            node.rng, epoch=self.epoch)
        self.active: dict[str, hv.PeerRef] = {}     # member id -> its ref, mirrored from the events
        self.sync_on_link = True                    # digest sync with each new neighbour (off: simulator bootstrap)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        node = self.node
        delay = node.ctx.round_delay
        node.schedule(KERNEL, "hv_shuffle", delay(self.options.shuffle_interval_ms / 1000, first=True))
        if self.options.size_probe_interval_ms > 0:
            node.schedule(KERNEL, "hv_size", delay(self.options.size_probe_interval_ms / 1000, first=True))

    def contact(self, address: str) -> None:
        if address != self.node.address:
            self.node.send_to_address(address, "hv_join", hv.Join(self.epoch), about=self.node.self_update())

    def install(self, active: Sequence[tuple[hv.PeerRef, int, Mapping[str, str]]], passive: Sequence[hv.PeerRef]
                ) -> None:
        """Start from given views, as a simulator bootstrapping a steady-state overlay does:
        `active` as (peer, epoch, tags); the caller keeps them symmetric."""
        tags = {peer.id: t for peer, _, t in active}
        self._apply(self.hv.install([(peer, epoch) for peer, epoch, _ in active], passive), None, tags)

    # -- inputs -----------------------------------------------------------------------------
    def on_join(self, env: Envelope) -> None:
        """A kernel `join` (from `gossipctl join` of an older node, or a full-mesh node): a JOIN."""
        self._handle(env, hv.Join(env.inc))

    def on_message(self, env: Envelope) -> None:
        self._handle(env, env.body)

    def _handle(self, env: Envelope, msg: hv.Message) -> None:
        self._apply(self.hv.on_message(self.node.now, hv.PeerRef(env.src, env.addr), msg), env)

    def on_timer(self, name: str) -> None:
        node = self.node
        if name == "hv_shuffle":
            self._apply(self.hv.on_shuffle_timer(node.now))
            node.schedule(KERNEL, "hv_shuffle", node.ctx.round_delay(self.options.shuffle_interval_ms / 1000))
        elif name == "hv_size":
            # A tour costs about n messages: aim at one tour per tick cluster-wide, whatever n is.
            known = len(self.hv.active) + len(self.hv.passive) + 1
            guess = max(self.hv.size_estimate or 0.0, float(known))
            if node.rng.random() < 1.0 / guess:
                node.stats["hv_size_probes"] += 1
                self._apply(self.hv.start_size_probe())
            node.schedule(KERNEL, "hv_size", node.ctx.round_delay(self.options.size_probe_interval_ms / 1000))

    def admits(self, member_id: str) -> bool:
        return member_id in self.active

    def member_gone(self, member_id: str) -> None:
        peer = self.active.get(member_id)
        if peer is not None:
            self._apply(self.hv.neighbor_failed(self.node.now, peer))

    def unreachable(self, address: str) -> None:
        """A neighbour's connection dropped or was refused: over TCP that is HyParView's failure
        signal. A neighbour in the member table is declared dead, as a detector's verdict would
        (it stays `dead` until reaped, its own claim refutes a mistake, and `member_gone`
        replaces it from the passive view); a pending or passive one is only dropped."""
        peer = next((p for p in self.active.values() if p.addr == address), None)
        if peer is None:
            peer = next((p for p in (*self.hv.pending, *self.hv.passive) if p.addr == address), None)
        if peer is None:
            return
        self.node.stats["hv_unreachable"] += 1
        member = self.cluster.members.get(peer.id)
        if member is not None and member.addr == address and member.status in REACHABLE:
            self.cluster.declare_dead(peer.id, "its connection dropped or was refused")
        if peer.id in self.active or peer in self.hv.pending or peer in self.hv.passive:
            self._apply(self.hv.neighbor_failed(self.node.now, peer))

    def missing_seeds(self, seeds: Sequence[str]) -> list[str]:
        """Only an isolated node goes back to its seeds: the passive view is the reserve, and a
        JOIN to a seed costs that seed a view change and a walk."""
        return list(seeds) if not self.active and not self.hv.pending else []

    # -- queries ----------------------------------------------------------------------------
    def neighbors(self) -> Sequence[str]:
        return self.cluster.members.reachable_ids()

    def size_estimate(self) -> float | None:
        return self.hv.size_estimate

    def describe(self) -> dict[str, Any]:
        own, heard = self.hv.size_samples
        estimate = self.hv.size_estimate
        return {"overlay": self.name, "size_estimate": None if estimate is None else round(estimate, 1),
                "size_samples": {"tours": own, "heard": heard},
                "active": sorted(self.active),
                "passive": [{"id": p.id, "address": p.addr} for p in sorted(self.hv.passive, key=lambda p: p.id)],
                "pending": sorted(p.id for p in self.hv.pending),
                "counters": dict(self.hv.stats)}   # swaps asked / taken, stale replies, healed links

    # -- outputs ----------------------------------------------------------------------------
    def _apply(self, outs: list[hv.Output], env: Envelope | None = None,
               tags: Mapping[str, Mapping[str, str]] | None = None) -> None:
        node = self.node
        for out in outs:
            if isinstance(out, hv.Send):
                msg = out.message
                about = node.self_update() if isinstance(msg, LINK_MESSAGES) else None
                node.send_to_address(out.peer.addr, HV_NAME_OF[type(msg)], msg, about=about)
            elif isinstance(out, hv.NeighborUp):
                self._up(out.peer, env, (tags or {}).get(out.peer.id))
            else:
                self._down(out.peer)

    def _up(self, peer: hv.PeerRef, env: Envelope | None, tags: Mapping[str, str] | None) -> None:
        """A new neighbour: into the member table as alive (the link is the evidence), and a
        digest sync with it, so a joiner catches up at once (the kernel's sync on join)."""
        cluster, node = self.cluster, self.node
        self.active[peer.id] = peer
        member = cluster.members.get(peer.id)
        if member is not None and (member.status not in REACHABLE or member.addr != peer.addr):
            # Declared dead (or left) here earlier, yet it just linked to us: a false verdict or
            # a partition that healed. The link is fresher evidence than the verdict.
            cluster.members.forget(peer.id)
            cluster.departed.pop(peer.id, None)
            member = None
        if member is None:
            inc = self.hv.epoch_of(peer) or 0
            claim = MemberUpdate(peer.id, peer.addr, inc, "alive", 0, dict(tags or {}))
            if env is not None and env.src == peer.id:
                own = next((c for c in env.members if c.id == peer.id and c.inc == env.inc), None)
                claim = own if own is not None and own.status == "alive" else MemberUpdate(
                    peer.id, peer.addr, env.inc, "alive", 0, claim.tags)
            cluster.apply_claim(claim)
        if not cluster.joined:
            cluster.joined = True
            node.emit(Notice("joined", f"joined the overlay: first neighbour {peer.id} ({peer.addr})"))
        if self.sync_on_link:
            # Our own claim rides along, so the neighbour learns our tags with the first message.
            node.send_to_address(peer.addr, "syn", Syn("push-pull", node.store.digest()), about=node.self_update())

    def _down(self, peer: hv.PeerRef) -> None:
        """No longer a neighbour. A member that failed stays (dead) until reaped, as in the full
        mesh; one that is merely out of the view (evicted, disconnected) is forgotten now."""
        cluster = self.cluster
        self.active.pop(peer.id, None)
        member = cluster.members.get(peer.id)
        if member is None or member.addr != peer.addr or member.status not in REACHABLE:
            return
        previous = member.status
        cluster.members.forget(peer.id)
        self.node.convergence.forget(peer.id)
        view = member_view(member)
        view["detail"] = "left this node's active view"
        self.node.emit(MemberChanged(view, previous, "reaped"))


def make_overlay(cluster: Cluster, options: MembershipSection) -> Overlay:
    if options.overlay == "hyparview":
        return HyParViewOverlay(cluster, options)
    return FullMesh(cluster)

"""Membership mechanics: joins, claims, refutation, leaves, reaping, seed and dead probes.

The member table (membership.py) decides what one claim does to our view of a member; this
module decides when claims are made and what follows from them: who is told, which events
go out, when a departed member is forgotten, how a node gets in and how two halves of a
healed partition find each other again. The node feeds it received envelopes and fired
`kernel` timers; it sends through the node's outbox. Policy (when to suspect) belongs to the
failure detector strategy, which acts through `suspect` / `declare_dead` / `gossip_claim`.

A claim is evidence only within bounds: an incarnation further ahead of our clock than a
restart or refutation could make it (``[limits] max_clock_skew_ms`` plus 2^20 refutations) is
refused and counted (``absurd_incarnation``), so one forged claim cannot push a node's own
incarnation out of range.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from .broadcast import BroadcastQueue, retransmit_limit
from .effects import MemberChanged, Notice
from .membership import (
    MAX_TAGS_BYTES,
    REACHABLE,
    Change,
    Member,
    MemberTable,
    member_view,
    tags_size,
)
from .messages import Envelope, Leave, MemberUpdate
from .overlay import JOIN_ANSWER_MEMBERS, make_overlay
from .timers import KERNEL

if TYPE_CHECKING:
    from .node import Node

REASONS = {"suspect": "suspected", "dead": "failed", "left": "left"}
#: refutations a node may plausibly have made since its incarnation was seeded from the clock
MAX_REFUTATIONS = 1 << 20
__all__ = ["JOIN_ANSWER_MEMBERS", "MAX_REFUTATIONS", "REASONS", "Cluster", "member_view"]


class Cluster:
    """This node's view of the cluster and the protocol that keeps it (see module docstring)."""

    def __init__(self, node: Node, seeds: Sequence[str], members: MemberTable | None = None) -> None:
        self.node = node
        self.members = members if members is not None else MemberTable()
        self.broadcasts: BroadcastQueue[MemberUpdate] = BroadcastQueue()
        self.seeds = [s for s in seeds if s != node.address]
        self.joined = not self.seeds
        self.departed: dict[str, float] = {}   # dead/left member -> since
        self.join_attempts = 0
        self.started_at = 0.0
        # Housekeeping timers run only while there is something to keep: an idle node (and each
        # of 10^5 simulated ones) does not wake up every second to find nothing to reap.
        self._reap_armed = False
        self._dead_armed = False
        #: full mesh or a partial view (core/overlay.py), by [membership] overlay
        self.overlay = make_overlay(self, node.membership)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        node, gossip = self.node, self.node.gossip
        self.started_at = node.now
        self.broadcasts.push(node.node_id, node.self_update())
        if self.seeds:
            self._send_joins()
            node.schedule(KERNEL, "join", gossip.join_retry_ms / 1000)
            node.schedule(KERNEL, "seeds", gossip.seed_rejoin_ms / 1000)
        self.overlay.start()

    def leave(self) -> None:
        """Graceful departure: tell up to `leave_fanout` members directly."""
        node = self.node
        node.status = "left"
        self.broadcasts.push(node.node_id, node.self_update())
        targets = list(self.members.reachable_ids())
        if len(targets) > node.gossip.leave_fanout:
            targets = node.rng.sample(targets, node.gossip.leave_fanout)
        for member_id in targets:
            node.send(member_id, "leave", Leave())

    def join(self, addresses: Sequence[str]) -> None:
        for address in addresses:
            if address != self.node.address:
                self.overlay.contact(address)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags_size(dict(tags)) > MAX_TAGS_BYTES:
            raise ValueError(f"tags take {tags_size(dict(tags))} bytes; at most {MAX_TAGS_BYTES} (keys plus values)")
        node = self.node
        node.tags.clear()
        node.tags.update(tags)
        node.inc += 1   # tags are fixed per incarnation: a new one carries the new tags
        self.broadcasts.push(node.node_id, node.self_update())

    def force_leave(self, member_id: str) -> None:
        member = self.members.get(member_id)
        if member is None:
            raise ValueError(f"no member {member_id!r} is known here")
        if member.status == "alive":
            raise ValueError(f"member {member_id!r} is alive; only a failed (dead or suspect) member can be forced "
                             f"to leave")
        if member.status != "left":
            self._set_status(member_id, "left", "forced to leave by an operator")

    # -- the context verbs --------------------------------------------------------------------------
    def bump_heartbeat(self) -> None:
        node = self.node
        node.hb += 1
        self.broadcasts.push(node.node_id, node.self_update())

    def suspect(self, member_id: str, reason: str) -> None:
        self._set_status(member_id, "suspect", reason)

    def declare_dead(self, member_id: str, reason: str) -> None:
        self._set_status(member_id, "dead", reason)

    def gossip_claim(self, claim: MemberUpdate) -> None:
        """Spread `claim` piggybacked as it is (SWIM re-gossips independent suspicions)."""
        self.broadcasts.push(claim.id, claim)

    def piggyback(self, slots: int) -> list[MemberUpdate]:
        """Membership updates to ride on one outgoing message."""
        if not len(self.broadcasts):
            return []
        limit = retransmit_limit(self.node.gossip.retransmit_mult, len(self.members.reachable_ids()) + 1)
        return self.broadcasts.take(slots, limit)

    # -- inputs ---------------------------------------------------------------------------------
    def reject(self, env: Envelope, peer: str | None) -> tuple[str, str] | None:
        """(cause, detail) when the envelope as a whole must not be believed: another cluster's,
        a forged sender, an incarnation beyond any this cluster can have reached."""
        if env.cluster != self.node.cluster_name:
            return "wrong_cluster", (f"{env.type} from {env.src!r} ({env.addr}) belongs to cluster {env.cluster!r}, "
                                     f"this node to {self.node.cluster_name!r}")
        if env.src == self.node.node_id:
            return "spoofed_self", f"message of type {env.type} claims to come from this node"
        if peer is not None and peer != env.src:
            return "spoofed_sender", (f"{env.type} claims to come from {env.src!r} but its connection is "
                                      f"authenticated as {peer!r}")
        if env.inc > self.incarnation_bound():
            return "absurd_incarnation", f"{env.type} from {env.src!r} at incarnation {env.inc}"
        return None

    def hear_from(self, env: Envelope) -> None:
        """The sender itself is evidence: alive at its incarnation, and heard just now."""
        node = self.node
        member = self.members.get(env.src)
        if member is None and not self.overlay.admits(env.src):
            return   # a partial overlay: a message does not make its sender a neighbour
        if member is None or env.inc > member.inc:
            # Its own piggybacked claim (a join carries it) gives the tags of this life.
            own = next((c for c in env.members if c.id == env.src and c.inc == env.inc), None)
            tags = own.tags if own is not None else (member.tags if member else {})
            hb = member.hb if member and member.inc == env.inc else 0
            self.apply_claim(MemberUpdate(env.src, env.addr, env.inc, "alive", hb, tags))
            member = self.members.get(env.src)
            if member is None:
                return
        if member.status in REACHABLE:
            self.members.mark_heard(member.id, node.now)
            if member.addr != env.addr and env.inc >= member.inc:
                old, member.addr = member.addr, env.addr
                self._member_event(member, member.status, "updated", old_address=old)
        if member.status != "alive" and env.type != "leave":
            # It does not know what we think of it: tell it again, so it can refute.
            self.broadcasts.push(member.id, member.as_update())

    def apply_claim(self, claim: MemberUpdate) -> None:
        node = self.node
        if claim.tags and tags_size(claim.tags) > MAX_TAGS_BYTES:
            node.drop("tags_oversized", f"claim about {claim.id} carries {tags_size(claim.tags)} bytes of tags")
            return
        if claim.inc > self.incarnation_bound():
            node.drop("absurd_incarnation", f"{claim.status} claim about {claim.id} at incarnation {claim.inc}, "
                                            f"beyond what any restart or refutation can reach by now")
            return
        if claim.id == node.node_id:
            node.failure_detector.on_claim(node.ctx, claim, self._claim_about_self(claim))
            return
        if claim.id not in self.members and not self.overlay.admits(claim.id):
            node.failure_detector.on_claim(node.ctx, claim, False)   # about a member outside our view
            return
        change = self.members.apply(claim, node.now)
        if change is not None:
            self._after_change(change)
        node.failure_detector.on_claim(node.ctx, claim, change is not None)

    def incarnation_bound(self) -> int:
        """The largest incarnation a claim may carry now (see module docstring)."""
        node = self.node
        return max(node.inc, int(node.now * 1000) + node.limits.max_clock_skew_ms) + MAX_REFUTATIONS

    def on_join(self, env: Envelope) -> None:
        self.overlay.on_join(env)

    def on_join_ack(self, env: Envelope) -> None:
        node = self.node
        for claim in env.body.members:
            self.apply_claim(claim)
        if not self.joined:
            self.joined = True
            node.emit(Notice("joined", f"joined through {env.src} ({env.addr})"))
        node.replication.start_sync(env.src, "push-pull")  # catch up at once, whatever the mode

    def on_leave(self, env: Envelope) -> None:
        member = self.members.get(env.src)
        tags = member.tags if member else {}
        self.apply_claim(MemberUpdate(env.src, env.addr, env.inc, "left", 0, tags))

    def handlers(self) -> dict[str, Callable[[Envelope], None]]:
        """Message type -> handler, for the kernel's dispatch table (the overlay adds its own)."""
        return {"join": self.on_join, "join_ack": self.on_join_ack, "leave": self.on_leave}

    def timers(self) -> dict[str, Callable[[], None]]:
        """Kernel timer name -> handler: housekeeping, and the overlay's periodic rounds."""
        table = {"join": self._on_join_timer, "reap": self._on_reap_timer, "seeds": self._on_seeds_timer,
                 "dead": self._on_dead_timer}
        table.update({name: partial(self.overlay.on_timer, name) for name in self.overlay.timers})
        return table

    def unreachable(self, address: str) -> None:
        """The transport could not reach `address` (a refused connection): the overlay decides."""
        self.overlay.unreachable(address)

    # -- internals ------------------------------------------------------------------------------
    def _claim_about_self(self, claim: MemberUpdate) -> bool:
        """Refute a claim that we are suspect/dead (or of a newer life); True when we did."""
        node = self.node
        if node.status == "left":
            return False
        if claim.inc > node.inc or (claim.inc == node.inc and claim.status != "alive"):
            node.inc = claim.inc + 1
            node.stats["refutations"] += 1
            node.emit(Notice("refuted", f"refuted '{claim.status}' at incarnation {claim.inc}; "
                                        f"now alive at {node.inc}"))
            self.broadcasts.push(node.node_id, node.self_update())
            return True
        return False

    def _after_change(self, change: Change) -> None:
        member = change.member
        if change.previous is None:
            self._member_event(member, None, "joined")
        elif change.status_changed:
            if member.status == "alive":
                reason = "rejoined" if change.previous in ("dead", "left") else "alive_again"
            else:
                reason = REASONS[member.status]
            self._member_event(member, change.previous, reason)
        elif change.updated:
            self._member_event(member, change.previous, "updated", old_address=change.old_address)
        if change.status_changed or change.refreshed:
            self.broadcasts.push(member.id, member.as_update())
        if change.status_changed and member.status in ("dead", "left"):
            self.overlay.member_gone(member.id)

    def _set_status(self, member_id: str, status: str, reason: str) -> None:
        node = self.node
        previous = self.members.get(member_id)
        prev_status = previous.status if previous else None
        member = self.members.set_status(member_id, status, node.now, by=node.node_id)
        if member is None:
            return
        node.stats[f"declared_{status}"] += 1
        self._member_event(member, prev_status, REASONS[status], detail=reason)
        self.broadcasts.push(member.id, member.as_update())
        if status in ("dead", "left"):
            self.overlay.member_gone(member.id)

    def _member_event(self, member: Member, previous: str | None, reason: str, detail: str = "",
                      old_address: str = "") -> None:
        now = self.node.now
        if reason == "updated":
            pass   # the status did not change: nor does the reaping clock
        elif member.status in ("dead", "left"):
            self.departed[member.id] = now
            self._arm_housekeeping()
        else:
            self.departed.pop(member.id, None)
        view = member_view(member)
        if detail:
            view["detail"] = detail
        if old_address:
            view["old_address"] = old_address
        self.node.emit(MemberChanged(view, previous, reason))

    def _arm_housekeeping(self) -> None:
        node = self.node
        if not self._reap_armed:
            self._reap_armed = True
            node.schedule(KERNEL, "reap", 1.0)
        if node.gossip.dead_probe_ms > 0 and not self._dead_armed:
            self._dead_armed = True
            node.schedule(KERNEL, "dead", node.gossip.dead_probe_ms / 1000)

    def _send_joins(self) -> None:
        for seed in self.seeds:
            self.overlay.contact(seed)

    def _on_join_timer(self) -> None:
        node, gossip = self.node, self.node.gossip
        if self.joined:
            return
        elapsed_ms = (node.now - self.started_at) * 1000
        if elapsed_ms >= gossip.join_timeout_ms:
            node.emit(Notice("join_timeout", f"no seed answered within {gossip.join_timeout_ms} ms "
                                             f"({', '.join(self.seeds)}); running alone, still retrying"))
            self.started_at = node.now  # report again after another timeout, keep trying slowly
        self.join_attempts += 1
        self._send_joins()
        delay = min(gossip.join_retry_ms * 2 ** min(self.join_attempts, 32), gossip.join_retry_max_ms)
        node.schedule(KERNEL, "join", delay / 1000)

    def _on_reap_timer(self) -> None:
        node = self.node
        reap_after = node.gossip.reap_after_ms / 1000
        horizon = node.now - reap_after
        for member_id, since in list(self.departed.items()):
            if since <= horizon:
                member = self.members.remove(member_id, node.now, reap_after)
                del self.departed[member_id]
                node.convergence.forget(member_id)
                self.broadcasts.discard(member_id)
                if member is not None:
                    node.emit(MemberChanged(member_view(member), member.status, "reaped"))
        self.members.forget_graves(node.now)
        self._reap_armed = bool(self.departed or self.members.graveyard)
        if self._reap_armed:
            node.schedule(KERNEL, "reap", 1.0)

    def _on_dead_timer(self) -> None:
        """Gossip to the dead (memberlist's GossipToTheDeadTime): until it is reaped, contact one
        failed member now and then, so two sides of a healed partition find each other again."""
        node = self.node
        dead = [m for m in self.departed if (member := self.members.get(m)) is not None and member.status == "dead"]
        if dead:
            target = self.members.get(node.rng.choice(dead))
            if target is not None:
                self.overlay.contact(target.addr)
        self._dead_armed = bool(dead)
        if dead:
            node.schedule(KERNEL, "dead", node.gossip.dead_probe_ms / 1000)

    def _on_seeds_timer(self) -> None:
        node = self.node
        strangers = self.overlay.missing_seeds(self.seeds)
        if strangers:
            self.overlay.contact(node.rng.choice(strangers))
        node.schedule(KERNEL, "seeds", node.gossip.seed_rejoin_ms / 1000)

"""The member table and the SWIM precedence rules. This file alone decides what a claim
about a member does to our view of it.

Theory of operation
-------------------
Every member has an incarnation number that only it may raise. A claim (alive, suspect,
dead or left at incarnation i) replaces what we know when

* its incarnation is higher, or
* the incarnation is equal and its status ranks higher: left > dead > suspect > alive, or
* both say alive at the same incarnation and the claim's heartbeat counter is higher
  (a liveness refresh, not a status change).

So a suspicion can only be cleared by the member itself, by raising its incarnation
(refutation); a restarted node starts at a higher incarnation (the runtime seeds it from
the wall clock), so it is accepted as alive at once and never mistaken for its old self.

Dead and left members stay in the table (so stale rumors cannot resurrect them) until they
are reaped; after reaping, a small graveyard remembers their last incarnation for a while
longer for the same reason.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .messages import MemberUpdate

RANK = {"alive": 0, "suspect": 1, "dead": 2, "left": 3}
REACHABLE = ("alive", "suspect")
#: member metadata budget (memberlist's MetaMaxSize): tags ride on every membership update
MAX_TAGS_BYTES = 512


def tags_size(tags: dict[str, str]) -> int:
    """Bytes the tags occupy (keys plus values, UTF-8); compared with MAX_TAGS_BYTES."""
    return sum(len(k.encode()) + len(str(v).encode()) for k, v in tags.items())


def supersedes(claim: MemberUpdate, inc: int, status: str, hb: int) -> bool:
    """Does `claim` replace the state (inc, status, hb)?"""
    if claim.inc != inc:
        return claim.inc > inc
    c_rank, rank = RANK[claim.status], RANK[status]
    if c_rank != rank:
        return c_rank > rank
    return claim.status == "alive" and claim.hb > hb


@dataclass(slots=True)
class Member:
    id: str
    addr: str
    inc: int
    status: str
    hb: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    heard_at: float = 0.0      # last liveness evidence (direct message or heartbeat progress)
    since: float = 0.0         # when `status` was entered
    by: str = ""               # who asserted the current suspect/dead status

    def as_update(self) -> MemberUpdate:
        return MemberUpdate(self.id, self.addr, self.inc, self.status, self.hb, self.tags,  # type: ignore[arg-type]
                            self.by)


@dataclass(slots=True, frozen=True)
class Change:
    """Result of applying a claim: what the table did."""

    member: Member
    previous: str | None   # previous status, None for a member we did not know
    status_changed: bool
    refreshed: bool        # liveness evidence (heartbeat or incarnation advanced)
    old_address: str = ""  # set when the member's address changed
    updated: bool = False  # address, tags or incarnation changed (a status change aside)


class MemberTable:
    """Members other than ourselves, with O(1) random access to reachable ones."""

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self._reachable: list[str] = []
        self._reachable_pos: dict[str, int] = {}
        self.heard_order: OrderedDict[str, None] = OrderedDict()  # oldest evidence first
        self.graveyard: dict[str, tuple[int, float]] = {}          # id -> (inc, forget_at)
        #: bumped whenever the reachable set changes: a strategy that derives state from it
        #: (Plumtree's neighbours) compares this instead of rescanning on every message
        self.version = 0

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member_id: str) -> bool:
        return member_id in self._members

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def all(self) -> list[Member]:
        return list(self._members.values())

    def holders(self) -> list[Member]:
        """Members that may hold versions we do not: every one but those that left. Dead is a
        verdict, not a fact - a partitioned, paused or falsely accused member comes back with
        what it holds - so it counts until it returns, is force-left or is forgotten."""
        return [m for m in self._members.values() if m.status != "left"]

    def reachable_ids(self) -> list[str]:
        """Alive and suspect members (read-only; indexable for O(1) random picks)."""
        return self._reachable

    def is_reachable(self, member_id: str) -> bool:
        """Alive or suspect (O(1))."""
        return member_id in self._reachable_pos

    def count(self, status: str) -> int:
        return sum(1 for m in self._members.values() if m.status == status)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in RANK}
        for m in self._members.values():
            out[m.status] += 1
        return out

    # -- writing ---------------------------------------------------------------------------
    def apply(self, claim: MemberUpdate, now: float) -> Change | None:
        """Apply a claim about another member; None when it changes nothing."""
        member = self._members.get(claim.id)
        if member is None:
            grave = self.graveyard.get(claim.id)
            if grave is not None:
                if now < grave[1] and claim.inc <= grave[0]:
                    return None
                del self.graveyard[claim.id]
            if claim.status not in REACHABLE:
                return None  # no news in learning that a stranger is gone
            member = Member(claim.id, claim.addr, claim.inc, claim.status, claim.hb,
                            dict(claim.tags), heard_at=now, since=now, by=claim.by)
            self._members[claim.id] = member
            self._set_reachable(member.id, True)
            self.heard_order[member.id] = None
            return Change(member, None, True, True)
        if not supersedes(claim, member.inc, member.status, member.hb):
            if claim.inc == member.inc and claim.tags and not member.tags:
                # Tags are fixed for a life; a member first known from a bare envelope lacks them.
                member.tags = dict(claim.tags)
            return None
        previous = member.status
        refreshed = claim.status == "alive" and (claim.inc > member.inc or claim.hb > member.hb)
        old = (member.addr, member.inc, member.tags)
        if claim.tags or claim.inc != member.inc:  # a same-life claim without tags does not erase them
            member.tags = dict(claim.tags)
        member.addr, member.inc, member.status, member.hb = claim.addr, claim.inc, claim.status, claim.hb
        member.by = claim.by
        if refreshed:
            self.mark_heard(member.id, now)
        if previous != member.status:
            member.since = now
            self._set_reachable(member.id, member.status in REACHABLE)
        return Change(member, previous, previous != member.status, refreshed,
                      old_address=old[0] if old[0] != member.addr else "",
                      updated=old != (member.addr, member.inc, member.tags))

    def set_status(self, member_id: str, status: str, now: float, by: str = "") -> Member | None:
        """Local verdict (by our failure detector) at the member's current incarnation."""
        member = self._members.get(member_id)
        if member is None or member.status == status or RANK[status] < RANK[member.status]:
            return None
        member.status, member.since, member.by = status, now, by
        self._set_reachable(member_id, status in REACHABLE)
        return member

    def mark_heard(self, member_id: str, now: float) -> None:
        member = self._members.get(member_id)
        if member is not None:
            member.heard_at = now
            self.heard_order.move_to_end(member_id)

    def remove(self, member_id: str, now: float, remember_for: float) -> Member | None:
        """Reap a member; remember its incarnation so stale claims cannot revive it."""
        member = self._members.pop(member_id, None)
        if member is None:
            return None
        self._set_reachable(member_id, False)
        self.heard_order.pop(member_id, None)
        self.graveyard[member_id] = (member.inc, now + remember_for)
        return member

    def forget(self, member_id: str) -> Member | None:
        """Drop a member *without* a grave: a partial overlay letting go of a neighbour that is
        not known to have failed (it may come back at the same incarnation)."""
        member = self._members.pop(member_id, None)
        if member is not None:
            self._set_reachable(member_id, False)
            self.heard_order.pop(member_id, None)
        return member

    def forget_graves(self, now: float) -> None:
        for member_id in [m for m, (_, until) in self.graveyard.items() if until <= now]:
            del self.graveyard[member_id]

    def _set_reachable(self, member_id: str, reachable: bool) -> None:
        pos = self._reachable_pos.get(member_id)
        if reachable and pos is None:
            self._reachable_pos[member_id] = len(self._reachable)
            self._reachable.append(member_id)
            self.version += 1
        elif not reachable and pos is not None:
            self.version += 1
            last = self._reachable.pop()
            del self._reachable_pos[member_id]
            if last != member_id:
                self._reachable[pos] = last
                self._reachable_pos[last] = pos


def member_view(member: Member) -> dict[str, Any]:
    """A member as events and the control channel show it."""
    return {"id": member.id, "address": member.addr, "status": member.status, "incarnation": member.inc,
            "tags": dict(member.tags), "heartbeat": member.hb}

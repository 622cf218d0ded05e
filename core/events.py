"""Events as an application sees them (`Agent.events()`): plain values, decoupled from the
kernel's effects. A key event carries the value a read returns after the change and the value
before it; a member event carries the member as a typed record.

Kinds: ``key`` (a key changed), and for members ``joined``, ``suspected``, ``alive_again``,
``rejoined``, ``failed``, ``left``, ``reaped`` (status changes, the `gossipmq_member_changed`
reasons) and ``updated`` (address, tags or incarnation changed, status did not).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MEMBER_KINDS = ("joined", "suspected", "alive_again", "rejoined", "failed", "left", "reaped", "updated")
KINDS = ("key", *MEMBER_KINDS)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member as this node sees it."""

    id: str
    address: str
    status: str                  # alive | suspect | dead | left; "passive" with hyparview (its reserve view)
    incarnation: int
    tags: dict[str, str] = field(default_factory=dict)
    heartbeat: int = 0
    is_self: bool = False

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> MemberInfo:
        return cls(view["id"], view["address"], view["status"], view["incarnation"], dict(view.get("tags", {})),
                   view.get("heartbeat", 0), bool(view.get("self", False)))


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """`key` changed on this node: by a local write (`source` "local") or one from a peer ("remote")."""

    key: str
    value: Any                   # what a read returns now (None when deleted)
    old_value: Any               # what it returned before (None when absent or deleted)
    deleted: bool
    source: str                  # local | remote
    origin: str                  # the node whose write this is
    kind: str = "key"


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A member changed as seen by this node; `kind` is one of MEMBER_KINDS."""

    kind: str
    member: MemberInfo
    previous: str | None         # the status before (None for a member first seen)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EventsLost:
    """This subscriber fell behind: `count` older events were dropped to keep its queue bounded."""

    count: int
    kind: str = "lost"


Event = KeyEvent | MemberEvent | EventsLost

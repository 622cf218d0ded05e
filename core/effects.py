"""What the kernel asks its runtime to do: effects are plain values (the foca lesson).

A runtime applies `Send` (deliver an envelope to an address), `Schedule` (call
``handle_timer(now, timer)`` at time `at`; a later Schedule of the same timer replaces the
earlier one) and hands every event to observers (pluggy hooks, logs, the CLI).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import Entry, Envelope
from .timers import Timer


@dataclass(frozen=True, slots=True)
class Send:
    address: str
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Schedule:
    timer: Timer    # e.g. Timer("dissemination", "round") or Timer("kernel", "reap")
    at: float       # absolute time, seconds


@dataclass(frozen=True, slots=True)
class MemberChanged:
    member: dict[str, Any]
    previous: str | None
    reason: str     # joined, suspected, alive_again, rejoined, failed, left, reaped


@dataclass(frozen=True, slots=True)
class KeyChanged:
    key: str
    entry: Entry
    source: str     # "local" or "remote"
    before: tuple[Entry, ...] = ()   # the versions the key held before (observers derive the old value)


@dataclass(frozen=True, slots=True)
class RoundCompleted:
    round: int
    stats: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Dropped:
    cause: str
    detail: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """`member` holds what `Node.replicate` sent under `token` (write acknowledgement levels)."""

    token: int
    member: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth one log line that is not an error of the peer (join timeout, refutation)."""

    kind: str
    detail: str


Event = MemberChanged | KeyChanged | RoundCompleted | Dropped | Notice | Confirmed
Effect = Send | Schedule | Event

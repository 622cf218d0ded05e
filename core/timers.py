"""Timers are values (the foca lesson): `Schedule(Timer(...), at)` asks the runtime to call
``handle_timer(now, timer)`` at `at`; scheduling an equal timer again replaces the earlier one.

A timer names its owner (``"kernel"`` or the concern of the strategy that set it), what it is
for, and an optional argument - what it is about (a member id, a sequence number). When the
argument also carries the state the timer was set for (the incarnation a suspicion is about,
the probe it times out), a stale timer identifies itself: the handler compares and does
nothing, so no cancellation bookkeeping is needed.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

KERNEL = "kernel"


@dataclass(frozen=True, slots=True)
class Timer:
    owner: str                 # "kernel", or the concern of the strategy that scheduled it
    name: str                  # what it is for: "round", "probe", "suspicion", ...
    arg: Hashable = None       # what it is about, e.g. a member id or (member id, incarnation)

    def __str__(self) -> str:
        return f"{self.owner}:{self.name}" + (f":{self.arg}" if self.arg is not None else "")

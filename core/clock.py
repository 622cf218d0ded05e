"""Clocks: a hybrid logical clock (HLC) and version-vector helpers.

The HLC (Kulkarni et al. 2014) gives every write a timestamp that is close to wall-clock
time yet never goes backwards and always exceeds the timestamps of everything the writer has
seen. We pack it into one int: ``physical_ms << 16 | logical`` so comparing two timestamps
is comparing two ints. LWW orders concurrent writes by it.

Version vectors (origin -> highest counter) record the causal history of a key: a write
whose vector dominates another's happened after it; otherwise the two are concurrent.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def hlc_physical_ms(ts: int) -> int:
    """Wall-clock milliseconds part of a packed HLC timestamp."""
    return ts >> LOGICAL_BITS


class HybridLogicalClock:
    """HLC state machine. Time comes in as an argument: the clock never reads the wall."""

    __slots__ = ("last",)

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def tick(self, now: float) -> int:
        """Timestamp for a local event (a write) at wall time `now` (seconds)."""
        wall = int(now * 1000) << LOGICAL_BITS
        self.last = wall if wall > self.last else self.last + 1
        return self.last

    def observe(self, remote: int, now: float) -> None:
        """Merge a timestamp seen on a received update, so later local writes exceed it."""
        wall = int(now * 1000) << LOGICAL_BITS
        self.last = max(self.last, remote, wall)


def vv_dominates(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when `a` has seen everything `b` has (a >= b pointwise)."""
    return all(a.get(origin, 0) >= counter for origin, counter in b.items())


def vv_merge(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Pointwise maximum: the history of both (zero counters carry nothing and are dropped)."""
    return vv_join_all((a, b))


def vv_join_all(vvs: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Pointwise maximum of any number of version vectors (digests, causal contexts)."""
    out: dict[str, int] = {}
    for vv in vvs:
        for origin, counter in vv.items():
            if counter > out.get(origin, 0):
                out[origin] = counter
    return out


def vv_compare(a: Mapping[str, int], b: Mapping[str, int]) -> str:
    """'equal', 'after' (a dominates), 'before' (b dominates) or 'concurrent'."""
    ab, ba = vv_dominates(a, b), vv_dominates(b, a)
    if ab and ba:
        return "equal"
    if ab:
        return "after"
    if ba:
        return "before"
    return "concurrent"

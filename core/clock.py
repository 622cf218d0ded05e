"""Clocks: a hybrid logical clock (HLC) and version-vector helpers.

The HLC (Kulkarni et al. 2014) gives every write a timestamp that is close to wall-clock
time yet never goes backwards and always exceeds the timestamps of everything the writer has
seen. We pack it into one int: ``physical_ms << 16 | logical`` so comparing two timestamps
is comparing two ints. LWW orders concurrent writes by it.

Version vectors (origin -> highest counter) record the causal history of a key: a write
whose vector dominates another's happened after it; otherwise the two are concurrent.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

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


class OwnDot(Mapping[str, int]):
    """The causal context of a version that has seen nothing but its own write: ``{origin:
    counter}``. Most stored versions carry exactly that (a key written once, or only by one
    replica), and a one-entry dict costs 184 bytes; this read-only mapping costs 48 and reads
    the same. The store puts it in place of such a dict once it keeps a version; it encodes as
    the dict it stands for (`encode_hook`), so frames, files and signatures do not change."""

    __slots__ = ("origin", "counter")

    def __init__(self, origin: str, counter: int) -> None:
        self.origin = origin
        self.counter = counter

    def __getitem__(self, origin: str) -> int:
        if origin == self.origin:
            return self.counter
        raise KeyError(origin)

    def get(self, origin: str, default: int | None = None) -> int | None:  # type: ignore[override]
        return self.counter if origin == self.origin else default

    def __contains__(self, origin: object) -> bool:
        return origin == self.origin

    def __iter__(self) -> Iterator[str]:
        yield self.origin

    def __len__(self) -> int:
        return 1

    def items(self) -> tuple[tuple[str, int]]:  # type: ignore[override]
        return ((self.origin, self.counter),)

    def copy(self) -> dict[str, int]:
        """A plain dict, as `dict.copy` gives (code written for a dict context keeps working)."""
        return {self.origin: self.counter}

    def __repr__(self) -> str:
        return repr({self.origin: self.counter})


def own_dot(vv: Mapping[str, int], origin: str, counter: int) -> OwnDot | None:
    """The `OwnDot` that can stand for `vv` when it is only the dot (origin, counter), else None."""
    return OwnDot(origin, counter) if len(vv) == 1 and vv.get(origin) == counter else None


def encode_hook(obj: object) -> object:
    """msgspec's `enc_hook`: an `OwnDot` encodes as the dict it stands for."""
    if isinstance(obj, OwnDot):
        return {obj.origin: obj.counter}
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


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

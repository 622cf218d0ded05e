"""A third-party conflict resolver: of concurrent writes, the largest number wins.

Useful for high-water marks (largest offset processed, highest score): a smaller concurrent
write never overwrites a larger one, whatever the clocks say. Select it for a key prefix::

    [[conflict_resolution.rules]]
    prefix = "hwm/"
    resolver = "max_value"
    allow_decrease = false   # a put may not lower the value (refused at the writer)

It implements the full resolver protocol of gossipmq.core.resolution (a resolver that only
implements ``resolve(local, remote)`` would work too, with lww-like defaults).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from gossipmq.core import hookimpl
from gossipmq.core.messages import Entry
from gossipmq.core.resolution import Op, Read, Resolver, WriteContext, plain_build, plain_read


class MaxValueOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    allow_decrease: bool = False   # may a put on this replica lower the current maximum?


def _rank(e: Entry) -> tuple[float, int, str, int]:
    return (float(e.value), e.hlc, e.origin, e.counter)


class MaxValue(Resolver):
    """Keeps the version with the largest numeric value (ties: HLC, then dot)."""

    kind = "max"

    def __init__(self, options: MaxValueOptions) -> None:
        super().__init__()
        self.options = options

    def covers(self, a: Entry, b: Entry) -> bool:
        return _rank(a) >= _rank(b)      # a total order: one version per key stays

    def build(self, key: str, versions: Sequence[Entry], op: Op, wc: WriteContext) -> tuple[Any, bool, dict[str, int]]:
        if op.verb != "put" or isinstance(op.value, bool) or not isinstance(op.value, (int, float)):
            raise ValueError(f"{key!r} keeps the largest number: only `put NUMBER` (--value-json) is possible")
        current = max((float(e.value) for e in versions), default=None)
        if current is not None and op.value < current and not self.options.allow_decrease:
            self.stats["max_value_refused"] += 1
            raise ValueError(f"{key!r} is already {current:g}; {op.value:g} would not win")
        return plain_build(versions, op, wc)

    def read(self, key: str, versions: Sequence[Entry]) -> Read:
        return plain_read(key, [max(versions, key=_rank)])

    def live(self, versions: Sequence[Entry]) -> bool:
        return bool(versions)

    def validate(self, entry: Entry) -> str | None:
        reason = super().validate(entry)
        if reason is None and (isinstance(entry.value, bool) or not isinstance(entry.value, (int, float))):
            reason = f"max_value key {entry.key!r} holds a non-number"
        return reason


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("conflict_resolution", "max_value", MaxValue, MaxValueOptions)

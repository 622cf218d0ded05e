"""Transmit-limited broadcast queue (memberlist's TransmitLimitedQueue, in spirit).

Each queued item rides on outgoing messages until it has been sent `limit` times, where
`limit = retransmit_mult * ceil(log10(n + 1))`: enough for an infection-style broadcast to
reach all n members with high probability. Items that were sent fewest times go first
(newest first among equals). Queuing an item under an existing name replaces (invalidates)
the older one, so a newer version of a key or member never competes with a stale one.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def retransmit_limit(mult: int, n: int) -> int:
    """memberlist's rule: mult * ceil(log10(n + 1)), at least 1."""
    return max(1, mult * math.ceil(math.log10(n + 1)))


class BroadcastQueue(Generic[T]):
    """Items keyed by name in a heap ordered by (transmits, -seq): `take` costs O(k log m)
    for k items out of m queued, not a sort of the whole queue per message. Replaced and
    discarded items leave stale heap slots that are skipped lazily and compacted when they
    outnumber the live ones."""

    __slots__ = ("_items", "_heap", "_seq", "enqueued", "invalidated", "exhausted")

    def __init__(self) -> None:
        self._items: dict[str, list] = {}  # name -> [transmits, seq, item]
        self._heap: list[tuple[int, int, str, list]] = []  # (transmits, -seq, name, slot)
        self._seq = 0
        self.enqueued = 0
        self.invalidated = 0
        self.exhausted = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, name: str, item: T) -> None:
        """Queue `item`; a queued item with the same name is replaced."""
        self._seq += 1
        if name in self._items:
            self.invalidated += 1
        slot = [0, self._seq, item]
        self._items[name] = slot
        heapq.heappush(self._heap, (0, -self._seq, name, slot))
        self.enqueued += 1
        self._maybe_compact()

    def discard(self, name: str) -> None:
        self._items.pop(name, None)
        self._maybe_compact()

    def get(self, name: str) -> T | None:
        slot = self._items.get(name)
        return None if slot is None else slot[2]

    def take(self, max_items: int, limit: int, fits: Callable[[T], bool] | None = None) -> list[T]:
        """Up to `max_items` items, fewest-sent first (newest first among equals); each taken
        item counts one transmit and leaves the queue after `limit` transmits.

        `fits` lets the caller skip items that would overflow a byte budget (they stay queued).
        """
        items, heap = self._items, self._heap
        if not items or max_items <= 0:
            return []
        out: list[T] = []
        taken: list[tuple[str, list]] = []
        skipped: list[tuple[int, int, str, list]] = []
        while heap and len(out) < max_items:
            top = heapq.heappop(heap)
            name, slot = top[2], top[3]
            if items.get(name) is not slot or slot[0] != top[0]:
                continue  # stale: replaced, discarded or already re-queued
            if fits is not None and not fits(slot[2]):
                skipped.append(top)
                continue
            out.append(slot[2])
            taken.append((name, slot))
        for top in skipped:
            heapq.heappush(heap, top)
        for name, slot in taken:
            slot[0] += 1
            if slot[0] >= limit:
                del items[name]
                self.exhausted += 1
            else:
                heapq.heappush(heap, (slot[0], -slot[1], name, slot))
        return out

    def items(self) -> list[tuple[str, int, T]]:
        """(name, transmits, item) for inspection and tests."""
        return [(name, slot[0], slot[2]) for name, slot in self._items.items()]

    def _maybe_compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._items):
            self._heap = [(s[0], -s[1], n, s) for n, s in self._items.items()]
            heapq.heapify(self._heap)

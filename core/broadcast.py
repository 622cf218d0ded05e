"""Transmit-limited broadcast queue (memberlist's TransmitLimitedQueue, in spirit).

Each queued item rides on outgoing messages until it has been sent `limit` times, where
`limit = retransmit_mult * ceil(log10(n + 1))`: enough for an infection-style broadcast to
reach all n members with high probability. Items that were sent fewest times go first
(newest first among equals). Queuing an item under an existing name replaces (invalidates)
the older one, so a newer version of a key or member never competes with a stale one.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def retransmit_limit(mult: int, n: int) -> int:
    """memberlist's rule: mult * ceil(log10(n + 1)), at least 1."""
    return max(1, mult * math.ceil(math.log10(n + 1)))


class BroadcastQueue(Generic[T]):
    __slots__ = ("_items", "_seq", "enqueued", "invalidated", "exhausted")

    def __init__(self) -> None:
        self._items: dict[str, list] = {}  # name -> [transmits, seq, item]
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
        self._items[name] = [0, self._seq, item]
        self.enqueued += 1

    def discard(self, name: str) -> None:
        self._items.pop(name, None)

    def take(self, max_items: int, limit: int, fits: Callable[[T], bool] | None = None) -> list[T]:
        """Up to `max_items` items, fewest-sent first; each taken item counts one transmit.

        `fits` lets the caller stop adding items that would overflow a byte budget.
        """
        if not self._items or max_items <= 0:
            return []
        order = sorted(self._items.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
        out: list[T] = []
        for name, slot in order:
            if len(out) >= max_items:
                break
            if fits is not None and not fits(slot[2]):
                continue
            out.append(slot[2])
            slot[0] += 1
            if slot[0] >= limit:
                del self._items[name]
                self.exhausted += 1
        return out

    def items(self) -> list[tuple[str, int, T]]:
        """(name, transmits, item) for inspection and tests."""
        return [(name, slot[0], slot[2]) for name, slot in self._items.items()]

"""Replicated key-value store: versioned entries, tombstones, digests and deltas.

Reconciliation is Scuttlebutt-style over dots. Every write gets a dot (origin, counter);
`watermarks[origin]` is the highest counter up to which we have seen every write of that
origin *or something that superseded it*. A digest is just the watermarks. To bring a peer
up to date we send, per origin it lags on, our entries above its watermark in counter
order (oldest-missing first), plus a coverage claim: the watermark it may adopt once it
applies them. When a byte budget cuts a delta short, coverage stops just below the first
entry left out, so nothing is skipped: the rest follows next round, and the deferred bytes
are counted. See docs/algorithms.md for why superseded dots need no special treatment.
"""
from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import orjson

from .messages import Entry

Resolver = Callable[[Entry, Entry], Entry]


def entry_hash(entry: Entry) -> int:
    """64-bit identity of a stored version; XOR of these is the order-free store checksum."""
    raw = f"{entry.key}\x00{entry.origin}\x00{entry.counter}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def entry_size(entry: Entry) -> int:
    """Bytes the entry takes in a message."""
    return len(orjson.dumps(msgspec.to_builtins(entry))) + 1


class Store:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.entries: dict[str, Entry] = {}
        self.watermarks: dict[str, int] = {}
        self._by_origin: dict[str, dict[int, str]] = {}   # origin -> counter -> key (current)
        self._counters: dict[str, list[int]] = {}         # origin -> sorted counters (lazy deletes)
        self._checksum = 0
        self.live_keys = 0

    # -- reading ---------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def __len__(self) -> int:
        return len(self.entries)

    def checksum(self) -> str:
        """Order-independent digest of the store contents: equal on two nodes iff same state."""
        return f"{self._checksum:016x}"

    def digest(self) -> dict[str, int]:
        return dict(self.watermarks)

    def lags(self, peer_digest: Mapping[str, int]) -> bool:
        """Do we hold anything the owner of `peer_digest` has not covered?"""
        for origin, mark in self.watermarks.items():
            if mark > peer_digest.get(origin, 0):
                return True
        for origin in self._counters:
            if self._max_counter(origin) > peer_digest.get(origin, 0):
                return True
        return False

    def delta_for(self, peer_digest: Mapping[str, int], budget: int) -> tuple[list[Entry], dict[str, int], int]:
        """(entries, coverage, deferred_bytes): what the peer lacks, oldest-missing first,
        within `budget` bytes."""
        candidates: list[Entry] = []
        coverage: dict[str, int] = {}
        for origin in set(self.watermarks) | set(self._counters):
            theirs = peer_digest.get(origin, 0)
            mine = self.watermarks.get(origin, 0)
            if mine > theirs:
                coverage[origin] = mine
            candidates.extend(self._entries_above(origin, theirs))
        if not candidates and not coverage:
            return [], {}, 0
        candidates.sort(key=lambda e: e.hlc)
        chosen: list[Entry] = []
        used = 0
        deferred = 0
        cut: dict[str, int] = {}  # origin -> first counter left out
        for entry in candidates:
            if entry.origin in cut:
                deferred += entry_size(entry)
                continue
            size = entry_size(entry)
            if used + size > budget and chosen:
                cut[entry.origin] = entry.counter
                deferred += size
                continue
            chosen.append(entry)
            used += size
        for origin, first_left_out in cut.items():
            capped = min(coverage.get(origin, 0), first_left_out - 1)
            if capped > peer_digest.get(origin, 0):
                coverage[origin] = capped
            else:
                coverage.pop(origin, None)
        return chosen, coverage, deferred

    def items(self) -> Iterator[tuple[str, Entry]]:
        return iter(self.entries.items())

    # -- writing ---------------------------------------------------------------------------
    def write(self, key: str, value: Any, deleted: bool, origin: str, counter: int, hlc: int) -> Entry:
        """Record a local write with dot (origin, counter); its history extends the key's."""
        previous = self.entries.get(key)
        vv = dict(previous.vv) if previous is not None else {}
        vv[origin] = counter
        entry = Entry(key, None if deleted else value, deleted, origin, counter, hlc, vv)
        self._replace(previous, entry)
        if counter > self.watermarks.get(origin, 0):
            self.watermarks[origin] = counter
        return entry

    def apply(self, entry: Entry) -> Entry | None:
        """Merge a received entry; returns the entry that is now stored if it changed."""
        current = self.entries.get(entry.key)
        if current is not None:
            if current.origin == entry.origin and current.counter == entry.counter:
                return None
            winner = self.resolver(current, entry)
            if winner is current:
                self._advance(entry.origin, entry.counter)
                return None
        else:
            winner = entry
        self._replace(current, winner)
        self._advance(entry.origin, entry.counter)
        return winner

    def adopt_coverage(self, coverage: Mapping[str, int]) -> None:
        for origin, mark in coverage.items():
            if mark > self.watermarks.get(origin, 0):
                self.watermarks[origin] = mark

    # -- internals -------------------------------------------------------------------------
    def _advance(self, origin: str, counter: int) -> None:
        if counter == self.watermarks.get(origin, 0) + 1:
            self.watermarks[origin] = counter

    def _replace(self, old: Entry | None, new: Entry) -> None:
        if old is not None:
            self._checksum ^= entry_hash(old)
            self._by_origin[old.origin].pop(old.counter, None)
            if not old.deleted:
                self.live_keys -= 1
        self.entries[new.key] = new
        self._checksum ^= entry_hash(new)
        if not new.deleted:
            self.live_keys += 1
        index = self._by_origin.setdefault(new.origin, {})
        index[new.counter] = new.key
        counters = self._counters.setdefault(new.origin, [])
        if not counters or counters[-1] < new.counter:
            counters.append(new.counter)
        else:
            bisect.insort(counters, new.counter)
        if len(counters) > 64 and len(counters) > 2 * len(index):
            self._counters[new.origin] = sorted(index)

    def _max_counter(self, origin: str) -> int:
        counters, index = self._counters[origin], self._by_origin[origin]
        while counters and counters[-1] not in index:
            counters.pop()
        return counters[-1] if counters else 0

    def _entries_above(self, origin: str, mark: int) -> list[Entry]:
        counters = self._counters.get(origin)
        if not counters or counters[-1] <= mark:
            return []
        index = self._by_origin[origin]
        out = []
        for counter in counters[bisect.bisect_right(counters, mark):]:
            key = index.get(counter)
            if key is not None:
                out.append(self.entries[key])
        return out

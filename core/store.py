"""Replicated key-value store: versioned entries, tombstones, digests and deltas.

Reconciliation is Scuttlebutt-style over dots. Every write gets a dot (origin, counter);
`watermarks[origin]` is the highest counter up to which we have seen every write of that
origin *or something that superseded it*. A digest is just the watermarks. To bring a peer
up to date we send, per origin it lags on, our entries above its watermark in counter
order (oldest-missing first), plus a coverage claim: the watermark it may adopt once it
applies them. When a byte budget cuts a delta short, coverage stops just below the first
entry left out, so nothing is skipped: the rest follows next round, and the deferred bytes
are counted. See docs/algorithms.md for why superseded dots need no special treatment.

A key holds a *set* of versions: those no other version of the key covers, as the resolver
(core/resolution.py) defines covering. `lww` covers by HLC, so one version stays; multi-value
and CRDT keys keep concurrent states and join them on read. Every version is immutable and
keeps its own dot, so reconciliation stays per dot. See docs/conflict-resolution.md.

Durable storage hooks in through `journal`: when it is a list, every version added or removed
and every watermark moved is recorded there for the runtime to flush (transports/storage.py);
the store itself never does I/O.
"""
from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping
from operator import attrgetter
from typing import Any

from msgspec.structs import force_setattr

from .clock import own_dot, vv_join_all
from .hashing import blake2b
from .limits import entry_size
from .merkle import MerkleTree
from .messages import Entry
from .resolution import ConflictResolver, router_of


def entry_hash(entry: Entry) -> int:
    """64-bit identity of a stored version; XOR of these is the order-free store checksum."""
    raw = f"{entry.key}\x00{entry.origin}\x00{entry.counter}".encode()
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big")


_counter_of = attrgetter("counter")
#: an origin's log is compacted once it holds more than this many versions and twice as many as are kept
_COMPACT_FLOOR = 64


class Store:
    def __init__(self, resolver: ConflictResolver, seal: Callable[[Entry], Entry] | None = None) -> None:
        """`resolver`: the node's conflict resolution (a PrefixRouter, or one resolver for every key)."""
        self.router = router_of(resolver)
        self.seal = seal or (lambda entry: entry)   # signs local writes (security.seal_entry)
        #: key -> the version kept (the only one for lww keys), or a tuple of the versions kept,
        #: sorted by dot: a bare version for the common case saves a tuple per key
        self._kept: dict[str, Entry | tuple[Entry, ...]] = {}
        self.watermarks: dict[str, int] = {}
        #: origin -> the versions of that origin that were kept, in counter order; a version
        #: dropped later stays until the log is compacted (`_is_kept` tells), so dropping costs
        #: nothing and the log holds one pointer per version instead of a counter index
        self._log: dict[str, list[Entry]] = {}
        self._held: dict[str, int] = {}      # origin -> how many versions of its log are kept
        self._checksum = 0
        self._checksum_text: str | None = None   # checksum() as sent on every message, until it changes
        #: kept equal to the checksum at its root; it indexes keys only and asks us for identities
        self.merkle = MerkleTree(identity=self.key_identity)
        self.journal: list[tuple[bool, Entry]] | None = None   # (stored?, version) for durable storage
        self.moved_marks: set[str] = set()                    # origins whose watermark moved since flush
        self._dead: set[str] = set()         # keys held that are not live (tombstones, emptied states)
        self._origins: dict[str, str] = {}   # origin id -> the one string kept versions share

    # -- reading ---------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The newest version kept for `key` (the only one for lww keys); see `versions`."""
        kept = self._kept.get(key)
        if kept is None or not isinstance(kept, tuple):
            return kept
        return max(kept, key=lambda e: (e.hlc, e.origin, e.counter))

    def versions(self, key: str) -> tuple[Entry, ...]:
        kept = self._kept.get(key)
        if kept is None:
            return ()
        return kept if isinstance(kept, tuple) else (kept,)

    def keys(self) -> KeysView[str]:
        """Every key held, live or not (see `is_live`)."""
        return self._kept.keys()

    def live_keys_under(self, prefix: str = "") -> list[str]:
        """The live keys starting with `prefix`, sorted (what `keys` verbs answer)."""
        return sorted(k for k in self._kept if k.startswith(prefix) and k not in self._dead)

    def key_identity(self, key: str) -> int:
        """XOR of the identities of the key's versions (0 when none): its Merkle leaf entry."""
        identity = 0
        for version in self.versions(key):
            identity ^= entry_hash(version)
        return identity

    def keeps_dot(self, entry: Entry) -> bool:
        """Do we keep a version with this entry's dot (the same write)? Cheaper than `holds`."""
        kept = self._kept.get(entry.key)
        if kept is None:
            return False
        if isinstance(kept, tuple):
            return any(v.counter == entry.counter and v.origin == entry.origin for v in kept)
        return kept.counter == entry.counter and kept.origin == entry.origin

    def holds(self, entry: Entry) -> bool:
        """Do we keep this version, or one that makes it redundant?"""
        for kept in self.versions(entry.key):
            if kept.dot == entry.dot or self._dominates(kept, entry):
                return True
        return False

    def entries_above(self, origin: str, mark: int) -> list[Entry]:
        """The versions we keep of `origin` with a counter above `mark`, oldest first."""
        return self._entries_above(origin, mark)

    def is_live(self, key: str) -> bool:
        """Does the key hold a value (not only tombstones / emptied states)?"""
        return key in self._kept and key not in self._dead

    @property
    def live_keys(self) -> int:
        return len(self._kept) - len(self._dead)

    def __len__(self) -> int:
        return len(self._kept)

    def checksum(self) -> str:
        """Order-independent digest of the store contents: equal on two nodes iff same state."""
        text = self._checksum_text
        if text is None:
            text = self._checksum_text = f"{self._checksum:016x}"
        return text

    def digest(self) -> dict[str, int]:
        return dict(self.watermarks)

    def lags(self, peer_digest: Mapping[str, int]) -> bool:
        """Do we hold anything the owner of `peer_digest` has not covered?"""
        for origin, mark in self.watermarks.items():
            if mark > peer_digest.get(origin, 0):
                return True
        for origin in self._log:
            if self._max_counter(origin) > peer_digest.get(origin, 0):
                return True
        return False

    def delta_for(self, peer_digest: Mapping[str, int], budget: int) -> tuple[list[Entry], dict[str, int], int]:
        """(entries, coverage, deferred_bytes): what the peer lacks, oldest first (by HLC across
        origins), within `budget` bytes. The cost is what is sent, not what the peer lacks: each
        origin's missing entries are already in counter (= HLC) order, so a k-way merge stops at
        the first entry that does not fit; deferred bytes are estimated from the entries sent."""
        coverage: dict[str, int] = {}
        heap: list[tuple[int, int, str, int]] = []   # (hlc, tiebreak, origin, position in its counters)
        logs = self._log
        for origin in set(self.watermarks) | set(logs):
            theirs = peer_digest.get(origin, 0)
            if self.watermarks.get(origin, 0) > theirs:
                coverage[origin] = self.watermarks[origin]
            log = logs.get(origin)
            if log and log[-1].counter > theirs:
                self._push_next(heap, origin, bisect.bisect_right(log, theirs, key=_counter_of))
        if not heap:
            return [], coverage, 0
        chosen: list[Entry] = []
        used = 0
        while heap:
            _, _, origin, pos = heapq.heappop(heap)
            entry = logs[origin][pos]
            size = entry_size(entry)
            if used + size > budget and chosen:
                heapq.heappush(heap, (entry.hlc, 0, origin, pos))
                break
            chosen.append(entry)
            used += size
            self._push_next(heap, origin, pos + 1)
        left = 0
        for _, _, origin, pos in heap:   # cut short: coverage stops below each origin's first entry left out
            log = logs[origin]
            left += len(log) - pos
            capped = min(coverage.get(origin, 0), log[pos].counter - 1)
            if capped > peer_digest.get(origin, 0):
                coverage[origin] = capped
            else:
                coverage.pop(origin, None)
        return chosen, coverage, left * used // max(1, len(chosen))

    def _push_next(self, heap: list[tuple[int, int, str, int]], origin: str, pos: int) -> None:
        """Push the first kept version of `origin` at or after `pos` in its log (skipping
        versions dropped since: the log is compacted lazily)."""
        log = self._log[origin]
        while pos < len(log):
            entry = log[pos]
            if self._is_kept(entry):
                heapq.heappush(heap, (entry.hlc, id(entry), origin, pos))
                return
            pos += 1

    def items(self) -> Iterator[tuple[str, Entry]]:
        """(key, newest version) pairs; `all_versions` yields every version kept."""
        for key in self._kept:
            entry = self.get(key)
            if entry is not None:
                yield key, entry

    def all_versions(self) -> Iterator[Entry]:
        for kept in self._kept.values():
            if isinstance(kept, tuple):
                yield from kept
            else:
                yield kept

    # -- writing ---------------------------------------------------------------------------
    def write(self, key: str, value: Any, deleted: bool, origin: str, counter: int, hlc: int,
              vv: dict[str, int] | None = None, kind: str = "") -> Entry:
        """Record a local write with dot (origin, counter). Without `vv`, its history extends
        every version of the key held here (the resolver passes the vv it built)."""
        if vv is None:
            vv = vv_join_all(previous.vv for previous in self.versions(key))
            vv[origin] = counter
        # a plain tombstone carries no value; a state (multi-value, CRDT) is kept even when empty
        entry = self.seal(Entry(key, None if deleted and not kind else value, deleted, origin, counter, hlc, vv,
                                kind=kind))
        dot = own_dot(vv, origin, counter)
        if dot is not None:
            force_setattr(entry, "vv", dot)   # after sealing: it signs the dict
        self._insert(entry)
        if counter > self.watermarks.get(origin, 0):
            self.watermarks[origin] = counter
            self._moved(origin)
        return entry

    def apply(self, entry: Entry) -> Entry | None:
        """Merge a received entry; returns it when the store changed (it is kept), else None
        (we hold it already, or a version that covers it)."""
        changed = self._insert(entry)
        if changed:
            self._share_origins(entry)
        self._advance(entry.origin, entry.counter)
        return entry if changed else None

    def _share_origins(self, entry: Entry) -> None:
        """A decoded entry brings its own copies of the origin id (in `origin` and as a key of
        `vv`) and of the counter: point a kept version at one shared string per origin, and a
        context that is only its own dot becomes an `OwnDot` (48 bytes, not a 184-byte dict).
        Values are equal, so nothing changes for any reader (the struct is frozen for them; this
        happens once, before anyone sees it)."""
        origins = self._origins
        origin = origins.setdefault(entry.origin, entry.origin)
        if origin is not entry.origin:
            force_setattr(entry, "origin", origin)
        vv = entry.vv
        dot = own_dot(vv, origin, entry.counter)
        force_setattr(entry, "vv", dot if dot is not None else {origins.setdefault(o, o): c for o, c in vv.items()})

    def adopt_coverage(self, coverage: Mapping[str, int]) -> None:
        for origin, mark in coverage.items():
            if mark > self.watermarks.get(origin, 0):
                self.watermarks[origin] = mark
                self._moved(origin)

    def drop(self, entry: Entry) -> bool:
        """Forget one kept version (garbage collection of a tombstone version)."""
        if not self.keeps_dot(entry):
            return False
        self._replace(entry, None)
        return True

    def purge(self, key: str) -> int:
        """Forget every version of `key` (garbage collection of a tombstone); returns how many."""
        versions = self.versions(key)
        for entry in versions:
            self._replace(entry, None)
        return len(versions)

    def load(self, entries: Iterable[Entry], watermarks: Mapping[str, int]) -> None:
        """Restore a persisted state as it was (no resolver: it was consistent when written)."""
        journal, self.journal = self.journal, None
        try:
            for entry in entries:
                if not self.keeps_dot(entry):
                    self._replace(None, entry)
            for origin, mark in watermarks.items():
                self.watermarks[origin] = max(mark, self.watermarks.get(origin, 0))
        finally:
            self.journal = journal

    # -- internals -------------------------------------------------------------------------
    def _dominates(self, a: Entry, b: Entry) -> bool:
        """`a` makes `b` redundant: a covers b, and when they cover each other the larger dot stays."""
        resolver = self.router.for_key(a.key)
        if not resolver.covers(a, b):
            return False
        return not resolver.covers(b, a) or a.dot > b.dot

    def _insert(self, entry: Entry) -> bool:
        """Keep `entry` unless a kept version dominates it; drop the versions it dominates."""
        current = self.versions(entry.key)
        for kept in current:
            if kept.dot == entry.dot or self._dominates(kept, entry):
                return False
        for kept in current:
            if self._dominates(entry, kept):
                self._replace(kept, None)
                current = self.versions(entry.key)
        self._replace(None, entry, current)
        return True

    def _moved(self, origin: str) -> None:
        if self.journal is not None:
            self.moved_marks.add(origin)

    def _advance(self, origin: str, counter: int) -> None:
        if counter == self.watermarks.get(origin, 0) + 1:
            self.watermarks[origin] = counter
            self._moved(origin)

    def _replace(self, old: Entry | None, new: Entry | None, before: tuple[Entry, ...] | None = None) -> None:
        """The one place versions come and go: drop `old`, keep `new` (same key; either may be
        None). Keeps checksum, Merkle leaf (XOR of the key's version identities), origin logs,
        live keys and journal in step. Each version is hashed once: identities are XORs, so
        the key's leaf changes by the same flip as the checksum. `before`: the key's versions,
        when the caller holds them already."""
        key = (new or old).key  # type: ignore[union-attr]
        if before is None:
            before = self.versions(key)
        flip = 0
        if old is not None:
            flip = entry_hash(old)
            after = tuple(v for v in before if v.dot != old.dot)
            if self.journal is not None:
                self.journal.append((False, old))
        else:
            after = before
        if new is not None:
            flip ^= entry_hash(new)
            after = (new,) if not after else tuple(sorted((*after, new), key=lambda v: v.dot))
            if self.journal is not None:
                self.journal.append((True, new))
        self._checksum ^= flip
        self._checksum_text = None
        if after:
            self._kept[key] = after[0] if len(after) == 1 else after
        else:
            self._kept.pop(key, None)
        self.merkle.flip(key, flip, present=bool(after))
        if after and not self.router.for_key(key).live(after):
            self._dead.add(key)
        else:
            self._dead.discard(key)
        if old is not None:
            self._held[old.origin] -= 1
            self._compact(old.origin)
        if new is not None:
            log = self._log.setdefault(new.origin, [])
            if not log or log[-1].counter < new.counter:
                log.append(new)
            else:
                bisect.insort(log, new, key=_counter_of)
            self._held[new.origin] = self._held.get(new.origin, 0) + 1
            self._compact(new.origin)

    def _is_kept(self, entry: Entry) -> bool:
        """Is this very version (not only its dot) still kept? Log entries are checked this way."""
        kept = self._kept.get(entry.key)
        if kept is entry:
            return True
        return isinstance(kept, tuple) and any(v is entry for v in kept)

    def _compact(self, origin: str) -> None:
        """Drop the versions no longer kept from `origin`'s log once they are the majority (so
        the cost is amortised over the drops), and the log itself once nothing of it is kept."""
        held = self._held[origin]
        if not held:
            del self._log[origin], self._held[origin]
            return
        log = self._log[origin]
        if len(log) > _COMPACT_FLOOR and len(log) > 2 * held:
            log[:] = [entry for entry in log if self._is_kept(entry)]

    def _max_counter(self, origin: str) -> int:
        log = self._log[origin]
        while log and not self._is_kept(log[-1]):
            log.pop()
        return log[-1].counter if log else 0

    def _entries_above(self, origin: str, mark: int) -> list[Entry]:
        log = self._log.get(origin)
        if not log or log[-1].counter <= mark:
            return []
        return [entry for entry in log[bisect.bisect_right(log, mark, key=_counter_of):] if self._is_kept(entry)]

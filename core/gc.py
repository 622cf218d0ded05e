"""Garbage collection of tombstones: purge a dead key once it is causally stable, or after a TTL.

A key is *dead* when its resolved state holds nothing: an lww tombstone, a multi-value key
whose siblings were all deleted, an emptied OR-Set or OR-Map, a reset counter. Its versions
must stay until no replica can still bring back what they removed. Two ways out:

**Causal stability (two phases, from the digests peers send in syn messages).**
  1. Every live member's digest covers the key's causal frontier (each version's dot and
     context): every live member has seen the tombstone. We then snapshot D, the pointwise
     maximum of all live members' digests at that moment. A write that was concurrent with the
     tombstone was made before its writer saw the tombstone, so its dot is at most that
     writer's own counter in D.
  2. Every live member's digest covers D: every live member has seen (and, since the
     tombstone covers it, dropped) every such concurrent write. Nothing a live member holds
     can resurrect the key, so every replica may purge it on its own.
  Members that are dead or left are not waited for.

**TTL.** After ``tombstone_ttl_ms`` the key is purged even if some member never confirmed (it
is silent, partitioned, or the dissemination never sends digests). Trade-off: a replica that
returns with versions older than the purge - a member that was down longer than the TTL, or a
dead member back with its durable state - may resurrect data the cluster deleted. With
``[anti_entropy]`` Merkle repair it resurrects it everywhere (the cluster still converges);
without it, that replica alone keeps it until its data is wiped. Choose the TTL longer than
any outage you want deletes to survive.

For a while after a purge (``guard`` seconds) a version of that key whose dot we had already
covered is ignored, so a delayed message cannot undo the purge on one replica only.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .messages import Entry


@dataclass
class _Candidate:
    since: float                          # when the key became dead here
    snapshot: dict[str, int] | None = None  # D, once phase 1 held


@dataclass
class TombstoneCollector:
    ttl: float                                        # seconds; purge regardless after this
    guard: float = 60.0                               # seconds a purged key's covered dots are ignored
    candidates: dict[str, _Candidate] = field(default_factory=dict)
    purged: dict[str, float] = field(default_factory=dict)   # key -> when it was purged
    stats: Counter[str] = field(default_factory=Counter)

    def touch(self, key: str, now: float, live: bool) -> None:
        """The key changed: it is a candidate while dead (its clock restarts on every change)."""
        if live:
            self.candidates.pop(key, None)
        else:
            self.candidates[key] = _Candidate(now)
        self.purged.pop(key, None)

    def ignores(self, key: str, covered: bool) -> bool:
        """Should a received version of `key` be ignored (its dot is covered and we purged it)?"""
        return covered and key in self.purged

    def due(self, now: float, versions_of: Callable[[str], Sequence[Entry]],
            digests: Sequence[Mapping[str, int]] | None) -> list[tuple[str, str]]:
        """(key, reason) of candidates to purge now. `digests`: ours and every live member's,
        or None when some live member's digest is unknown (then only the TTL applies)."""
        out: list[tuple[str, str]] = []
        for key, cand in list(self.candidates.items()):
            if now - cand.since >= self.ttl:
                out.append((key, "ttl"))
                continue
            if digests is None:
                continue
            versions = versions_of(key)
            if cand.snapshot is None:
                if all(_covers(d, frontier(versions)) for d in digests):
                    cand.snapshot = join(digests)
            elif all(_covers(d, cand.snapshot) for d in digests):
                out.append((key, "stable"))
        return out

    def forget(self, key: str, now: float, reason: str) -> None:
        self.candidates.pop(key, None)
        self.purged[key] = now
        self.stats[f"gc_purged_{reason}"] += 1

    def expire(self, now: float) -> None:
        for key, when in list(self.purged.items()):
            if now - when >= self.guard:
                del self.purged[key]


def frontier(versions: Iterable[Entry]) -> dict[str, int]:
    """Every dot a key's versions carry or have seen, as a version vector."""
    out: dict[str, int] = {}
    for v in versions:
        if v.counter > out.get(v.origin, 0):
            out[v.origin] = v.counter
        for origin, counter in v.vv.items():
            if counter > out.get(origin, 0):
                out[origin] = counter
    return out


def join(digests: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in digests:
        for origin, counter in d.items():
            if counter > out.get(origin, 0):
                out[origin] = counter
    return out


def _covers(digest: Mapping[str, int], need: Mapping[str, int]) -> bool:
    return all(digest.get(origin, 0) >= counter for origin, counter in need.items())

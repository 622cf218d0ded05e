"""Garbage collection of tombstones: purge dead versions once causally stable, or after a TTL.

A version is *dead* when its own state holds nothing: an lww tombstone, a multi-value delete
(no siblings), an emptied OR-Set or OR-Map, a reset counter. It must stay until no replica can
still bring back what it removed. It is purged only if the key reads the same without it (a
tombstone that still hides a concurrent version's value stays until a write covers both), and
purging is per version, not per key: a replica that purged a key and was written again must
end with the same versions as one that purged later. Two ways out:

**Causal stability (two phases, from the digests peers send in syn messages).**
  1. Every member's digest covers the causal frontier of the key's dead versions (dots and
     context): every member has seen the tombstone. We then snapshot D, the pointwise
     maximum of all members' digests at that moment. A write that was concurrent with the
     tombstone was made before its writer saw the tombstone, so its dot is at most that
     writer's own counter in D.
  2. Every member's digest covers D: every member has seen (and, since the tombstone covers
     it, dropped) every such concurrent write. Nothing a member holds can resurrect the key, so
     every replica may purge it on its own.
  "Every member" counts dead members too, by their last digest: dead is a verdict, and a
  partitioned, paused or falsely accused member comes back with the versions it holds. Only a
  member that left (or was force-left) or was forgotten (``reap_after_ms``) is not waited for.
  A node that knows no member judges nothing: it may have just restarted from its database and
  not yet rejoined, so "every member has seen it" would hold for nobody's word. Such a node
  (and a one-node cluster) purges by TTL.
  A restored replica's TTL clock starts at its restart (the delete's age is not stored).

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

from .clock import vv_dominates, vv_join_all
from .messages import Entry


@dataclass
class _Candidate:
    since: float                            # when the key last changed while holding a dead version
    snapshot: dict[str, int] | None = None  # D, once phase 1 held
    frontier: dict[str, int] | None = None  # the dead versions' frontier phase 1 was checked for


@dataclass
class TombstoneCollector:
    ttl: float                                        # seconds; purge regardless after this
    guard: float = 60.0                               # seconds a purged key's covered dots are ignored
    candidates: dict[str, _Candidate] = field(default_factory=dict)
    purged: dict[str, float] = field(default_factory=dict)   # key -> when it was purged
    stats: Counter[str] = field(default_factory=Counter)

    def touch(self, key: str, now: float, dead: bool) -> None:
        """The key changed: a candidate while it holds a dead version (its TTL clock restarts)."""
        if dead:
            self.candidates[key] = _Candidate(now)
        else:
            self.candidates.pop(key, None)

    def ignores(self, key: str, covered: bool) -> bool:
        """Should a received version of `key` be ignored (its dot is covered and we purged it)?"""
        return covered and key in self.purged

    def due(self, now: float, dead_of: Callable[[str], Sequence[Entry]],
            digests: Sequence[Mapping[str, int]] | None) -> list[tuple[str, str]]:
        """(key, reason) of candidates whose dead versions may go now. `dead_of(key)`: its dead
        versions; `digests`: ours and every member's that may hold versions (dead ones included),
        or None when one of them is unknown (then only the TTL applies)."""
        out: list[tuple[str, str]] = []
        for key, cand in list(self.candidates.items()):
            if now - cand.since >= self.ttl:
                out.append((key, "ttl"))
                continue
            if digests is None:
                continue
            need = frontier(dead_of(key))
            if cand.snapshot is None or need != cand.frontier:
                cand.snapshot = vv_join_all(digests) if all(vv_dominates(d, need) for d in digests) else None
                cand.frontier = need
            elif all(vv_dominates(d, cand.snapshot) for d in digests):
                out.append((key, "stable"))
        return out

    def forget(self, key: str, now: float, reason: str, purged: int, still_dead: bool) -> None:
        """`purged` dead versions of `key` went; `still_dead`: some stay (they hide a value)."""
        if still_dead:
            self.candidates[key] = _Candidate(now)
        else:
            self.candidates.pop(key, None)
        if purged:
            self.purged[key] = now
            self.stats[f"gc_purged_{reason}"] += 1

    def expire(self, now: float) -> None:
        for key, when in list(self.purged.items()):
            if now - when >= self.guard:
                del self.purged[key]


def frontier(versions: Iterable[Entry]) -> dict[str, int]:
    """Every dot a key's versions carry or have seen, as a version vector."""
    versions = tuple(versions)
    return vv_join_all((*({v.origin: v.counter} for v in versions), *(v.vv for v in versions)))

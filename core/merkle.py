"""A Merkle tree over the key space, for anti-entropy and convergence monitoring.

Shape: every key falls into one of ``branching ** depth`` fixed leaf buckets by a stable hash
of the key (crc32, the same on every node and every run). A leaf's hash is the XOR of the
64-bit identities (`store.entry_hash`: key, origin, counter) of the entries in it, tombstones
included; an inner node's hash is the XOR of its children. XOR makes every update O(depth):
a changed entry flips the same 64 bits on its leaf and on each ancestor, so the tree is kept
current on every store change without rehashing anything. The ancestors are flipped lazily: a
write records its flip against its leaf, and the first read of an inner node applies every
recorded flip level by level, so a delta of 64 writes costs 64 leaf updates and one pass up the
shared ancestors instead of 64 * depth updates (reads come once per anti-entropy round). The
root is then the XOR of all entry identities - exactly the store checksum every message
already carries.

The tree is sparse (dicts of non-zero nodes), so ten thousand simulated nodes holding a few
keys each cost almost nothing. A leaf keeps only the names of its keys (a small tuple, a set
once large); a key's identity is asked of the store (`identity`, `Store.key_identity`) when the
leaf is listed, so the tree holds no copy of it: at 10^6 keys the whole tree costs about 20-30
bytes per key (B13 --merkle-off), where an identity dict per leaf cost about 100.

Two replicas find their differences by descending from the root into differing children
only: d differing keys cost at most ``d * branching * depth`` hashes and ``depth`` round trips,
plus the (key, identity) lists of the d differing leaves (about N / leaves keys each). See
docs/algorithms.md.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

#: a leaf keeps its keys in a tuple up to this many, in a set beyond
SMALL_BUCKET = 32


def _no_identity(key: str) -> int:
    raise ValueError("this Merkle tree has no identity source: pass identity= (Store.key_identity)")


class MerkleTree:
    __slots__ = ("branching", "depth", "leaves", "_levels", "_pending", "buckets", "identity")

    def __init__(self, branching: int = 16, depth: int = 4,
                 identity: Callable[[str], int] = _no_identity) -> None:
        """`identity(key)`: the key's current identity, asked of the store when a leaf's keys are
        listed (anti-entropy), so the tree keeps no copy of it: one tuple or set slot per key."""
        if branching < 2 or depth < 1:
            raise ValueError("a Merkle tree needs branching >= 2 and depth >= 1")
        self.branching = branching
        self.depth = depth
        self.leaves = branching ** depth
        self.identity = identity
        self._levels: list[dict[int, int]] = [{} for _ in range(depth + 1)]
        self._pending: dict[int, int] = {}   # leaf -> XOR of the flips not yet applied to the levels
        #: leaf bucket -> the keys in it: a tuple while it is small (most leaves hold a handful
        #: of keys; an empty set alone costs 216 bytes), a set once it passes SMALL_BUCKET keys
        self.buckets: dict[int, tuple[str, ...] | set[str]] = {}

    # -- reading ---------------------------------------------------------------------------
    @property
    def levels(self) -> list[dict[int, int]]:
        """levels[l][i] = hash of node i at level l (0 = root, depth = leaves); absent = 0."""
        if self._pending:
            self._settle()
        return self._levels

    @property
    def root(self) -> int:
        return self.levels[0].get(0, 0)

    def bucket_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.leaves

    def node(self, level: int, index: int) -> int:
        return self.levels[level].get(index, 0)

    def children(self, level: int, index: int) -> range:
        """Indexes at level + 1 of the children of node `index` at `level`."""
        start = index * self.branching
        return range(start, start + self.branching)

    def child_hashes(self, level: int, indexes: Iterable[int]) -> dict[int, int]:
        """{child index: hash} at level + 1 for every child of `indexes` at `level`."""
        below = self.levels[level + 1]
        return {c: below.get(c, 0) for i in indexes for c in self.children(level, i)}

    def differing(self, level: int, theirs: dict[int, int]) -> list[int]:
        """Indexes at `level` where the peer's hashes differ from ours."""
        mine = self.levels[level]
        return [i for i, h in theirs.items() if mine.get(i, 0) != h]

    def bucket(self, index: int) -> dict[str, int]:
        """{key: entry identity} of one leaf bucket."""
        identity = self.identity
        return {key: identity(key) for key in self.buckets.get(index, ())}

    def bucket_keys(self, index: int) -> Iterable[str]:
        """The keys of one leaf bucket, without their identities (nothing is hashed)."""
        return self.buckets.get(index, ())

    def keys(self) -> Iterator[str]:
        for bucket in self.buckets.values():
            yield from bucket

    def diff(self, other: MerkleTree) -> tuple[set[str], int]:
        """(keys whose versions differ, hashes compared), by the same descent the anti-entropy
        protocol performs over the network - a local reference for tests and benchmarks."""
        if (self.branching, self.depth) != (other.branching, other.depth):
            raise ValueError("trees of different shapes cannot be compared")
        compared = 1
        frontier = [0] if self.root != other.root else []
        for level in range(self.depth):
            theirs = other.child_hashes(level, frontier)
            compared += len(theirs)
            frontier = self.differing(level + 1, theirs)
        keys: set[str] = set()
        for leaf in frontier:
            ours, other_bucket = self.bucket(leaf), other.bucket(leaf)
            keys.update(k for k in ours.keys() | other_bucket.keys() if ours.get(k) != other_bucket.get(k))
        return keys, compared

    # -- writing ---------------------------------------------------------------------------
    def flip(self, key: str, delta: int, *, present: bool) -> None:
        """XOR `delta` into `key`'s identity (0 when it was absent); `present`: whether the key is
        still held afterwards. A key's identity is the XOR of its versions' hashes, so the store
        passes the same flip it applies to its checksum."""
        index = self.bucket_of(key)
        buckets = self.buckets
        held = buckets.get(index, ())
        if present:
            if isinstance(held, set):
                held.add(key)
            elif key not in held:
                buckets[index] = (*held, key) if len(held) < SMALL_BUCKET else {*held, key}
        elif key in held:
            if isinstance(held, set):
                held.discard(key)
                if not held:
                    del buckets[index]
            elif len(held) > 1:
                buckets[index] = tuple(k for k in held if k != key)
            else:
                del buckets[index]
        if delta:
            pending = self._pending
            left = pending.get(index, 0) ^ delta
            if left:
                pending[index] = left
            else:
                del pending[index]

    def _settle(self) -> None:
        """Apply the recorded flips to every level, leaves first; flips that meet at an
        ancestor are combined before it is touched."""
        flips, self._pending = self._pending, {}
        for level in range(self.depth, -1, -1):
            nodes = self._levels[level]
            for index, delta in flips.items():
                value = nodes.get(index, 0) ^ delta
                if value:
                    nodes[index] = value
                else:
                    nodes.pop(index, None)
            if level:
                above: dict[int, int] = {}
                for index, delta in flips.items():
                    parent = index // self.branching
                    above[parent] = above.get(parent, 0) ^ delta
                flips = {i: d for i, d in above.items() if d}

"""Merkle anti-entropy: repair whatever rumors and digests missed (loss, partitions, restarts).

Every `interval_ms` a node picks one random peer. Peers' roots ride on every message
(`Envelope.sum` is the store checksum, which is the Merkle root, see merkle.py), so a peer
known to hold the same root is skipped for free. Otherwise the two descend the tree together,
one level per message, each side sending only the children of nodes that differed:

    A -> B  merkle_sync(level 1: the root's children)        (or level 0 if B's root is unknown)
    B -> A  merkle_sync(level 2: children of differing level-1 nodes)
    ...     alternating down to the leaves
    X -> Y  merkle_keys(the differing leaves: (key, entry identity) of each entry)
    Y -> X  merkle_entries(Y's versions that differ, and the keys Y wants)
    X -> Y  merkle_entries(the wanted versions)

Both sides merge what they receive through the conflict resolver, so both end with the same
winners. Tombstones are entries like any other, so deletes are repaired too. Cost: at most
``d * branching`` hashes per level for d differences, ``depth + 3`` messages, plus the keys of
the differing leaves - O(d log N), never O(N). Every node answers these messages, even one
whose own timer is off (interval_ms = 0). Large steps are split into several messages of at
most `max_message_bytes`; entries beyond the per-second byte budget are deferred (and
counted) to the next round.
"""
from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .config import AntiEntropySection
from .context import StrategyContext
from .limits import entry_size
from .messages import Entry, Envelope
from .strategies import Strategy
from .timers import Timer

Ctx = StrategyContext
#: a Merkle node hash or entry identity (an unsigned 64-bit integer when honest)
Hash = Annotated[int, msgspec.Meta(ge=0)]   # compared, never stored or re-encoded
Index = Annotated[int, msgspec.Meta(ge=0, le=(1 << 32))]

HASH_BYTES = 22      # a 64-bit int in JSON plus separators, for splitting big steps
KEY_OVERHEAD = 24    # per (key, identity) pair besides the key itself


class MerkleSync(msgspec.Struct, frozen=True):
    """My hashes of these tree nodes at `level`; compare and descend where they differ."""

    shape: tuple[Index, Index]   # (branching, depth): both sides must build the same tree
    level: Index
    nodes: list[Index]
    hashes: list[Hash]


class MerkleKeys(msgspec.Struct, frozen=True):
    """Every (key, entry identity) I hold in these differing leaf buckets."""

    buckets: list[Index]
    keys: list[str]
    ids: list[Hash]


class MerkleEntries(msgspec.Struct, frozen=True):
    """My versions of keys that differ, and the keys whose versions I want from you."""

    entries: list[Entry]
    want: list[str]


class AntiEntropy(Strategy):
    """Kernel-owned periodic Merkle repair; added to every node beside its five strategies."""

    concern: ClassVar[str] = "anti_entropy"
    message_types: ClassVar[dict[str, type[msgspec.Struct]]] = {
        "merkle_sync": MerkleSync, "merkle_keys": MerkleKeys, "merkle_entries": MerkleEntries}

    def __init__(self, options: AntiEntropySection) -> None:
        self.interval = options.interval_ms / 1000
        self.shape = (options.branching, options.depth)

    def start(self, ctx: Ctx) -> None:
        if self.interval > 0:
            ctx.schedule(self.concern, "round", ctx.round_delay(self.interval, first=True))

    def on_timer(self, ctx: Ctx, timer: Timer) -> None:
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval))
        peers = ctx.select_peers(1)
        if not peers:
            return
        peer = peers[0]
        tree = ctx.store.merkle
        theirs = ctx.peer_roots.get(peer)
        if theirs == ctx.store.checksum():
            ctx.count("ae_skipped_equal")
            return
        ctx.count("ae_rounds")
        member = ctx.members.get(peer)
        if member is None:
            return
        if theirs is None:   # never heard its root: start at the root itself
            self._send_sync(ctx, member.addr, 0, {0: tree.root})
        else:
            self._send_sync(ctx, member.addr, 1, tree.child_hashes(0, [0]))

    def on_message(self, ctx: Ctx, env: Envelope) -> None:
        body = env.body
        if isinstance(body, MerkleSync):
            self._on_sync(ctx, env, body)
        elif isinstance(body, MerkleKeys):
            self._on_keys(ctx, env, body)
        elif isinstance(body, MerkleEntries):
            self._on_entries(ctx, env, body)

    # -- the descent -----------------------------------------------------------------------
    def _on_sync(self, ctx: Ctx, env: Envelope, body: MerkleSync) -> None:
        tree = ctx.store.merkle
        if tuple(body.shape) != self.shape:
            ctx.drop("merkle_shape", f"{env.src} uses a {body.shape} tree, this node {self.shape}")
            return
        # the level is checked before it is used as an exponent: 16 ** 2**63 never finishes
        if not 0 <= body.level <= tree.depth or len(body.nodes) != len(body.hashes) or any(
                not 0 <= i < tree.branching ** body.level for i in body.nodes):
            ctx.drop("merkle_range", f"bad merkle_sync from {env.src} at level {body.level}")
            return
        ctx.count("ae_hashes_in", len(body.hashes))
        differing = tree.differing(body.level, dict(zip(body.nodes, body.hashes, strict=True)))
        if not differing:
            ctx.count("ae_agreed")
            return
        if body.level < tree.depth:
            self._send_sync(ctx, env.addr, body.level + 1, tree.child_hashes(body.level, differing))
        else:
            self._send_keys(ctx, env.addr, differing)

    def _on_keys(self, ctx: Ctx, env: Envelope, body: MerkleKeys) -> None:
        tree = ctx.store.merkle
        if len(body.keys) != len(body.ids) or any(not 0 <= b < tree.leaves for b in body.buckets):
            ctx.drop("merkle_range", f"bad merkle_keys from {env.src}")
            return
        theirs = dict(zip(body.keys, body.ids, strict=True))
        ctx.count("ae_keys_in", len(theirs))
        mine: dict[str, int] = {}
        for bucket in body.buckets:
            mine.update(tree.bucket(bucket))
        send = [k for k, h in mine.items() if theirs.get(k) != h]
        want = [k for k, h in theirs.items() if mine.get(k) != h]
        self._send_entries(ctx, env.addr, send, want)

    def _on_entries(self, ctx: Ctx, env: Envelope, body: MerkleEntries) -> None:
        repaired = sum(ctx.apply_entry(entry) for entry in body.entries)
        ctx.count("ae_entries_in", len(body.entries))
        ctx.count("ae_repaired", repaired)
        if body.want:
            self._send_entries(ctx, env.addr, [k for k in body.want if ctx.store.get(k) is not None], [])

    # -- sending, split to fit max_message_bytes ---------------------------------------------
    def _send_sync(self, ctx: Ctx, address: str, level: int, hashes: dict[int, int]) -> None:
        per_message = max(1, ctx.gossip.max_message_bytes // (2 * HASH_BYTES))
        items = list(hashes.items())
        for start in range(0, len(items), per_message):
            chunk = items[start:start + per_message]
            ctx.count("ae_hashes_out", len(chunk))
            ctx.send_to_address(address, "merkle_sync", MerkleSync(
                self.shape, level, [i for i, _ in chunk], [h for _, h in chunk]))

    def _send_keys(self, ctx: Ctx, address: str, buckets: list[int]) -> None:
        tree = ctx.store.merkle
        budget = ctx.gossip.max_message_bytes
        chunk: list[int] = []
        used = 0
        for bucket in buckets:
            cost = 8 + sum(len(k) + KEY_OVERHEAD for k in tree.bucket_keys(bucket))
            if chunk and used + cost > budget:
                self._flush_keys(ctx, address, chunk)
                chunk, used = [], 0
            chunk.append(bucket)
            used += cost
        if chunk:
            self._flush_keys(ctx, address, chunk)

    def _flush_keys(self, ctx: Ctx, address: str, buckets: list[int]) -> None:
        tree = ctx.store.merkle
        pairs = [(k, h) for b in buckets for k, h in tree.bucket(b).items()]
        ctx.count("ae_keys_out", len(pairs))
        ctx.send_to_address(address, "merkle_keys", MerkleKeys(buckets, [k for k, _ in pairs],
                                                                [h for _, h in pairs]))

    def _send_entries(self, ctx: Ctx, address: str, keys: list[str], want: list[str]) -> None:
        """Send our versions of `keys` in messages of at most max_message_bytes, within the
        per-second budget; what the budget cannot carry now is counted and left to a later round."""
        allowance = ctx.payload_allowance()
        budget = ctx.gossip.max_message_bytes
        batch: list[Entry] = []
        used = spent = deferred = sent = 0
        # every version kept for the key (multi-value and CRDT keys may keep several)
        for entry in (v for key in keys for v in ctx.store.versions(key)):
            size = entry_size(entry)
            if spent + size > allowance and (spent or allowance <= 0):
                deferred += size
                continue
            if batch and used + size > budget:
                ctx.send_to_address(address, "merkle_entries", MerkleEntries(batch, []))
                batch, used = [], 0
            batch.append(entry)
            used += size
            spent += size
            sent += 1
        if batch or want:
            ctx.send_to_address(address, "merkle_entries", MerkleEntries(batch, want))
        ctx.spend_payload(spent)
        ctx.count("ae_entries_out", sent)
        if deferred:
            ctx.count("deferred_bytes", deferred)
            ctx.count("ae_deferred_bytes", deferred)

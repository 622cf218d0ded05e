"""Merkle tree: incremental upkeep, exact diffs, and O(d log N) repair cost over the wire."""
import random

import pytest

from gossipmq.core.merkle import MerkleTree
from gossipmq.core.messages import Entry
from gossipmq.core.store import Store
from gossipmq.core.strategies import NoOptions
from gossipmq.plugins.conflict_resolution import LastWriterWins

from .sim_helpers import simulation

LWW = LastWriterWins(NoOptions())


def filled(n: int, origin: str = "w") -> tuple[Store, list[Entry]]:
    store = Store(LWW)
    entries = [store.write(f"key-{i}", i, False, origin, i + 1, (i + 1) << 16) for i in range(n)]
    return store, entries


def replica(entries: list[Entry]) -> Store:
    store = Store(LWW)
    for entry in entries:
        store.apply(entry)
    return store


def test_root_is_the_store_checksum_through_writes_deletes_and_merges():
    store, _ = filled(300)
    assert f"{store.merkle.root:016x}" == store.checksum()
    store.write("key-7", None, True, "w", 1000, 1000 << 16)           # tombstone
    store.apply(Entry("key-8", "x", False, "v", 5, 2000 << 16, {"v": 5}))  # remote winner
    assert f"{store.merkle.root:016x}" == store.checksum()
    rebuilt = MerkleTree(identity=store.key_identity)
    for key, entry in store.items():
        from gossipmq.core.store import entry_hash
        rebuilt.flip(key, entry_hash(entry), present=True)
    assert rebuilt.levels == store.merkle.levels


def test_flip_back_and_forth_leaves_no_residue():
    tree = MerkleTree(4, 3)
    tree.flip("a", 12345, present=True)          # absent -> 12345
    tree.flip("a", 12345 ^ 999, present=True)    # 12345 -> 999
    tree.flip("a", 999, present=False)           # 999 -> absent
    assert tree.root == 0 and all(not level for level in tree.levels) and not tree.buckets


def test_inner_nodes_applied_lazily_read_the_same_as_computed_from_the_leaves():
    """Flips reach the inner levels on the first read after them (batched per delta): whatever
    the interleaving of flips and reads, every level equals the XOR of its leaves' identities."""
    rng = random.Random(4)
    tree = MerkleTree(4, 3)
    held: dict[str, int] = {}
    for step in range(2000):
        key = f"k{rng.randrange(300)}"
        new = rng.choice([0, rng.getrandbits(64)])
        old = held.pop(key, 0)
        if new:
            held[key] = new
        tree.flip(key, old ^ new, present=bool(new))
        if step % rng.choice([1, 7, 64]) == 0:
            expected: list[dict[int, int]] = [{} for _ in range(tree.depth + 1)]
            for k, identity in held.items():
                index = tree.bucket_of(k)
                for level in range(tree.depth, -1, -1):
                    expected[level][index] = expected[level].get(index, 0) ^ identity
                    index //= tree.branching
            assert tree.levels == [{i: h for i, h in level.items() if h} for level in expected]
            root = 0
            for identity in held.values():
                root ^= identity
            assert tree.root == root


@pytest.mark.parametrize("d", [0, 1, 7, 60])
def test_diff_finds_exactly_the_differing_keys(d):
    a, entries = filled(5000)
    b = replica(entries)
    rng = random.Random(d)
    expected = set()
    for j, i in enumerate(rng.sample(range(5000), d)):
        key = f"key-{i}"
        expected.add(key)
        kind = j % 3
        if kind == 0:
            b.write(key, "changed", False, "z", 10_000 + j, (10_000 + j) << 16)   # newer value on b
        elif kind == 1:
            a.write(key, None, True, "w", 20_000 + j, (20_000 + j) << 16)         # delete on a only
        else:
            b.write(f"only-b-{j}", j, False, "z", 30_000 + j, (30_000 + j) << 16)  # key a never saw
            expected.discard(key)
            expected.add(f"only-b-{j}")
    keys, compared = a.merkle.diff(b.merkle)
    assert keys == expected
    tree = a.merkle
    assert compared <= 1 + d * tree.branching * tree.depth


def _two_nodes_with(n_keys: int, d: int):
    """Two rumor nodes (no digest sync) whose stores share n_keys and differ in d."""
    sim = simulation({"strategy": "rumor", "interval_ms": 1000}, anti_entropy={"interval_ms": 1000},
                     nodes=2, rounds=1, seed=1)
    a, b = sim.nodes["sim://n0"], sim.nodes["sim://n1"]
    entries = [a.store.write(f"key-{i}", i, False, "w", i + 1, i + 1) for i in range(n_keys)]
    for entry in entries:
        b.store.apply(entry)
    for j in range(d):
        b.store.write(f"key-{j * 7919 % n_keys}", "new", False, "n1", 10**6 + j, 10**6 + j)   # newer by HLC
    b.strategies["anti_entropy"].on_timer = lambda ctx, timer: None   # one exchange, started by a
    return sim, a, b


@pytest.mark.parametrize("d", [1, 10])
def test_anti_entropy_cost_is_d_log_n_not_n(d):
    n_keys = 20_000
    sim, a, b = _two_nodes_with(n_keys, d)
    sent: dict[str, int] = {}
    sim.net.on_send = lambda src, send: sent.__setitem__(send.envelope.type, sent.get(send.envelope.type, 0) + 1)
    assert a.store.checksum() != b.store.checksum()
    assert sim.net.wait_for(lambda: a.store.checksum() == b.store.checksum(), timeout=3.0)
    tree = a.store.merkle
    hashes = a.stats["ae_hashes_out"] + b.stats["ae_hashes_out"]
    keys = a.stats["ae_keys_out"] + b.stats["ae_keys_out"]
    # Descent: at most d differing nodes per level, each expanded into `branching` children.
    assert hashes <= 1 + d * tree.branching * tree.depth
    # Leaves hold about n_keys / leaves keys each; only the differing leaves are listed.
    assert keys <= d * 4 * (n_keys // tree.leaves + 1)
    assert sent.get("merkle_sync", 0) <= tree.depth + 1
    assert sent.get("merkle_keys", 0) == 1 and sent.get("merkle_entries", 0) <= 2
    assert a.stats["ae_repaired"] == d and b.stats["ae_repaired"] == 0   # b held the newer versions


def test_malformed_merkle_messages_are_dropped_and_counted():
    from gossipmq.core.anti_entropy import MerkleKeys, MerkleSync
    from gossipmq.core.effects import Dropped
    from gossipmq.core.messages import Envelope

    sim = simulation({"strategy": "rumor"}, anti_entropy={"interval_ms": 1000, "depth": 3}, nodes=2, rounds=1)
    a = sim.nodes["sim://n0"]
    bodies = [("merkle_sync", MerkleSync((16, 4), 0, [0], [1])),          # another tree shape
              ("merkle_sync", MerkleSync((16, 3), -1, [0], [1])),         # no such level
              ("merkle_sync", MerkleSync((16, 3), 9, [0], [1])),
              ("merkle_sync", MerkleSync((16, 3), 1, [99], [1])),         # no such node
              ("merkle_sync", MerkleSync((16, 3), 1, [0, 1], [1])),       # lengths differ
              ("merkle_keys", MerkleKeys([1 << 40], ["k"], [1]))]
    for kind, body in bodies:
        effects = a.handle_message(0.1, Envelope(type=kind, src="n1", addr="sim://n1", inc=1, body=body))
        assert any(isinstance(e, Dropped) for e in effects)
    assert a.stats["dropped.merkle_shape"] == 1 and a.stats["dropped.merkle_range"] == 5


def test_a_leaf_keeps_its_keys_exactly_as_it_grows_past_small_and_shrinks_back():
    """Leaves hold a tuple of keys while small and a set beyond SMALL_BUCKET: listing a leaf
    gives exactly the keys present, with the identities the store reports, at every size."""
    from gossipmq.core.merkle import SMALL_BUCKET
    ids: dict[str, int] = {}
    tree = MerkleTree(2, 1, identity=ids.__getitem__)
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(4 * SMALL_BUCKET)]
    for key in keys + rng.sample(keys, len(keys)):
        if key in ids:
            tree.flip(key, ids.pop(key), present=False)
        else:
            ids[key] = rng.getrandbits(64) | 1
            tree.flip(key, ids[key], present=True)
        tree.flip(key, 0, present=key in ids)   # a flip that changes nothing changes nothing
        listed = {k: h for leaf in range(tree.leaves) for k, h in tree.bucket(leaf).items()}
        assert listed == ids
    assert not tree.buckets and tree.root == 0

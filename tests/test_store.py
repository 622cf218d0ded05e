from __future__ import annotations

import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gossipmq.core.messages import Entry
from gossipmq.core.store import Store
from gossipmq.core.strategies import NoOptions
from gossipmq.plugins.conflict_resolution import LastWriterWins

lww = LastWriterWins(NoOptions())


def sync(a: Store, b: Store, budget: int = 1 << 20) -> int:
    """Bring b up to date from a (one delta); returns entries sent."""
    entries, coverage, _ = a.delta_for(b.digest(), budget)
    for e in entries:
        b.apply(e)
    b.adopt_coverage(coverage)
    return len(entries)


def test_write_get_delete_and_checksum_equality() -> None:
    a, b = Store(lww), Store(lww)
    a.write("k", 1, False, "a", 1, 10)
    a.write("j", 2, False, "a", 2, 11)
    a.write("k", None, True, "a", 3, 12)
    assert a.get("k").deleted and a.live_keys == 1
    assert a.checksum() != b.checksum()
    assert sync(a, b) == 2   # the superseded first write of k is not sent
    assert b.checksum() == a.checksum() and b.digest() == {"a": 3}
    assert sync(a, b) == 0 and not a.lags(b.digest())


def test_budget_sends_oldest_first_and_continues_next_round() -> None:
    a, b = Store(lww), Store(lww)
    for i in range(1, 101):
        a.write(f"k{i:03}", "x" * 100, False, "a", i, i)
    entries, coverage, deferred = a.delta_for(b.digest(), budget=1500)
    assert 0 < len(entries) < 100 and deferred > 0
    assert [e.counter for e in entries] == list(range(1, len(entries) + 1))
    assert coverage == {"a": len(entries)}  # coverage stops just below the first entry left out
    rounds = 0
    while a.lags(b.digest()):
        sync(a, b, budget=1500)
        rounds += 1
        assert rounds < 50
    assert b.checksum() == a.checksum() and rounds > 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 14)), min_size=8, max_size=120),
       st.lists(st.integers(0, 6), min_size=4, max_size=4), st.integers(60, 3000))
def test_a_delta_is_the_oldest_missing_versions_across_origins_cut_at_the_budget(  # type: ignore[no-untyped-def]
        writes, marks, budget: int) -> None:
    """Whatever the runs of each origin, a delta is exactly the prefix (by HLC) of every kept
    version the peer lacks that fits the budget, and coverage stops below what was left out."""
    from gossipmq.core.limits import entry_size
    store = Store(lww)
    counters = [0, 0, 0, 0]
    for t, (who, key) in enumerate(writes, start=1):   # distinct HLCs; overwrites drop versions
        counters[who] += 1
        store.write(f"k{key}", "v" * (t % 7 * 10), False, f"o{who}", counters[who], t)
    peer = {f"o{i}": mark for i, mark in enumerate(marks) if mark}
    entries, coverage, deferred = store.delta_for(peer, budget)
    missing = sorted((e for e in store.all_versions() if e.counter > peer.get(e.origin, 0)), key=lambda e: e.hlc)
    event("origins in the delta: %d" % len({e.origin for e in entries}))
    assert entries == missing[:len(entries)]
    sizes = [entry_size(e) for e in missing]
    if len(entries) < len(missing):
        assert entries and sum(sizes[:len(entries) + 1]) > budget   # the next one did not fit
        assert deferred > 0
    else:
        assert sum(sizes) <= budget or len(entries) == 1
    for origin, mark in coverage.items():
        assert mark > peer.get(origin, 0)
        assert all(e.counter > mark for e in missing[len(entries):] if e.origin == origin)


def test_concurrent_writes_resolve_to_the_same_winner_in_any_order() -> None:
    x = Entry("k", "from-a", False, "a", 1, 100 << 16, {"a": 1})
    y = Entry("k", "from-b", False, "b", 1, 100 << 16, {"b": 1})  # same HLC: origin id breaks the tie
    s1, s2 = Store(lww), Store(lww)
    s1.apply(x), s1.apply(y)
    s2.apply(y), s2.apply(x)
    assert s1.get("k") == s2.get("k") == y
    assert s1.checksum() == s2.checksum()


def test_coverage_of_superseded_dots_lets_watermarks_advance() -> None:
    a, b, c = Store(lww), Store(lww), Store(lww)
    a.write("k", 1, False, "a", 1, 10)
    sync(a, b)
    b.write("k", 2, False, "b", 1, 20)       # b overwrites a's write
    sync(b, c)                                # c never sees ("a", 1) but is covered for it
    assert c.digest() == {"a": 1, "b": 1} and c.get("k").value == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from("abcde"), st.integers(0, 9), st.booleans()),
                min_size=1, max_size=40), st.integers(0, 1000))
def test_random_writes_and_random_pairwise_syncs_converge(ops, seed: int) -> None:  # type: ignore[no-untyped-def]
    stores = [Store(lww) for _ in range(3)]
    counters = [0, 0, 0]
    rng = random.Random(seed)
    for t, (who, key, value, delete) in enumerate(ops):
        counters[who] += 1
        stores[who].write(key, value, delete, f"n{who}", counters[who], t)
        if rng.random() < 0.4:
            i, j = rng.sample(range(3), 2)
            sync(stores[i], stores[j], budget=rng.choice([200, 1 << 20]))
    for _ in range(40):
        for i in range(3):
            for j in range(3):
                if i != j:
                    sync(stores[i], stores[j], budget=300)
    assert len({s.checksum() for s in stores}) == 1
    contents = [{key: store.versions(key) for key in store.keys()} for store in stores]
    assert contents[0] == contents[1] == contents[2]


def test_superseded_versions_are_freed_not_kept_by_the_origin_index() -> None:
    """Each origin's index of kept versions drops the superseded ones lazily: overwriting every
    key from another origin, or one key many times, must not keep the old versions alive."""
    import gc
    import tracemalloc
    store = Store(lww)
    keys = 3000
    gc.collect()
    tracemalloc.start()   # one session: blocks allocated before it would not count when freed
    try:
        for i in range(keys):
            store.write(f"k{i}", f"{i:050d}", False, "a", i + 1, i + 1)
        filled = tracemalloc.get_traced_memory()[0]
        for i in range(keys):
            store.write(f"k{i}", f"{i:050d}", False, "b", i + 1, 10 ** 6 + i)
        for n in range(keys):   # one key, overwritten over and over by its own origin
            store.write("k0", n, False, "b", keys + n + 1, 2 * 10 ** 6 + n)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - filled
    finally:
        tracemalloc.stop()
    assert len(store) == keys and store.live_keys == keys
    # the new versions carry a two-origin context (a dict) where the first carried only their own
    # dot (an OwnDot): that grows each key by ~140-300 B; kept old versions would add `filled` again
    assert grown < filled * 3 / 4, f"overwriting {keys} keys grew the store by {grown} B (it took {filled} B to fill)"
    assert store.entries_above("a", 0) == [] and not store.lags({"a": keys, "b": 2 * keys})
    entries, coverage, _ = store.delta_for({}, 1 << 30)
    assert len(entries) == keys and {e.origin for e in entries} == {"b"} and coverage == {"a": keys, "b": 2 * keys}


def test_a_merkle_leaf_lists_each_key_with_the_identity_of_its_versions() -> None:
    from gossipmq.core.store import entry_hash
    store = Store(lww)
    for i in range(200):
        store.write(f"k{i}", i, False, "a", i + 1, i + 1)
    store.write("k3", None, True, "a", 201, 201)
    tree = store.merkle
    listed = {k: h for b in range(tree.leaves) for k, h in tree.bucket(b).items()}
    assert listed == {key: entry_hash(entry) for key, entry in store.items()}
    assert store.key_identity("absent") == 0 and not store.is_live("k3") and store.live_keys == 199


def test_a_version_whose_context_is_its_own_dot_keeps_a_compact_one_that_reads_and_encodes_the_same() -> None:
    """A kept version with context {origin: counter} holds an OwnDot (48 B, not a 184 B dict):
    readers see the same mapping, and frames, SQLite rows and signed payloads are byte-identical."""
    import sys

    import msgspec

    from gossipmq.core.clock import OwnDot, encode_hook, vv_dominates, vv_merge
    from gossipmq.core.limits import entry_size
    from gossipmq.core.signing import entry_payload
    from gossipmq.transports.storage import _decode as row_decode
    from gossipmq.transports.storage import _encode as row_encode

    store = Store(lww)
    local = store.write("k", "v", False, "a/1", 5, 100)
    received = msgspec.json.decode(msgspec.json.encode(Entry("j", [1], False, "b/1", 7, 90, {"b/1": 7})), type=Entry)
    wider = msgspec.json.decode(msgspec.json.encode(Entry("i", 1, False, "b/1", 8, 91, {"a/1": 5, "b/1": 8})),
                                type=Entry)
    assert store.apply(received) is received and store.apply(wider) is wider
    for entry, vv in ((local, {"a/1": 5}), (received, {"b/1": 7})):
        assert isinstance(entry.vv, OwnDot) and sys.getsizeof(entry.vv) < sys.getsizeof(vv)
        assert entry.vv == vv and vv == entry.vv and dict(entry.vv) == vv and {**entry.vv} == vv
        assert entry.vv.get("x", 0) == 0 and "x" not in entry.vv and list(entry.vv.items()) == list(vv.items())
        plain = msgspec.structs.replace(entry, vv=vv)
        assert msgspec.json.encode(plain) == msgspec.json.Encoder(enc_hook=encode_hook).encode(entry)
        assert entry_size(entry) == entry_size(plain) and entry_payload(entry) == entry_payload(plain)
        assert row_decode(row_encode(entry)) == plain and type(row_decode(row_encode(entry)).vv) is dict
    assert type(wider.vv) is dict and wider.vv == {"a/1": 5, "b/1": 8}
    assert vv_dominates(wider.vv, local.vv) and not vv_dominates(local.vv, wider.vv)
    assert vv_merge(local.vv, received.vv) == {"a/1": 5, "b/1": 7}
    assert store.holds(Entry("i", 0, False, "a/1", 5, 50, {"a/1": 5}))   # covered by wider

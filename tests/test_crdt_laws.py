"""Merge laws of every state type and resolver: join is commutative, associative and
idempotent on reachable states; `leq` is its order; the store keeps the same versions and reads
the same value whatever order (and however often) versions arrive."""
from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipmq.core.crdt import TYPES, CrdtType, MVRegister, ORMap, vv_join, vv_leq
from gossipmq.core.messages import Entry
from gossipmq.core.resolution import Op, PrefixRouter, WriteContext
from gossipmq.core.store import Store
from gossipmq.plugins.crdt import Crdt, CrdtOptions
from gossipmq.plugins.multi_value import MultiValue, MultiValueOptions

NODES = ["a", "b", "c"]
Pair = tuple[Any, dict[str, int]]


def make(name: str) -> CrdtType:
    cls = TYPES[name]
    return cls(4) if cls in (MVRegister, ORMap) else cls()  # type: ignore[call-arg]


def random_op(t: CrdtType, rng: random.Random) -> tuple[str, Any, str | None]:
    verb = rng.choice(sorted(t.verbs))
    field = rng.choice(["f", "g"]) if t.name == "ormap" else None
    if verb == "incr":
        arg: Any = rng.randint(0, 5) if t.name == "gcounter" else rng.randint(-5, 5)
    elif verb in ("sadd", "srem"):
        arg = rng.choice("xyz")
    else:
        arg = rng.randint(0, 9)
    return verb, arg, field


def reachable(name: str, seed: int, steps: int) -> list[Pair]:
    """States that replicas actually reach: random ops and random pairwise merges."""
    t, rng = make(name), random.Random(seed)
    replicas: dict[str, Pair] = {n: (t.empty(), {}) for n in NODES}
    counters = dict.fromkeys(NODES, 0)
    seen: list[Pair] = [(t.empty(), {})]
    for _ in range(steps):
        n = rng.choice(NODES)
        state, cc = replicas[n]
        if rng.random() < 0.35:
            m = rng.choice(NODES)
            state, cc = join(t, replicas[n], replicas[m])
        else:
            counters[n] += 1
            verb, arg, field = random_op(t, rng)
            dot = (n, counters[n])
            kw = {"field": field} if t.name == "ormap" else {}
            state = t.apply(state, verb, arg, dot, counters[n], f"{n}/1", None, **kw)  # type: ignore[call-arg]
            cc = {**cc, n: counters[n]}
        replicas[n] = (state, cc)
        seen.append((state, cc))
    return seen


def join(t: CrdtType, x: Pair, y: Pair) -> Pair:
    return t.join(x[0], y[0], x[1], y[1]), vv_join(x[1], y[1])


@pytest.mark.parametrize("name", sorted(TYPES))
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1 << 30), picks=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                                                     st.integers(0, 10**6)))
def test_join_is_commutative_associative_idempotent(name: str, seed: int, picks: tuple[int, int, int]) -> None:
    t = make(name)
    states = reachable(name, seed, 25)
    x, y, z = (states[p % len(states)] for p in picks)
    assert join(t, x, y) == join(t, y, x)
    assert join(t, join(t, x, y), z) == join(t, x, join(t, y, z))
    assert join(t, x, x) == x
    xy = join(t, x, y)
    assert t.leq(x[0], xy[0], x[1], xy[1]) and t.leq(y[0], xy[0], y[1], xy[1])
    assert vv_leq(x[1], xy[1])


# ---- resolver level: the store ------------------------------------------------------------------
def resolvers() -> dict[str, Any]:
    return {"mv": MultiValue(MultiValueOptions(max_siblings=1000)),
            **{f"crdt:{n}": Crdt(CrdtOptions(type=n)) for n in sorted(TYPES)}}  # type: ignore[arg-type]


def versions_from(resolver: Any, seed: int, steps: int) -> list[Entry]:
    """Entries written by three replicas that exchange some versions: realistic concurrency."""
    rng = random.Random(seed)
    router = PrefixRouter(resolver)
    stores = {n: Store(router) for n in NODES}
    written: list[Entry] = []
    counters = dict.fromkeys(NODES, 0)
    for step in range(steps):
        n = rng.choice(NODES)
        if written and rng.random() < 0.4:
            stores[n].apply(rng.choice(written))
            continue
        verb, arg, field = random_op(resolver.crdt, rng)
        if verb not in resolver.verbs:
            verb = sorted(resolver.verbs)[0]
        counters[n] += 1
        wc = WriteContext(n, counters[n], step + 1, f"{n}/1")
        try:
            value, deleted, vv = resolver.build("k", stores[n].versions("k"), Op(verb, arg, None, field), wc)
        except ValueError:
            counters[n] -= 1
            continue
        written.append(stores[n].write("k", value, deleted, n, counters[n], step + 1, vv=vv, kind=resolver.kind))
    return written


@pytest.mark.parametrize("kind", sorted(resolvers()))
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1 << 30), order=st.randoms(use_true_random=False))
def test_store_keeps_and_reads_the_same_in_any_order_and_multiplicity(kind: str, seed: int, order: random.Random) -> None:
    resolver = resolvers()[kind]
    entries = versions_from(resolver, seed, 20)
    router = PrefixRouter(resolver)
    ref, other = Store(router), Store(router)
    for e in entries:
        ref.apply(e)
    shuffled = entries + order.sample(entries, k=len(entries) // 2)   # duplicates too
    order.shuffle(shuffled)
    for e in shuffled:
        other.apply(e)
    assert ref.checksum() == other.checksum()
    assert ref.versions("k") == other.versions("k")
    if entries:
        assert resolver.read("k", ref.versions("k")).value == resolver.read("k", other.versions("k")).value


def test_covers_is_a_preorder_on_written_versions() -> None:
    """Reflexive and transitive: the condition under which the kept set is order-free."""
    for kind, resolver in resolvers().items():
        entries = versions_from(resolver, 11, 25)
        for a in entries:
            assert resolver.covers(a, a), kind
            for b in entries:
                if resolver.covers(a, b):
                    for c in entries:
                        if resolver.covers(b, c):
                            assert resolver.covers(a, c), (kind, a.dot, b.dot, c.dot)

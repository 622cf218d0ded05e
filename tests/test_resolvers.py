"""Resolver semantics on a small in-memory cluster: siblings and contexts, the sibling bound,
add-wins sets, counters with observed reset, maps, per-prefix rules and their config errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gossipmq.core.config import load_config
from gossipmq.core.errors import ConfigError
from gossipmq.core.messages import Entry, origin_node
from gossipmq.core.resolution import Op, context_of, decode_context, encode_context
from gossipmq.transports.memory import checksums
from tests.helpers import memory_cluster, registry

RULES = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "mv/", "resolver": "multi_value", "max_siblings": 3},
    {"prefix": "g/", "resolver": "crdt", "type": "gcounter"},
    {"prefix": "c/", "resolver": "crdt", "type": "pncounter"},
    {"prefix": "s/", "resolver": "crdt", "type": "orset"},
    {"prefix": "r/", "resolver": "crdt", "type": "lwwreg"},
    {"prefix": "v/", "resolver": "crdt", "type": "mvreg"},
    {"prefix": "m/", "resolver": "crdt", "type": "ormap"},
]}}


class Cluster:
    def __init__(self, n: int = 3) -> None:
        self.net, self.addrs = memory_cluster(n, RULES)

    def node(self, i: int) -> Any:
        return self.net.nodes[self.addrs[i]]

    def do(self, i: int, key: str, verb: str, value: Any = None, **kw: Any) -> Entry:
        entry, effects = self.node(i).mutate(self.net.now, key, Op(verb, value, **kw))
        self.net._apply(self.addrs[i], effects)
        return entry

    def split(self) -> None:
        """Every node alone: what each does next is concurrent with the others."""
        self.net.partition(*[[a] for a in self.addrs])

    def heal(self) -> None:
        self.net.heal()
        assert self.net.wait_for(lambda: len(set(checksums(self.net).values())) == 1, 10.0)

    def read(self, key: str) -> Any:
        reads = [self.node(i).read(key) for i in range(len(self.addrs))]
        values = [r.value if r is not None else None for r in reads]
        assert all(v == values[0] for v in values), values
        return reads[0]


def test_concurrent_puts_become_siblings_and_a_put_with_the_context_resolves_them() -> None:
    c = Cluster()
    c.do(0, "mv/k", "put", "base")
    c.heal()
    c.split()
    c.do(0, "mv/k", "put", "a")
    c.do(1, "mv/k", "put", "b")
    c.heal()
    read = c.read("mv/k")
    assert sorted(read.value) == ["a", "b"] and len(read.siblings) == 2
    stale = c.node(2).read("mv/k")
    c.split()
    c.do(2, "mv/k", "put", "merged", context=read.context)   # resolves exactly a and b
    c.do(0, "mv/k", "put", "late")                            # concurrent: not seen by the merge
    c.heal()
    assert sorted(c.read("mv/k").value) == ["late", "merged"]
    c.do(1, "mv/k", "put", "final", context=stale.context)  # an old context cannot erase unseen writes
    c.heal()
    assert sorted(c.read("mv/k").value) == ["final", "late", "merged"]
    c.do(1, "mv/k", "delete", context=c.read("mv/k").context)
    c.heal()
    assert c.read("mv/k").deleted and c.node(0).store.is_live("mv/k") is False


def test_siblings_beyond_max_siblings_are_resolved_by_lww_and_counted() -> None:
    c = Cluster(5)
    c.split()
    for i in range(5):
        c.do(i, "mv/k", "put", f"v{i}")
    c.heal()
    read = c.read("mv/k")
    assert len(read.value) == 3 and read.value == ["v4", "v3", "v2"]   # newest HLCs win
    assert sum(c.node(i).router.totals().get("siblings_overflow", 0) for i in range(5)) > 0
    c.do(0, "mv/k", "put", "x")       # a write keeps the bound too: its state holds 1 sibling
    c.heal()
    assert c.read("mv/k").value == ["x"]


def test_orset_add_wins_over_a_concurrent_remove_and_removes_what_it_saw() -> None:
    c = Cluster()
    c.do(0, "s/k", "sadd", "x")
    c.do(0, "s/k", "sadd", "y")
    c.heal()
    c.split()
    c.do(1, "s/k", "srem", "x")       # saw x's add
    c.do(2, "s/k", "sadd", "x")       # concurrent re-add: wins
    c.do(2, "s/k", "srem", "y")
    c.heal()
    assert c.read("s/k").value == ["x"]
    c.do(1, "s/k", "srem", "x")
    c.heal()
    assert c.read("s/k").value == [] and c.read("s/k").deleted
    assert all(c.node(i).store.versions("s/k")[0].value == {"e": {}} for i in range(3))   # no tags kept


def test_counters_sum_every_increment_and_reset_keeps_unseen_ones() -> None:
    c = Cluster()
    c.split()
    c.do(0, "c/k", "incr", 5)
    c.do(1, "c/k", "incr", -2)
    c.do(2, "c/k", "incr", 10)
    c.do(0, "g/k", "incr", 3)
    c.do(1, "g/k", "incr", 4)
    with pytest.raises(ValueError, match="only grows"):
        c.do(2, "g/k", "incr", -1)
    c.heal()
    assert c.read("c/k").value == 13 and c.read("g/k").value == 7
    c.split()
    c.do(0, "c/k", "delete")          # resets what n0 has seen (13)
    c.do(1, "c/k", "incr", 100)       # concurrent: survives the reset
    c.heal()
    assert c.read("c/k").value == 100


def test_registers_and_maps() -> None:
    c = Cluster()
    c.split()
    c.do(0, "r/k", "put", "old")
    c.do(1, "r/k", "put", "new")
    c.do(0, "v/k", "put", 1)
    c.do(1, "v/k", "put", 2)
    c.do(0, "m/k", "incr", 2, field="hits")
    c.do(1, "m/k", "incr", 3, field="hits")
    c.do(1, "m/k", "sadd", "red", field="tags")
    c.do(2, "m/k", "put", "alice", field="owner")
    c.heal()
    assert c.read("r/k").value == "new" and sorted(c.read("v/k").value) == [1, 2]
    assert c.read("m/k").value == {"hits": 5, "tags": ["red"], "owner": "alice"}
    c.split()
    c.do(0, "m/k", "delete", field="hits")     # reset of what n0 saw
    c.do(1, "m/k", "incr", 1, field="hits")    # concurrent update keeps the field
    c.do(2, "m/k", "delete", field="owner")
    c.heal()
    assert c.read("m/k").value == {"hits": 1, "tags": ["red"]}
    with pytest.raises(ValueError, match="needs a field"):
        c.do(0, "m/k", "incr", 1)


def test_verbs_a_resolver_does_not_know_are_refused_without_using_a_dot() -> None:
    c = Cluster()
    before = c.node(0).replication.counter
    with pytest.raises(ValueError, match="sadd is not possible on a lww key"):
        c.do(0, "plain", "sadd", "x")
    with pytest.raises(ValueError, match="incr is not possible on a crdt:orset key"):
        c.do(0, "s/k", "incr", 1)
    assert c.node(0).replication.counter == before


def test_mismatched_or_malformed_entries_are_dropped_and_counted() -> None:
    c = Cluster()
    n = c.node(0)
    assert n.replication.apply_entry(Entry("s/k", "not a set", False, "zz", 1, 1, {"zz": 1}, kind="crdt:orset")) is False
    assert n.replication.apply_entry(Entry("s/k", {"e": {}}, False, "zz", 2, 1, {"zz": 2}, kind="mv")) is False
    assert n.replication.apply_entry(Entry("plain", 1, False, "zz", 3, 1, {"zz": 3}, kind="crdt:gcounter")) is False
    assert n.stats["dropped.bad_entry"] == 3 and not n.store.versions("s/k")


def test_get_verbose_shows_values_origins_and_causal_context() -> None:
    c = Cluster()
    c.split()
    c.do(0, "mv/k", "put", "a")
    c.do(1, "mv/k", "put", "b")
    c.heal()
    out = c.node(2).read("mv/k").as_dict(verbose=True)
    assert out["kind"] == "mv" and sorted(out["value"]) == ["a", "b"]
    assert {(v["value"], v["origin"]) for v in out["values"]} == {("a", "n0"), ("b", "n1")}
    assert set(out["causal_context"]) == {c.node(0).origin, c.node(1).origin}     # replica lives
    assert decode_context(out["context"]) == out["causal_context"]
    assert len(out["versions"]) == 2 and all("vv" in v and "replica" in v for v in out["versions"])
    entry = c.do(2, "mv/k", "put", "c", context=context_of(out["context"]))
    assert origin_node(entry.origin) == "n2"
    assert c.node(2).read("mv/k").as_dict()["value"] == ["c"]
    with pytest.raises(ValueError, match="not a causal context token"):
        context_of("!!")
    assert decode_context(encode_context({"a": 1})) == {"a": 1}


# ---- config -------------------------------------------------------------------------------------
def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return load_config(path, registry())


@pytest.mark.parametrize("text, pieces", [
    ('[[conflict_resolution.rules]]\nprefix = "a/"\nresolver = "nope"\n',
     ["[conflict_resolution.rules[0]]", "key 'resolver'", "unknown resolver 'nope'", "multi_value"]),
    ('[[conflict_resolution.rules]]\nprefix = "a/"\nresolver = "multi_value"\n'
     '[[conflict_resolution.rules]]\nprefix = "a/b/"\nresolver = "lww"\n',
     ["[conflict_resolution.rules[1]]", "key 'prefix'", "overlaps rule 0"]),
    ('[[conflict_resolution.rules]]\nprefix = "a/"\nresolver = "crdt"\ntype = "bag"\n',
     ["[conflict_resolution.rules[0]]", "key 'type'", "(resolver 'crdt')"]),
    ('[[conflict_resolution.rules]]\nprefix = "a/"\nresolver = "multi_value"\nmax_sibling = 3\n',
     ["[conflict_resolution.rules[0]]", "key 'max_sibling'", "unknown key"]),
    ('[[conflict_resolution.rules]]\nresolver = "lww"\n', ["[conflict_resolution.rules[0]]", "key 'prefix'"]),
    ('[storage]\nbackend = "rocks"\n', ["[storage]", "key 'backend'"]),
])
def test_rule_and_storage_errors_name_file_table_and_key(tmp_path: Path, text: str, pieces: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    for piece in pieces:
        assert piece in str(info.value), f"{piece!r} missing from: {info.value}"
    assert str(tmp_path / "node.toml") in str(info.value)


def test_rules_route_keys_by_prefix(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[conflict_resolution]\nstrategy = "lww"\n'
                          '[[conflict_resolution.rules]]\nprefix = "cart/"\nresolver = "crdt"\ntype = "orset"\n')
    from gossipmq.core.registry import create_strategies
    router = create_strategies(registry(), cfg.strategies)["conflict_resolution"]
    assert router.for_key("cart/1").kind == "crdt:orset" and router.for_key("carts").kind == ""

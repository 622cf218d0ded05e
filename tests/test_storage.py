"""SQLite durable storage: a restarted node keeps its versions, watermarks, counters and counter
slot; bad files are refused with a clear error and never reset."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gossipmq.core.config import StorageSection
from gossipmq.core.node import COUNTER_SHIFT, Node
from gossipmq.core.registry import create_strategies
from gossipmq.core.resolution import Op
from gossipmq.transports.storage import StorageError, attach
from tests.helpers import config, registry

RULES = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "c/", "resolver": "crdt", "type": "pncounter"},
    {"prefix": "mv/", "resolver": "multi_value"}]}}


def node(node_id: str = "n1", inc: int = 1000) -> Node:
    cfg = config(RULES)
    return Node(node_id, f"mem://{node_id}", strategies=create_strategies(registry(), cfg.strategies),
                gossip=cfg.gossip, incarnation=inc, storage=cfg.storage)


def section(path: Path) -> StorageSection:
    return StorageSection(backend="sqlite", path=str(path))


def test_restart_restores_versions_watermarks_counter_and_slot(tmp_path: Path) -> None:
    db = tmp_path / "n1.db"
    first = node(inc=1000)
    storage = attach(first, section(db))
    assert storage is not None
    first.put(1.0, "k", "v1")
    first.mutate(1.1, "c/hits", Op("incr", 5))
    first.put(1.2, "mv/m", "a")
    first.store.apply(node("n2", 5).put(1.3, "remote", "x")[0])   # a replicated version
    first.delete(1.4, "k")
    assert storage.flush(first) > 0
    before = (first.store.checksum(), dict(first.store.watermarks), first.replication.counter,
              first.replication.life)
    storage.close()                                                   # the process dies here

    second = node(inc=900)                                            # wall clock went back, even
    storage2 = attach(second, section(db))
    assert storage2 is not None
    assert second.store.checksum() == before[0]
    assert second.store.watermarks == before[1]
    assert second.replication.counter >= before[2] and second.replication.life == before[3] == 1000
    assert second.origin == first.origin                             # a durable replica keeps its origin
    assert second.inc > 1000                                          # outranks the previous life
    assert second.read("c/hits").value == 5 and second.read("k").deleted and second.read("mv/m").value == ["a"]
    entry, _ = second.mutate(2.0, "c/hits", Op("incr", 2))            # same counter slot, no new one
    assert entry.counter > before[2] and second.read("c/hits").value == 7
    assert list(entry.value["p"]) == [first.origin]
    storage2.flush(second)
    storage2.close()


def test_a_life_without_durable_storage_starts_above_every_previous_counter() -> None:
    assert node(inc=2000).replication.counter == 2000 << COUNTER_SHIFT
    assert node(inc=2000).origin != node(inc=3000).origin       # and writes under an origin of its own


@pytest.mark.parametrize("content, message", [
    (b"this is not a database, just some bytes" * 100, "not a usable SQLite database"),
    (None, "not a gossipmq database"),
])
def test_foreign_or_corrupt_files_are_refused_and_left_untouched(tmp_path: Path, content: bytes | None,
                                                                   message: str) -> None:
    db = tmp_path / "x.db"
    if content is None:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE photos (id INTEGER)")
            conn.execute("INSERT INTO photos VALUES (1)")
        conn.close()
    else:
        db.write_bytes(content)
    original = db.read_bytes()
    with pytest.raises(StorageError, match=message):
        attach(node(), section(db))
    assert db.read_bytes() == original


def test_another_nodes_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "n1.db"
    storage = attach(node("n1"), section(db))
    assert storage is not None
    storage.close()
    with pytest.raises(StorageError, match="holds the replica of node 'n1', not 'n2'"):
        attach(node("n2"), section(db))


def test_a_damaged_row_is_reported_not_skipped(tmp_path: Path) -> None:
    db = tmp_path / "n1.db"
    n = node()
    storage = attach(n, section(db))
    assert storage is not None
    n.put(1.0, "k", "v")
    storage.flush(n)
    storage.db.execute("UPDATE versions SET entry = x'c1c1c1'")
    storage.close()
    with pytest.raises(StorageError, match="unreadable"):
        attach(node(), section(db))


def test_memory_backend_has_no_storage() -> None:
    assert attach(node(), StorageSection()) is None


def test_a_restarted_replica_keeps_its_tombstones_until_it_has_heard_from_the_cluster(tmp_path: Path) -> None:
    """n1 deletes k while cut off from n2 (which holds k = v), is killed and restarts from its
    database, and runs on alone for a while (its seed is still cut off). The restored tombstone
    must neither count as TTL-expired (the clock starts at the restart, not at 0) nor as causally
    stable (a node that knows no member yet has not heard that every member saw it): once the
    cut heals the delete wins on both nodes, it does not come back as k = v."""
    from gossipmq.core.config import Config
    from gossipmq.transports.memory import MemoryNetwork, make_nodes

    t0 = 1_700_000_000.0   # wall-clock time, as the ZeroMQ runtime gives the kernel
    overrides = {**RULES, "storage": {"tombstone_ttl_ms": 3_600_000, "gc_interval_ms": 200},
                 "anti_entropy": {"interval_ms": 500}}
    cfg: Config = config(overrides)
    net = MemoryNetwork(seed=3)
    net.now = t0
    n1, n2 = make_nodes(cfg, registry(), 2, seed=3, incarnation=1000)
    db = tmp_path / "n0.db"
    storage = attach(n1, section(db))
    assert storage is not None
    net.add(n1)
    net.add(n2)
    net.put(n2.address, "k", "v")
    assert net.wait_for(lambda: n1.get("k") is not None and n1.get("k").value == "v", 10)
    net.partition([n1.address], [n2.address])
    net.delete(n1.address, "k")
    storage.flush(n1)
    net.crash(n1.address)
    storage.close()                                            # kill -9: what was committed stays

    again = make_nodes(cfg, registry(), 2, seed=4, incarnation=2000)[0]
    storage = attach(again, section(db))
    assert storage is not None and again.read("k").deleted
    net.add(again)
    net.run_for(90.0)                                          # alone: GC ticks, the purge guard expires
    assert again.store.versions("k"), "the restored tombstone was purged before the node rejoined"
    net.heal()
    assert net.wait_for(lambda: n2.read("k") is not None and n2.read("k").deleted
                        and again.store.checksum() == n2.store.checksum(), 60)
    assert again.read("k").deleted
    storage.close()

"""Durable storage of a replica: ``[storage] backend = "sqlite"`` (stdlib sqlite3, WAL mode).

The kernel stays sans-I/O: its store records every version it keeps or drops and every
watermark that moves in ``store.journal``; this module writes that journal, the node's write
counter, HLC, incarnation and counter slot ("life") in one transaction. The ZeroMQ runtime
commits before it acknowledges a write and before the write's effects (messages carrying its
dot) leave the process, and every `flush_ms` for what arrived from peers. So a node killed with
-9 comes back with every acknowledged write and never reuses a dot; what it had received but
not yet committed it fetches again by anti-entropy (its restored watermarks say what it lacks).

`synchronous = "normal"` (WAL) survives a process crash; `"full"` also survives power loss, at
an fsync per commit. A file that is not SQLite, not a gossipmq database, of another schema
version, of another node, or that fails SQLite's quick_check is refused with a clear error:
the node never silently starts over.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gossipmq.core.clock import encode_hook
from gossipmq.core.errors import GossipError
from gossipmq.core.messages import Entry

if TYPE_CHECKING:
    from gossipmq.core.config import StorageSection
    from gossipmq.core.node import Node

APPLICATION_ID = 0x474D5131   # "GMQ1": marks a file as a gossipmq replica
SCHEMA_VERSION = 2            # 2: dot origins name the replica's life ("id/life")
log = logging.getLogger("gossipmq.storage")
_encode = msgspec.msgpack.Encoder(enc_hook=encode_hook).encode
_decode = msgspec.msgpack.Decoder(Entry).decode

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE node (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE versions (origin TEXT NOT NULL, counter INTEGER NOT NULL, key TEXT NOT NULL, entry BLOB NOT NULL,
                       PRIMARY KEY (origin, counter)) WITHOUT ROWID;
CREATE TABLE watermarks (origin TEXT PRIMARY KEY, mark INTEGER NOT NULL) WITHOUT ROWID;
"""


class StorageError(GossipError):
    """The database cannot be used (corrupt, foreign, other node). Never reset silently."""


@dataclass
class Snapshot:
    entries: list[Entry]
    watermarks: dict[str, int]
    counter: int
    hlc: int
    incarnation: int
    life: int


class SqliteStorage:
    def __init__(self, path: str | Path, node_id: str, synchronous: str = "normal") -> None:
        self.path = str(path)
        self.node_id = node_id
        self.commits = 0
        self.rows = 0
        existed = Path(self.path).exists() and Path(self.path).stat().st_size > 0
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA foreign_keys=OFF")
            if existed:
                self._check()
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            if not existed:
                self._create()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self.path}: not a usable SQLite database ({exc}); refusing to start "
                               f"(move the file away to start this node empty)") from None

    # -- opening -------------------------------------------------------------------------------
    def _check(self) -> None:
        app = self.db.execute("PRAGMA application_id").fetchone()[0]
        if app != APPLICATION_ID:
            raise StorageError(f"{self.path}: not a gossipmq database (application_id {app:#x}); refusing to "
                               f"touch it")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StorageError(f"{self.path}: schema version {version}, this gossipmq reads {SCHEMA_VERSION}")
        check = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StorageError(f"{self.path}: database is corrupt ({check}); refusing to start")
        owner = self.db.execute("SELECT value FROM node WHERE name = 'id'").fetchone()
        if owner is None or owner[0] != self.node_id:
            raise StorageError(f"{self.path}: holds the replica of node {owner[0] if owner else '?'!r}, "
                               f"not {self.node_id!r}")

    def _create(self) -> None:
        with self._transaction():
            for statement in filter(None, (s.strip() for s in SCHEMA.split(";"))):
                self.db.execute(statement)
            self.db.execute("INSERT INTO node VALUES ('id', ?)", (self.node_id,))
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _transaction(self):
        db = self.db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, exc, tb) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    # -- reading -------------------------------------------------------------------------------
    def load(self) -> Snapshot:
        entries = []
        for origin, counter, blob in self.db.execute("SELECT origin, counter, entry FROM versions"):
            try:
                entry = _decode(blob)
            except msgspec.DecodeError as exc:
                raise StorageError(f"{self.path}: version ({origin}, {counter}) is unreadable ({exc}); "
                                   f"refusing to start") from None
            if entry.dot != (origin, counter):
                raise StorageError(f"{self.path}: version ({origin}, {counter}) holds dot {entry.dot}")
            entries.append(entry)
        marks = dict(self.db.execute("SELECT origin, mark FROM watermarks").fetchall())
        meta = dict(self.db.execute("SELECT name, value FROM meta").fetchall())
        return Snapshot(entries, marks, meta.get("counter", 0), meta.get("hlc", 0), meta.get("incarnation", 0),
                        meta.get("life", 0))

    # -- writing -------------------------------------------------------------------------------
    def flush(self, node: Node) -> int:
        """Commit what the node's store journaled since the last flush, with the node's
        counter, HLC, incarnation and life. Returns the number of rows written (0: no commit)."""
        store = node.store
        journal, marks = store.journal or [], store.moved_marks
        repl = node.replication
        meta = {"counter": repl.counter, "hlc": repl.hlc.last, "incarnation": node.inc, "life": repl.life}
        if not journal and not marks and meta == getattr(self, "_meta", None):
            return 0
        final: dict[tuple[str, int], tuple[bool, Entry]] = {}
        for stored, entry in journal:
            final[entry.dot] = (stored, entry)   # a version kept then dropped in one batch: dropped
        with self._transaction():
            gone = [dot for dot, (stored, _) in final.items() if not stored]
            kept = [(e.origin, e.counter, e.key, _encode(e)) for stored, e in final.values() if stored]
            if gone:
                self.db.executemany("DELETE FROM versions WHERE origin = ? AND counter = ?", gone)
            if kept:
                self.db.executemany("INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?)", kept)
            if marks:
                self.db.executemany("INSERT OR REPLACE INTO watermarks VALUES (?, ?)",
                                    [(o, store.watermarks[o]) for o in marks])
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        store.journal = []
        store.moved_marks = set()
        self._meta = meta
        self.commits += 1
        rows = len(final) + len(marks)
        self.rows += rows
        return rows

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass


def attach(node: Node, section: StorageSection) -> SqliteStorage | None:
    """Open the node's durable storage as configured, restore its replica into the node (before
    `start`) and turn on journaling. None for the memory backend. StorageError on a bad file."""
    if section.backend != "sqlite":
        return None
    path = (section.path or "gossipmq-{id}.db").replace("{id}", node.node_id)   # one config, many nodes
    storage = SqliteStorage(path, node.node_id, section.synchronous)
    snap = storage.load()
    if snap.incarnation:
        # SWIM: a new life must outrank what the cluster remembers of the old one
        node.inc = max(node.inc, snap.incarnation + 1)
    problems = node.replication.restore(snap.entries, snap.watermarks, counter=snap.counter, hlc=snap.hlc,
                                        life=snap.life or node.replication.life)
    for problem in problems:   # written by an older, laxer version: peers would refuse it too
        log.warning("%s: left out a stored version: %s", path, problem)
    node.store.journal = []
    storage.flush(node)   # record the new incarnation at once
    return storage

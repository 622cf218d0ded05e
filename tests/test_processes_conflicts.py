"""Three real `gossipctl run` processes (SQLite storage) on 127.0.0.1: concurrent writes to the
same keys from all three, a partition, a kill -9 and restart inside it, then a heal. Afterwards
all agree, and for every resolver (lww, multi_value, pncounter, orset) every acknowledged write
is present or dominated by a causally later write. Waits are bounded; processes die in finally."""
from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ProcessCluster, free_ports, wait_until

CONFIG = """
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 100
suspect_after_ms = 1000
dead_after_ms = 2500
[gossip]
reap_after_ms = 120000
[conflict_resolution]
strategy = "lww"
[[conflict_resolution.rules]]
prefix = "mv/"
resolver = "multi_value"
max_siblings = 100
[[conflict_resolution.rules]]
prefix = "cnt/"
resolver = "crdt"
type = "pncounter"
[[conflict_resolution.rules]]
prefix = "set/"
resolver = "crdt"
type = "orset"
[storage]
backend = "sqlite"
path = "{dir}/{{id}}.db"
flush_ms = 20
"""

NODES = ["n1", "n2", "n3"]


class Acks:
    """What each node acknowledged."""

    def __init__(self) -> None:
        self.puts: dict[str, list[dict[str, Any]]] = {}
        self.incr: dict[str, int] = {}
        self.members: dict[str, set[str]] = {}

    def put(self, c: ProcessCluster, node: str, key: str, value: Any) -> None:
        self.puts.setdefault(key, []).append(c.call(node, "put", key=key, value=value))

    def add(self, c: ProcessCluster, node: str, key: str, n: int) -> None:
        c.call(node, "incr", key=key, value=n)
        self.incr[key] = self.incr.get(key, 0) + n

    def sadd(self, c: ProcessCluster, node: str, key: str, member: str) -> None:
        c.call(node, "sadd", key=key, member=member)
        self.members.setdefault(key, set()).add(member)

    def round(self, c: ProcessCluster, nodes: list[str], tag: str) -> None:
        """Every node writes every key: concurrent with each other (faster than a gossip round)."""
        for i, node in enumerate(nodes):
            for k in range(2):
                self.put(c, node, f"lww/{k}", f"{tag}-{node}")
                self.put(c, node, f"mv/{k}", f"{tag}-{node}")
            self.add(c, node, "cnt/hits", i + 1)
            self.add(c, node, "cnt/hits", -1)
            self.sadd(c, node, "set/s", f"{tag}-{node}")


def check(c: ProcessCluster, acks: Acks, removed: set[str], kept: set[str]) -> list[str]:
    problems = []
    reads = {n: {k: c.call(n, "get", key=k, verbose=True) for k in
                 [*acks.puts, *acks.incr, *acks.members]} for n in NODES}
    for key in acks.puts:
        views = [reads[n][key] for n in NODES]
        if any(v != views[0] for v in views):
            problems.append(f"{key}: replicas disagree")
        final = views[0]
        if key.startswith("lww/"):
            win = max(acks.puts[key], key=lambda a: (a["hlc"], a["origin"], a["counter"]))
            if final["value"] != win["value"] or (final["origin"], final["counter"]) != (win["origin"], win["counter"]):
                problems.append(f"{key}: {final['value']!r} kept, newest acknowledged is {win['value']!r}")
        else:
            ctx = final["causal_context"]
            present = {(v["origin"], v["counter"]) for v in final["values"]}
            replica = {(a["origin"], a["counter"]): a["replica"] for a in acks.puts[key]}
            acked = set(replica)
            for dot in acked:   # present, or dominated by a causally later write that saw it
                if dot not in present and ctx.get(replica[dot], 0) < dot[1]:
                    problems.append(f"{key}: acknowledged {dot} neither present nor dominated")
            if not present <= acked:
                problems.append(f"{key}: siblings {present - acked} were never acknowledged")
    for key, total in acks.incr.items():
        values = {reads[n][key]["value"] for n in NODES}
        if values != {total}:
            problems.append(f"{key}: read {values}, acknowledged increments sum to {total}")
    for key, added in acks.members.items():
        values = [reads[n][key]["value"] for n in NODES]
        if any(v != values[0] for v in values):
            problems.append(f"{key}: replicas disagree")
        if set(values[0]) != (added - removed) | kept:
            problems.append(f"{key}: members {sorted(values[0])}, expected {sorted((added - removed) | kept)}")
    return problems


@pytest.mark.slow
def test_three_processes_partition_kill9_restart_then_all_agree_and_checker_passes() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gmq-conflicts-", dir="/tmp"))
    path = tmp / "node.toml"
    path.write_text(CONFIG.format(dir=tmp))
    c = ProcessCluster(path, tmp)
    ok = False
    try:
        ports = dict(zip(NODES, free_ports(3)))
        c.start("n1", ports["n1"])
        for n in NODES[1:]:
            c.start(n, ports[n], seeds=[c.addresses["n1"]])
        wait_until(lambda: all(c.call(n, "status")["members"]["alive"] == 3 for n in NODES), 15, "3 alive members")
        acks = Acks()
        acks.round(c, NODES, "a")                                     # concurrent, all connected
        acks.sadd(c, "n1", "set/s", "shared")
        acks.sadd(c, "n1", "set/s", "gone")
        wait_until(lambda: all("gone" in (c.call(n, "smembers", key="set/s") or {"value": []})["value"]
                               for n in NODES), 10, "set members everywhere")

        # partition {n1} | {n2, n3}: both sides keep writing the same keys
        c.call("n1", "block", peers=[c.addresses["n2"], c.addresses["n3"]])
        for n in ("n2", "n3"):
            c.call(n, "block", peers=[c.addresses["n1"]])
        acks.round(c, NODES, "b")
        c.call("n2", "srem", key="set/s", member="gone")             # observed, no concurrent add
        c.call("n2", "srem", key="set/s", member="shared")           # observed ...
        acks.sadd(c, "n1", "set/s", "shared")                         # ... but re-added concurrently: stays

        # kill -9 n3 inside the partition; it restarts from its SQLite file
        before = c.call("n3", "get", key="cnt/hits")["value"]
        c.kill("n3", signal.SIGKILL)
        c.start("n3", ports["n3"], seeds=[c.addresses["n2"]])
        # n3 committed its own increments before acknowledging them; increments it had received
        # from n2 within the last flush_ms may not be on disk, and come back from n2 by
        # anti-entropy (docs/conflict-resolution.md). The final check counts every acknowledgement.
        wait_until(lambda: c.call("n3", "get", key="cnt/hits")["value"] >= before, 10,
                   "n3's counter back to what it read before the kill")
        acks.round(c, ["n3", "n2", "n1"], "c")

        # heal
        for n in NODES:
            c.call(n, "block", peers=[])
        wait_until(lambda: len({c.call(n, "status")["checksum"] for n in NODES}) == 1
                   and all(c.call(n, "status")["members"]["alive"] == 3 for n in NODES), 40, "convergence after heal")
        problems = check(c, acks, removed={"gone", "shared"}, kept={"shared"})
        assert not problems, "\n".join(problems)
        mv = c.call("n2", "get", key="mv/0", verbose=True)
        assert len(mv["values"]) >= 2                                 # concurrent siblings survived
        # the CLI: verbose get, then resolve the siblings with the context
        out = c.cli("get", "mv/0", "--verbose", "--control", c.controls["n1"])
        assert out.returncode == 0 and "context" in out.stdout and "from" in out.stdout, out.stdout + out.stderr
        res = c.cli("put", "mv/0", "resolved", "--context", mv["context"], "--control", c.controls["n2"])
        assert res.returncode == 0, res.stderr
        wait_until(lambda: all((c.call(n, "get", key="mv/0") or {}).get("value") == ["resolved"] for n in NODES),
                   10, "siblings resolved everywhere")
        assert c.cli("smembers", "set/s", "--control", c.controls["n3"]).stdout.split().count("shared") == 1
        ok = True
    finally:
        c.stop_all()
        if not ok:
            for n in NODES:
                print(f"---- {n} ----\n{c.log(n)[-2500:]}")
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def two_nodes(config: str, prefix: str) -> Iterator[tuple[ProcessCluster, int, int]]:
    """Nodes a and b (b joined through a), both alive in each other's view; both stopped after,
    their logs printed if the test failed."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path = tmp / "node.toml"
    path.write_text(config.format(dir=tmp))
    c = ProcessCluster(path, tmp)
    ok = False
    try:
        pa, pb = free_ports(2)
        c.start("a", pa)
        c.start("b", pb, seeds=[c.addresses["a"]])
        wait_until(lambda: all(c.call(n, "status")["members"]["alive"] == 2 for n in "ab"), 15, "2 alive members")
        yield c, pa, pb
        ok = True
    finally:
        c.stop_all()
        if not ok:
            for n in "ab":
                print(f"---- {n} ----\n{c.log(n)[-2500:]}")
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_remove_after_kill9_covers_the_add_a_read_showed_before_it() -> None:
    """What a read showed survives a kill -9: b shows a member it only received (its periodic
    commit is a minute away: the control server commits before it answers, reads included), is
    killed and restarted, then removes that member. The remove must cover the add it was based
    on; had b restarted without the add, its remove would cover nothing and the member would come
    back on every node."""
    with two_nodes(CONFIG.replace("flush_ms = 20", "flush_ms = 60000"), "gmq-readcommit-") as (c, pa, pb):
        c.call("a", "sadd", key="set/s", member="m")
        wait_until(lambda: (c.call("b", "smembers", key="set/s") or {}).get("value") == ["m"], 10,
                   "b to read the member it received")
        c.kill("b", signal.SIGKILL)
        c.call("a", "block", peers=[c.addresses["b"]])   # b must remove from its own durable state
        c.start("b", pb, seeds=[c.addresses["a"]])
        assert c.call("b", "smembers", key="set/s")["value"] == ["m"]   # it survived the kill
        c.call("b", "srem", key="set/s", member="m")
        c.call("a", "block", peers=[])
        wait_until(lambda: len({c.call(n, "status")["checksum"] for n in "ab"}) == 1, 20, "a and b to agree")
        assert [c.call(n, "smembers", key="set/s") for n in "ab"] == [None, None]


def test_a_restarted_node_keeps_an_acknowledged_remove_its_peer_never_saw() -> None:
    """The chaos run's lost remove, in two processes: a removes the last member of a set while b
    cannot hear it (an emptied set is a dead version, a tombstone), a is killed -9 at once and
    restarts from its database while b still cannot hear it. The restored tombstone must outlive
    a's first garbage-collection ticks (it once counted as a day old at the restart, and a node
    that knew no member yet counted it as seen by all), so that once b hears a again the remove
    reaches b instead of b's add coming back."""
    with two_nodes(CONFIG + "gc_interval_ms = 200\n", "gmq-restart-gc-") as (c, pa, pb):
        c.call("b", "sadd", key="set/t", member="m")
        wait_until(lambda: (c.call("a", "smembers", key="set/t") or {}).get("value") == ["m"], 10,
                   "a to read the member b added")
        c.call("b", "block", peers=[c.addresses["a"]])   # b neither hears a nor talks to it
        c.call("a", "srem", key="set/t", member="m")      # acknowledged: durable on a
        c.kill("a", signal.SIGKILL)
        c.start("a", pa, seeds=[c.addresses["b"]])
        assert c.call("a", "smembers", key="set/t") is None   # the remove survived the kill
        wait_until(lambda: c.call("a", "status")["uptime_s"] >= 2.0, 10, "a to run 10 GC ticks alone")
        conflicts = c.call("a", "status")["conflicts"]
        assert conflicts["tombstones_pending"] == 1 and not conflicts.get("gc_purged_ttl") \
            and not conflicts.get("gc_purged_stable"), conflicts
        c.call("b", "block", peers=[])
        wait_until(lambda: all(c.call(n, "status")["members"]["alive"] == 2 for n in "ab")
                   and len({c.call(n, "status")["checksum"] for n in "ab"}) == 1, 30, "a and b to agree")
        assert [c.call(n, "smembers", key="set/t") for n in "ab"] == [None, None]

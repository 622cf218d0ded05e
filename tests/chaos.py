"""Chaos with a ledger: 5 real `gossipctl run` processes, a client that writes lww, multi-value,
pncounter and OR-Set keys and records what was acknowledged, and a fault loop (kill -9 and
restart, SIGSTOP/SIGCONT, 2|3 partitions, 5 % message loss on every node). At the end every fault
is healed, the cluster must converge, and the final state must keep every acknowledged write:

* lww        the value read is the newest acknowledged write or a newer attempt (never older);
* multi_value every acknowledged dot is a sibling or covered by the causal context;
* pncounter   acknowledged increments <= value <= attempted increments;
* orset       acknowledged adds (never removed) <= members <= attempted adds - acknowledged removes.

With the memory backend writes use ``ack=majority`` (a write survives its origin's death only if
it reached others before); with SQLite ``local`` (durable before it is acknowledged). Used by
tests/test_chaos.py (a short run) and benchmarks/chaos_run.py (the long one).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipmq.transports.control import ControlError, request

NODES = ("n1", "n2", "n3", "n4", "n5")
WRITE_S = 8.0   # a client waits this long for a write (above the 5 s an acknowledgement level may take)
CONFIG = """
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "swim"
probe_interval_ms = 500
probe_timeout_ms = 200
suspicion_mult = 4
[anti_entropy]
interval_ms = 1000
[gossip]
reap_after_ms = 600000
[conflict_resolution]
strategy = "lww"
[[conflict_resolution.rules]]
prefix = "mv/"
resolver = "multi_value"
max_siblings = 1000
[[conflict_resolution.rules]]
prefix = "c/"
resolver = "crdt"
type = "pncounter"
[[conflict_resolution.rules]]
prefix = "s/"
resolver = "crdt"
type = "orset"
"""


@dataclass
class Ledger:
    """What the client attempted and what the cluster acknowledged."""

    lww: dict[str, list[dict[str, Any]]] = field(default_factory=dict)       # key -> acked results
    lww_tried: dict[str, list[tuple[int, str, int]]] = field(default_factory=dict)
    mv: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    incr_acked: dict[str, int] = field(default_factory=dict)
    incr_tried: dict[str, int] = field(default_factory=dict)
    added: dict[str, set[str]] = field(default_factory=dict)
    add_tried: dict[str, set[str]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)          # srem attempted (it may have applied)
    removed_acked: dict[str, set[str]] = field(default_factory=dict)
    attempts: int = 0
    acked: int = 0


class ChaosCluster:
    def __init__(self, workdir: Path, backend: str, loss: float, seed: int) -> None:
        self.workdir = workdir
        self.backend = backend
        self.rng = random.Random(seed)
        self.loss = loss
        self.config = workdir / "chaos.toml"
        storage = f'\n[storage]\nbackend = "sqlite"\npath = "{workdir}/{{id}}.db"\n' if backend == "sqlite" else ""
        self.config.write_text(CONFIG + storage)
        self.ports = dict(zip(NODES, _free_ports(len(NODES))))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopped: set[str] = set()
        self.faults: list[tuple[float, str]] = []

    def address(self, node: str) -> str:
        return f"tcp://127.0.0.1:{self.ports[node]}"

    def control(self, node: str) -> str:
        return f"ipc://{self.workdir}/{node}.ctl"

    def start(self, node: str) -> None:
        seeds = [a for n in NODES if n != node for a in ("--seed", self.address(n))]
        args = [sys.executable, "-m", "gossipmq", "run", "--config", str(self.config), "--node-id", node,
                "--bind", self.address(node), "--control", self.control(node), *seeds]
        env = {**os.environ, "GOSSIPMQ_CHAOS": f"loss={self.loss},seed={self.rng.randrange(1 << 30)}"}
        log = open(self.workdir / f"{node}.log", "ab")
        self.procs[node] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        log.close()
        _wait(lambda: self.call(node, {"cmd": "status"}, 0.5), 20, f"{node} to answer")

    def call(self, node: str, req: dict[str, Any], timeout: float = 3.0) -> Any:
        return request(self.control(node), req, timeout=timeout)

    def live(self) -> list[str]:
        return [n for n in NODES if n in self.procs and self.procs[n].poll() is None and n not in self.stopped]

    # -- faults ----------------------------------------------------------------------------------
    def fault(self, now: float) -> None:
        kind = self.rng.choice(["kill", "pause", "partition"])
        victim = self.rng.choice(self.live())
        if kind == "kill":
            self.procs[victim].kill()
            self.procs[victim].wait(10)
            time.sleep(self.rng.uniform(1, 4))
            self.start(victim)
        elif kind == "pause":
            self.procs[victim].send_signal(signal.SIGSTOP)
            self.stopped.add(victim)
            time.sleep(self.rng.uniform(2, 6))
            self.procs[victim].send_signal(signal.SIGCONT)
            self.stopped.discard(victim)
        else:
            side = self.rng.sample(list(NODES), 2)
            other = [n for n in NODES if n not in side]
            for group, against in ((side, other), (other, side)):
                for node in group:
                    self._try(node, {"cmd": "block", "peers": [self.address(n) for n in against]})
            time.sleep(self.rng.uniform(2, 6))
            self.heal()
        self.faults.append((now, kind))

    def heal(self) -> None:
        for node in self.live():
            self._try(node, {"cmd": "block", "peers": []})

    def _try(self, node: str, req: dict[str, Any]) -> Any:
        try:
            return self.call(node, req)
        except ControlError:
            return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Writer:
    """Writes to random live nodes, recording every attempt and every acknowledgement."""

    def __init__(self, cluster: ChaosCluster, ledger: Ledger, ack: str, seed: int) -> None:
        self.cluster, self.ledger, self.ack = cluster, ledger, ack
        self.rng = random.Random(seed)
        self.serial = 0

    def step(self) -> None:
        live = self.cluster.live()
        if not live:
            return
        node = self.rng.choice(live)
        self.serial += 1
        kind = self.rng.choice(["lww", "mv", "incr", "sadd", "srem"])
        key_n = self.rng.randrange(8)
        ledger = self.ledger
        ledger.attempts += 1
        value = f"{node}-{self.serial}"
        try:
            if kind == "lww":
                key = f"lww/{key_n}"
                ledger.lww_tried.setdefault(key, [])
                result = self.cluster.call(node, {"cmd": "put", "key": key, "value": value, "ack": self.ack}, WRITE_S)
                ledger.lww.setdefault(key, []).append(result)
            elif kind == "mv":
                key = f"mv/{key_n}"
                result = self.cluster.call(node, {"cmd": "put", "key": key, "value": value, "ack": self.ack}, WRITE_S)
                ledger.mv.setdefault(key, []).append(result)
            elif kind == "incr":
                key = f"c/{key_n}"
                ledger.incr_tried[key] = ledger.incr_tried.get(key, 0) + 1
                self.cluster.call(node, {"cmd": "incr", "key": key, "value": 1, "ack": self.ack}, WRITE_S)
                ledger.incr_acked[key] = ledger.incr_acked.get(key, 0) + 1
            elif kind == "sadd":
                key = f"s/{key_n}"
                ledger.add_tried.setdefault(key, set()).add(value)
                self.cluster.call(node, {"cmd": "sadd", "key": key, "member": value, "ack": self.ack}, WRITE_S)
                ledger.added.setdefault(key, set()).add(value)
            else:
                key = f"s/{key_n}"
                seen = (self.cluster.call(node, {"cmd": "smembers", "key": key}) or {}).get("value") or []
                candidates = sorted(set(seen) & ledger.added.get(key, set()) - ledger.removed.get(key, set()))
                if not candidates:
                    return
                member = self.rng.choice(candidates)
                ledger.removed.setdefault(key, set()).add(member)   # before the call: it may apply unacknowledged
                self.cluster.call(node, {"cmd": "srem", "key": key, "member": member, "ack": self.ack}, WRITE_S)
                ledger.removed_acked.setdefault(key, set()).add(member)
            ledger.acked += 1
        except ControlError:
            pass   # not acknowledged: the write may or may not have happened


@dataclass
class Outcome:
    backend: str
    seconds: float
    attempts: int
    acknowledged: int
    lost: list[str]
    faults: dict[str, int]
    converge_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "seconds": round(self.seconds, 1), "ops_attempted": self.attempts,
                "ops_acknowledged": self.acknowledged, "acknowledged_lost": len(self.lost),
                "lost_examples": self.lost[:10], "faults": self.faults,
                "converged_after_last_fault_s": None if self.converge_s is None else round(self.converge_s, 2)}


def run(backend: str, seconds: float, *, seed: int = 1, loss: float = 0.05, fault_every: tuple[float, float] = (3, 8),
        progress: Callable[[str], None] = lambda s: None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="gossipmq-chaos-", dir="/tmp") as tmp:
        cluster = ChaosCluster(Path(tmp), backend, loss, seed)
        ledger = Ledger()
        writer = Writer(cluster, ledger, "majority" if backend == "memory" else "local", seed)
        try:
            for node in NODES:
                cluster.start(node)
            _wait(lambda: all(cluster.call(n, {"cmd": "status"})["members"]["alive"] == len(NODES) for n in NODES),
                  30, "all members alive")
            started = time.monotonic()
            done = threading.Event()

            def faults() -> None:   # beside the writes, so writes go on while a fault lasts
                while not done.wait(cluster.rng.uniform(*fault_every)):
                    cluster.fault(time.monotonic() - started)

            injector = threading.Thread(target=faults, name="chaos-faults", daemon=True)
            injector.start()
            last_report = started
            try:
                while time.monotonic() - started < seconds:
                    writer.step()
                    if time.monotonic() - last_report >= 30:
                        last_report = time.monotonic()
                        progress(f"{backend}: {last_report - started:.0f}/{seconds:.0f} s, {ledger.acked}/"
                                 f"{ledger.attempts} acknowledged, {len(cluster.faults)} faults")
            finally:
                done.set()
                injector.join(timeout=30)
            cluster.heal()
            healed = time.monotonic()
            converged = _wait(lambda: _agree(cluster), 120, "convergence after the last fault", fail=False)
            converge_s = time.monotonic() - healed if converged else None
            lost = check(cluster, ledger)
            kinds: dict[str, int] = {}
            for _, kind in cluster.faults:
                kinds[kind] = kinds.get(kind, 0) + 1
            return Outcome(backend, time.monotonic() - started, ledger.attempts, ledger.acked, lost, kinds,
                           converge_s)
        finally:
            cluster.stop()


def _agree(cluster: ChaosCluster) -> bool:
    statuses = [cluster.call(n, {"cmd": "status"}) for n in NODES]
    return len({s["checksum"] for s in statuses}) == 1 and all(s["members"]["alive"] == len(NODES) for s in statuses)


def check(cluster: ChaosCluster, ledger: Ledger) -> list[str]:
    """Every acknowledged write the final state lost (empty: none)."""
    lost: list[str] = []
    reader = NODES[0]
    for key, acks in ledger.lww.items():
        final = cluster.call(reader, {"cmd": "get", "key": key, "verbose": True})
        newest = max(acks, key=lambda a: (a["hlc"], a["replica"], a["counter"]))
        if final is None or final["hlc"] < newest["hlc"]:
            lost.append(f"{key}: acknowledged {newest['value']!r} (hlc {newest['hlc']}) but read "
                        f"{None if final is None else final['value']!r}")
    for key, acks in ledger.mv.items():
        final = cluster.call(reader, {"cmd": "get", "key": key, "verbose": True}) or {}
        present = {(v["origin"], v["counter"]) for v in final.get("values", [])}
        context = final.get("causal_context", {})
        for a in acks:
            if (a["origin"], a["counter"]) not in present and context.get(a["replica"], 0) < a["counter"]:
                lost.append(f"{key}: acknowledged sibling {a['value']!r} neither present nor covered")
    for key, acked in ledger.incr_acked.items():
        value = (cluster.call(reader, {"cmd": "get", "key": key}) or {}).get("value", 0)
        if not acked <= value <= ledger.incr_tried.get(key, 0):
            lost.append(f"{key}: {acked} increments acknowledged, {ledger.incr_tried.get(key)} tried, read {value}")
    for key in set(ledger.added) | set(ledger.removed):
        members = set((cluster.call(reader, {"cmd": "smembers", "key": key}) or {}).get("value") or [])
        must = ledger.added.get(key, set()) - ledger.removed.get(key, set())
        may = ledger.add_tried.get(key, set()) - ledger.removed_acked.get(key, set())
        if not must <= members:
            lost.append(f"{key}: acknowledged adds missing: {sorted(must - members)[:5]}")
        if not members <= may:
            lost.append(f"{key}: members never added or acknowledged removed: {sorted(members - may)[:5]}")
    return lost


def _wait(predicate: Callable[[], Any], timeout: float, what: str, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (ControlError, KeyError):
            pass
        time.sleep(0.2)
    if fail:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return False


def _free_ports(n: int) -> list[int]:
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports

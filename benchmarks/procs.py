"""Shared by the benchmarks that run real `gossipctl run` processes on 127.0.0.1: the cluster, their
logs, /proc readings, a concurrent control client and a results file. Every wait is bounded;
`Cluster.close` kills all."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import zmq

from gossipmq.transports.control import ControlError, request

OUT = Path(__file__).resolve().parent / "out"
_EVENT = re.compile(r"^(\S+ \S+) INFO (\S+): member (\S+) (\w+) \((\S+) -> (\w+), incarnation (\d+)\)")
_LISTEN = re.compile(r"^(\S+ \S+) INFO (\S+): node \S+ listening on")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} (1/5 min) on {os.cpu_count()} cores"


def log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory (or VmHWM, the peak) of a process from /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ControlPool:
    """Control requests to many nodes at once: one DEALER per endpoint, sending ``[b"", orjson]``.
    A REP control socket (today) and a ROUTER one (planned) both answer a DEALER that sends the
    empty delimiter frame, in request order; a reply that misses its timeout is discarded when it
    arrives late, so later answers stay matched to their requests."""

    def __init__(self, endpoints: dict[str, str], timeout: float = 2.0) -> None:
        self.ctx = zmq.Context()
        self.timeout = timeout
        self.socks: dict[str, zmq.Socket] = {}
        self.stale: dict[str, int] = {}
        for name, endpoint in endpoints.items():
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 20)
            sock.connect(endpoint)
            self.socks[name] = sock
            self.stale[name] = 0

    def ask(self, req: dict[str, Any], nodes: list[str] | None = None) -> dict[str, Any]:
        """{node: result} for every node that answered in time (an error reply maps to a ControlError)."""
        nodes = list(self.socks) if nodes is None else nodes
        payload = orjson.dumps(req)
        waiting = {}
        for name in nodes:
            try:
                self.socks[name].send_multipart([b"", payload], flags=zmq.NOBLOCK)
                waiting[name] = self.stale[name] + 1
            except zmq.Again:
                pass
        poller = zmq.Poller()
        for name in waiting:
            poller.register(self.socks[name], zmq.POLLIN)
        out: dict[str, Any] = {}
        deadline = time.monotonic() + self.timeout
        while waiting and (left := deadline - time.monotonic()) > 0:
            for sock, _ in poller.poll(left * 1000):
                name = next(n for n in waiting if self.socks[n] is sock)
                while name in waiting:
                    try:
                        frames = sock.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    waiting[name] -= 1
                    if waiting[name] == 0:   # the earlier ones were late answers to timed-out requests
                        del waiting[name]
                        self.stale[name] = 0
                        poller.unregister(sock)
                        reply = orjson.loads(frames[-1])
                        out[name] = reply.get("result") if reply.get("ok") else ControlError(reply.get("error"))
        for name, n in waiting.items():
            self.stale[name] = n
        return out

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close(linger=0)
        self.ctx.term()


class Cluster:
    def __init__(self, config: Path, n: int, env: dict[str, str] | None = None, log_level: str = "info",
                 keep_dir: bool = True) -> None:
        self.config = config
        self.log_level = log_level
        self.keep_dir = keep_dir   # False: remove the temp dir (logs, control sockets) on close
        self.dir = Path(tempfile.mkdtemp(prefix="gmq-bench-"))
        self.ports = free_ports(n)
        self.ids = [f"n{i}" for i in range(n)]
        self.addr = {nid: f"tcp://127.0.0.1:{p}" for nid, p in zip(self.ids, self.ports)}
        self.ctl = {nid: f"ipc://{self.dir}/{nid}.ctl" for nid in self.ids}
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, **(env or {})}
        #: node id -> argv replacing `python -m gossipmq` (e.g. a profiler wrapper, see profile_node.py)
        self.launchers: dict[str, list[str]] = {}

    def start(self, node_id: str, extra_env: dict[str, str] | None = None) -> None:
        launcher = self.launchers.get(node_id, [sys.executable, "-m", "gossipmq"])
        args = [*launcher, "run", "--config", str(self.config), "--node-id", node_id,
                "--bind", self.addr[node_id], "--advertise", self.addr[node_id], "--control", self.ctl[node_id],
                "--log-level", self.log_level]
        if node_id != self.ids[0]:
            args += ["--seed", self.addr[self.ids[0]]]
        with open(self.dir / f"{node_id}.log", "ab") as log:
            self.procs[node_id] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                   env={**self.env, **(extra_env or {})}, start_new_session=True)

    def start_all(self, timeout: float = 60.0) -> None:
        """Start the seed, wait until it answers, start the rest, wait until every one answers."""
        self.start(self.ids[0])
        self.wait(lambda: self.call(self.ids[0], "status"), timeout, "the seed to answer", 0.05)
        for node_id in self.ids[1:]:
            self.start(node_id)
        self.wait(lambda: all(self.procs[n].poll() is None and os.path.exists(self.ctl[n][len("ipc://"):])
                              for n in self.ids), timeout, "every node to bind its control socket", 0.05)

    def pool(self, timeout: float = 2.0) -> ControlPool:
        return ControlPool(self.ctl, timeout)

    def pid(self, node_id: str) -> int:
        return self.procs[node_id].pid

    def call(self, node_id: str, cmd: str, **kw: Any) -> Any:
        return request(self.ctl[node_id], {"cmd": cmd, **kw}, timeout=2.0)

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.2) -> float:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if predicate():
                    return time.monotonic() - start
            except ControlError:
                pass
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what} (logs in {self.dir})")

    def alive_counts(self, nodes: list[str]) -> list[int]:
        return [sum(1 for m in self.call(n, "members") if m["status"] == "alive") for n in nodes]

    def converged(self, nodes: list[str] | None = None) -> bool:
        nodes = nodes or [n for n in self.ids if self.procs[n].poll() is None]
        return all(c == len(nodes) for c in self.alive_counts(nodes))

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> float:
        t = time.time()
        self.procs[node_id].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[node_id].wait(timeout=10)
        return t

    def events(self, node_id: str) -> list[tuple[float, str, str, str, str, int]]:
        """(time, observer, member, reason, status, incarnation) parsed from the node's log."""
        out = []
        for line in (self.dir / f"{node_id}.log").read_text(errors="replace").splitlines():
            m = _EVENT.match(line)
            if m:
                out.append((log_time(m[1]), m[2], m[3], m[4], m[6], int(m[7])))
        return out

    def listening_at(self, node_id: str) -> float | None:
        for line in (self.dir / f"{node_id}.log").read_text(errors="replace").splitlines():
            m = _LISTEN.match(line)
            if m:
                return log_time(m[1])
        return None

    def cpu_seconds(self, node_id: str) -> float:
        return proc_cpu_seconds(self.procs[node_id].pid)

    def rss_mib(self, node_id: str) -> float:
        return proc_rss_mib(self.procs[node_id].pid)

    def close(self, timeout: float = 5.0) -> None:
        """SIGTERM every node (each leaves gracefully), SIGKILL what is still there after `timeout` s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def save(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]

"""Shared by the membership benchmarks: real `gossipctl run` processes on 127.0.0.1, their
logs, /proc readings and a results file. Every wait is bounded; `Cluster.close` kills all."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

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


class Cluster:
    def __init__(self, config: Path, n: int, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.dir = Path(tempfile.mkdtemp(prefix="gmq-bench-"))
        self.ports = free_ports(n)
        self.ids = [f"n{i}" for i in range(n)]
        self.addr = {nid: f"tcp://127.0.0.1:{p}" for nid, p in zip(self.ids, self.ports)}
        self.ctl = {nid: f"ipc://{self.dir}/{nid}.ctl" for nid in self.ids}
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, **(env or {})}

    def start(self, node_id: str, extra_env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", "gossipmq", "run", "--config", str(self.config), "--node-id", node_id,
                "--bind", self.addr[node_id], "--advertise", self.addr[node_id], "--control", self.ctl[node_id]]
        if node_id != self.ids[0]:
            args += ["--seed", self.addr[self.ids[0]]]
        with open(self.dir / f"{node_id}.log", "ab") as log:
            self.procs[node_id] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                   env={**self.env, **(extra_env or {})}, start_new_session=True)

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
        fields = Path(f"/proc/{self.procs[node_id].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self, node_id: str) -> float:
        for line in Path(f"/proc/{self.procs[node_id].pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def save(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

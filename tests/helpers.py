"""Shared test helpers: in-memory clusters and real `gossipctl run` processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gossipmq.core.config import Config, parse_config
from gossipmq.core.plugins import build_registry, make_plugin_manager
from gossipmq.core.registry import StrategyRegistry
from gossipmq.transports.control import ControlError, request
from gossipmq.transports.memory import MemoryNetwork, make_nodes

_REGISTRY: StrategyRegistry | None = None

FAST = {
    "dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 200},
    "failure_detection": {"strategy": "heartbeat", "interval_ms": 200, "suspect_after_ms": 1000,
                          "dead_after_ms": 2000},
}


def registry() -> StrategyRegistry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(make_plugin_manager())
    return _REGISTRY


def config(overrides: dict[str, Any] | None = None) -> Config:
    doc = {k: dict(v) for k, v in FAST.items()}
    for table, values in (overrides or {}).items():
        doc.setdefault(table, {}).update(values)
    return parse_config(doc, registry())


def memory_cluster(n: int, overrides: dict[str, Any] | None = None, *, seed: int = 1,
                   encode: bool = True, **net_kw: Any) -> tuple[MemoryNetwork, list[str]]:
    """n nodes joined through the first; returns once membership has converged."""
    cfg = config(overrides)
    net = MemoryNetwork(seed=seed, encode=encode, **net_kw)
    addrs = [net.add(node).address for node in make_nodes(cfg, registry(), n, seed=seed)]
    assert net.wait_for(lambda: all(len(nd.members.reachable_ids()) == n - 1 for nd in net.nodes.values()), 10.0), \
        "membership did not converge in 10 virtual seconds"
    return net, addrs


# ---- real processes ------------------------------------------------------------------------------
def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until truthy or `timeout` seconds pass; then fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except ControlError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


class ProcessCluster:
    """Real `gossipctl run` processes on 127.0.0.1, each with its own control endpoint."""

    def __init__(self, config_path: Path, workdir: Path) -> None:
        self.config_path = config_path
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}
        self.controls: dict[str, str] = {}

    def start(self, node_id: str, port: int, seeds: list[str] = (), extra: list[str] = ()) -> None:  # type: ignore[assignment]
        address = f"tcp://127.0.0.1:{port}"
        control = f"ipc://{self.workdir}/{node_id}.ctl"
        args = [sys.executable, "-m", "gossipmq", "run", "--config", str(self.config_path),
                "--node-id", node_id, "--bind", address, "--advertise", address, "--control", control,
                *[a for s in seeds for a in ("--seed", s)], *extra]
        log = open(self.workdir / f"{node_id}.log", "ab")
        self.procs[node_id] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.addresses[node_id], self.controls[node_id] = address, control
        wait_until(lambda: self.call(node_id, "status", timeout=0.5), 15, f"{node_id} to answer on {control}")

    def call(self, node_id: str, cmd: str, timeout: float = 2.0, **kw: Any) -> Any:
        return request(self.controls[node_id], {"cmd": cmd, **kw}, timeout=timeout)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gossipmq", *args], capture_output=True, text=True,
                              timeout=30)

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[node_id]
        proc.send_signal(sig)
        proc.wait(timeout=10)

    def log(self, node_id: str) -> str:
        return (self.workdir / f"{node_id}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextmanager
def process_cluster(config_text: str) -> Iterator[ProcessCluster]:
    with tempfile.TemporaryDirectory(prefix="gmq-test-", dir="/tmp") as tmp:
        path = Path(tmp) / "node.toml"
        path.write_text(config_text)
        cluster = ProcessCluster(path, Path(tmp))
        try:
            yield cluster
        except BaseException:
            for node_id in cluster.procs:
                sys.stderr.write(f"---- log of {node_id} ----\n{cluster.log(node_id)[-3000:]}\n")
            raise
        finally:
            cluster.stop_all()


def env_without_control() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GOSSIPMQ_CONTROL"}

"""Helpers for the security tests: in-memory nodes with curve keys, and real `gossipctl run`
processes on 127.0.0.1 with bounded waits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gossipmq.core.config import parse_config
from gossipmq.core.node import Node
from gossipmq.core.plugins import build_registry, make_plugin_manager
from gossipmq.core.registry import create_strategies
from gossipmq.core.signing import KeyPair, curve_public_of
from gossipmq.plugins.security import CurveSecurity, Trust, TrustedKey
from gossipmq.transports.control import ControlError, request
from tests.helpers import free_ports  # noqa: F401  (re-exported for the security tests)

_REGISTRY = build_registry(make_plugin_manager(load_entrypoints=False))


def trust_of(keys: dict[str, KeyPair]) -> Trust:
    return Trust(TrustedKey(n, kp.identity, curve_public_of(kp.identity)) for n, kp in keys.items())


def memory_node(node_id: str, keys: dict[str, KeyPair], seeds: list[str] = (), signing: str = "ed25519",
                trust: Trust | None = None, **doc: Any) -> Node:
    """A kernel Node with curve security installed (keys[node_id] is its own key pair)."""
    config = {"security": {"strategy": "curve", "signing": signing, "key": "unused"},
              "failure_detection": {"strategy": "heartbeat", "interval_ms": 100, "suspect_after_ms": 1000,
                                    "dead_after_ms": 2000},
              "dissemination": {"strategy": "hybrid", "interval_ms": 100}, **doc}
    cfg = parse_config(config, _REGISTRY)
    strategies = create_strategies(_REGISTRY, cfg.strategies)
    security = strategies["security"]
    assert isinstance(security, CurveSecurity)
    security.install(keys[node_id], trust or trust_of(keys))
    return Node(node_id, f"mem://{node_id}", strategies=strategies, gossip=cfg.gossip, seeds=list(seeds),
                rng_seed=zlib.crc32(node_id.encode()), limits=cfg.limits)


# ---- real processes -----------------------------------------------------------------------------
def write_secure_config(path: Path, *, trust_dir: str = "keys/trusted", signing: str = "ed25519",
                        extra: str = "", reload_ms: int = 200, suspect_ms: int = 3000, dead_ms: int = 6000,
                        gossip: str = "") -> Path:
    path.write_text(f"""
{extra}
[gossip]
reap_after_ms = 60000
{gossip}
[dissemination]
strategy = "hybrid"
interval_ms = 200
[failure_detection]
strategy = "heartbeat"
interval_ms = 200
suspect_after_ms = {suspect_ms}
dead_after_ms = {dead_ms}
[security]
strategy = "curve"
key = "keys/{{id}}.key_secret"
trust_dir = "{trust_dir}"
signing = "{signing}"
reload_ms = {reload_ms}
""")
    return path


def make_keys(base: Path, names: list[str], trust: bool = True) -> dict[str, KeyPair]:
    from gossipmq.transports.curve import keygen, trust_cert
    out = {}
    for name in names:
        public, _, kp = keygen(base / "keys", name)
        if trust:
            trust_cert(base / "keys" / "trusted", public)
        out[name] = kp
    return out


class Proc:
    """One `gossipctl run` process."""

    def __init__(self, config: Path, node_id: str, port: int, seed: str | None, logs: Path) -> None:
        self.node_id, self.port = node_id, port
        self.address = f"tcp://127.0.0.1:{port}"
        self.control = f"ipc://{logs}/{node_id}.ctl"
        self.log = logs / f"{node_id}.log"
        args = [sys.executable, "-m", "gossipmq", "run", "--config", str(config), "--node-id", node_id,
                "--bind", self.address, "--advertise", self.address, "--control", self.control]
        if seed:
            args += ["--seed", seed]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

    def call(self, payload: dict[str, Any], timeout: float = 2.0) -> Any:
        return request(self.control, payload, timeout=timeout)

    def status(self) -> dict[str, Any] | None:
        try:
            return self.call({"cmd": "status"})
        except ControlError:
            return None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `condition` until truthy (returned) or `timeout` seconds pass (returns the last value)."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = condition()
    return value


def converged(procs: list[Proc], alive: int | None = None) -> bool:
    statuses = [p.status() for p in procs]
    if any(s is None for s in statuses):
        return False
    want = alive if alive is not None else len(procs)
    return all(s["members"]["alive"] == want for s in statuses) and len({s["checksum"] for s in statuses}) == 1

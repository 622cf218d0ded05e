"""Real `gossipctl run` processes on 127.0.0.1: kill -9 detection (swim, phi), restart identity,
graceful leave, hook scripts and `members --watch`. Every wait is bounded; every process is
stopped in a finally (process_cluster)."""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from .helpers import ProcessCluster, free_ports, process_cluster, wait_until

BASE = """
[gossip]
reap_after_ms = 60000
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 200
"""
DETECTORS = {
    "swim": """
[failure_detection]
strategy = "swim"
probe_interval_ms = 300
probe_timeout_ms = 150
""",
    "phi": """
[failure_detection]
strategy = "phi"
interval_ms = 200
threshold = 8.0
acceptable_pause_ms = 300
dead_after_ms = 1000
""",
}


def _start(cluster: ProcessCluster, n: int) -> list[str]:
    ports = free_ports(n)
    seed = f"tcp://127.0.0.1:{ports[0]}"
    ids = [f"n{i}" for i in range(n)]
    for i, node_id in enumerate(ids):
        cluster.start(node_id, ports[i], seeds=[seed] if i else [])
    wait_until(lambda: all(_statuses(cluster, i).count("alive") == n - 1 for i in ids), 15, "membership to converge")
    return ids


def _statuses(cluster: ProcessCluster, observer: str) -> list[str]:
    return [m["status"] for m in cluster.call(observer, "members") if not m.get("self")]


def _view(cluster: ProcessCluster, observer: str, member_id: str) -> dict[str, Any] | None:
    return next((m for m in cluster.call(observer, "members") if m["id"] == member_id), None)


def _all_see(cluster: ProcessCluster, observers: list[str], member_id: str, status: str) -> bool:
    return all((_view(cluster, o, member_id) or {}).get("status") == status for o in observers)


@pytest.mark.parametrize("detector", ["swim", "phi"])
def test_kill9_is_detected_by_every_survivor(detector: str) -> None:
    with process_cluster(BASE + DETECTORS[detector]) as cluster:
        ids = _start(cluster, 4)
        cluster.kill("n2", signal.SIGKILL)
        killed = time.monotonic()
        survivors = ["n0", "n1", "n3"]
        wait_until(lambda: _all_see(cluster, survivors, "n2", "dead"), 20, f"{detector} to declare n2 dead", 0.05)
        took = time.monotonic() - killed
        assert took < 15, took
        for node_id in survivors:  # nobody healthy was accused
            assert _statuses(cluster, node_id).count("alive") == len(ids) - 2


def test_restarted_node_rejoins_alive_with_a_higher_incarnation() -> None:
    with process_cluster(BASE + DETECTORS["swim"]) as cluster:
        _start(cluster, 3)
        before = _view(cluster, "n0", "n2")
        assert before is not None
        port = int(cluster.addresses["n2"].rsplit(":", 1)[1])
        cluster.kill("n2", signal.SIGKILL)
        cluster.start("n2", port, seeds=[cluster.addresses["n0"]])
        restarted = time.monotonic()
        wait_until(lambda: all((_view(cluster, o, "n2") or {}).get("incarnation", 0) > before["incarnation"]
                               for o in ("n0", "n1")), 5, "the new life of n2 to be known")
        assert time.monotonic() - restarted < 3.0, "accepted at once, not after a suspicion timeout"
        assert _all_see(cluster, ["n0", "n1"], "n2", "alive")
        reasons = [e["reason"] for e in cluster.call("n0", "events", after=0)["events"] if e["member"]["id"] == "n2"]
        assert "failed" not in reasons


def test_graceful_leave_is_shown_as_left_not_failed() -> None:
    with process_cluster(BASE + DETECTORS["swim"]) as cluster:
        _start(cluster, 3)
        result = cluster.cli("leave", "--control", cluster.controls["n2"])
        assert result.returncode == 0, result.stderr
        cluster.procs["n2"].wait(timeout=10)
        wait_until(lambda: _all_see(cluster, ["n0", "n1"], "n2", "left"), 5, "n2 to be seen as left")
        shown = cluster.cli("members", "--control", cluster.controls["n0"])
        assert shown.returncode == 0 and "left" in shown.stdout
        reasons = [e["reason"] for e in cluster.call("n0", "events", after=0)["events"] if e["member"]["id"] == "n2"]
        assert reasons[-1] == "left" and "failed" not in reasons and "suspected" not in reasons


def test_hook_script_gets_the_event_environment_and_watch_prints_it(tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$GOSSIPMQ_SELF_ID $GOSSIPMQ_EVENT $GOSSIPMQ_MEMBER_ID '
                      f'$GOSSIPMQ_MEMBER_PREVIOUS $GOSSIPMQ_TAG_ZONE" >> {out}\n')
    script.chmod(0o755)
    config = (BASE + DETECTORS["swim"] + f'\n[node]\ntags = {{ zone = "z1" }}\n'
              f'[hooks]\nfailed = "{script}"\nleft = "exit 3"\n')
    with process_cluster(config) as cluster:
        _start(cluster, 3)
        watcher = subprocess.Popen([sys.executable, "-m", "gossipmq", "members", "--watch", "--json",
                                    "--control", cluster.controls["n0"]], stdout=subprocess.PIPE, text=True)
        watched: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [watched.put(x) for x in watcher.stdout], daemon=True).start()  # type: ignore[union-attr]
        try:
            assert "members" in orjson.loads(watched.get(timeout=10)), "watch starts with the view"
            cluster.kill("n2", signal.SIGKILL)
            wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, 20,
                       "both survivors to run the failed hook")
            lines = sorted(out.read_text().splitlines())
            assert lines == ["n0 failed n2 suspect z1", "n1 failed n2 suspect z1"]
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(e["reason"] == "failed" for e in seen):
                try:
                    line = watched.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line.startswith("{"):
                    seen.append(orjson.loads(line))
            assert [e["reason"] for e in seen if e["member"]["id"] == "n2"][-2:] == ["suspected", "failed"]
        finally:
            watcher.send_signal(signal.SIGINT)
            try:
                watcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                watcher.kill()
                watcher.wait(timeout=5)


def test_join_through_a_dns_named_seed_and_through_any_member() -> None:
    with process_cluster(BASE + DETECTORS["swim"]) as cluster:
        ports = free_ports(3)
        cluster.start("n0", ports[0])
        cluster.start("n1", ports[1], seeds=[f"localhost:{ports[0]}"])   # a name, resolved by the runtime
        cluster.start("n2", ports[2], seeds=[cluster.addresses["n1"]])   # n1 is no seed, just a member
        wait_until(lambda: all(_statuses(cluster, n).count("alive") == 2 for n in ("n0", "n1", "n2")), 10,
                   "all three to know each other")

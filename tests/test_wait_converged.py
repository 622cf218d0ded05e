"""`gossipctl status --wait-converged` against three real node processes on loopback."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

CONFIG = """
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 100
suspect_after_ms = 1500
dead_after_ms = 4000
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ctl(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "gossipmq.core.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
def test_wait_converged_with_three_processes(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(CONFIG)
    ports = _free_ports(3)
    seed = f"tcp://127.0.0.1:{ports[0]}"
    procs, controls = [], []
    try:
        for i, port in enumerate(ports):
            address = f"tcp://127.0.0.1:{port}"
            control = f"ipc://{tmp_path}/n{i}.ctl"
            args = [sys.executable, "-m", "gossipmq.core.cli", "run", "--config", str(config), "--node-id", f"n{i}",
                    "--bind", address, "--advertise", address, "--control", control]
            if i:
                args += ["--seed", seed]
            log = open(tmp_path / f"n{i}.log", "wb")
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            controls.append(control)
        assert _wait(lambda: all(_ctl("status", "--control", c, "--json").returncode == 0 for c in controls), 30)
        assert _ctl("put", "greeting", "hello", "--control", controls[0]).returncode == 0

        done = _ctl("status", "--control", controls[2], "--wait-converged", "--timeout", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "converged  yes" in done.stdout
        assert _ctl("get", "greeting", "--control", controls[2]).stdout.strip() == "hello"

        # n2 dies without a word: its last reported root is stale, so n0 cannot claim
        # convergence after a new write until n2 is declared dead.
        os.killpg(procs[2].pid, signal.SIGKILL)
        procs[2].wait(timeout=10)
        assert _ctl("put", "after", "crash", "--control", controls[0]).returncode == 0
        quick = _ctl("status", "--control", controls[0], "--wait-converged", "--timeout", "0.3")
        assert quick.returncode == 1, quick.stdout + quick.stderr
        later = _ctl("status", "--control", controls[0], "--wait-converged", "--timeout", "20", "--json")
        assert later.returncode == 0, later.stdout + later.stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=10)

"""`gossipctl status --wait-converged` against three real node processes on loopback."""
import pytest

from .helpers import free_ports, process_cluster

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


@pytest.mark.slow
def test_wait_converged_with_three_processes():
    with process_cluster(CONFIG) as cluster:
        ports = free_ports(3)
        seed = f"tcp://127.0.0.1:{ports[0]}"
        for i, port in enumerate(ports):
            cluster.start(f"n{i}", port, seeds=[seed] if i else [])   # each waits until it answers
        control = cluster.controls
        assert cluster.cli("put", "greeting", "hello", "--control", control["n0"]).returncode == 0

        done = cluster.cli("status", "--control", control["n2"], "--wait-converged", "--timeout", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "converged  yes" in done.stdout
        assert cluster.cli("get", "greeting", "--control", control["n2"]).stdout.strip() == "hello"

        # n2 dies without a word: its last reported root is stale, so n0 cannot claim
        # convergence after a new write until n2 is declared dead (4 s of silence).
        cluster.kill("n2")
        assert cluster.cli("put", "after", "crash", "--control", control["n0"]).returncode == 0
        quick = cluster.cli("status", "--control", control["n0"], "--wait-converged", "--timeout", "0.3")
        assert quick.returncode == 1, quick.stdout + quick.stderr
        assert "not converged within 0.3 s" in quick.stderr
        later = cluster.cli("status", "--control", control["n0"], "--wait-converged", "--timeout", "20", "--json")
        assert later.returncode == 0, later.stdout + later.stderr

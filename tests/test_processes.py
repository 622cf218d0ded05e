"""Real `gossipctl run` processes on 127.0.0.1 over ZeroMQ: the foundation's end-to-end proof."""
from __future__ import annotations

import time

import orjson
import pytest
import zmq

from tests.helpers import free_ports, process_cluster, wait_until

CONFIG = """
[dissemination]
strategy = "{mode}"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 100
suspect_after_ms = 700
dead_after_ms = 1500
[gossip]
reap_after_ms = 60000
"""


def statuses(cluster, nodes):  # type: ignore[no-untyped-def]
    return {n: cluster.call(n, "status") for n in nodes}


def all_see(cluster, nodes, node_id, status):  # type: ignore[no-untyped-def]
    def check() -> bool:
        for n in nodes:
            view = {m["id"]: m["status"] for m in cluster.call(n, "members")}
            if view.get(node_id) != status:
                return False
        return True
    return check


@pytest.mark.parametrize("mode", ["push", "pull", "hybrid"])
def test_real_cluster_replicates_deletes_leaves_and_detects_kills(mode: str) -> None:
    with process_cluster(CONFIG.format(mode=mode)) as cluster:
        ports = free_ports(4)
        nodes = [f"n{i}" for i in range(4)]
        cluster.start("n0", ports[0])
        for i in range(1, 4):
            cluster.start(nodes[i], ports[i], seeds=[cluster.addresses["n0"]])
        wait_until(lambda: all(s["members"]["alive"] == 4 for s in statuses(cluster, nodes).values()), 10,
                   "4 alive members on every node")

        # a put on one node is readable on all, in both directions
        cluster.call("n3", "put", key="from-n3", value={"x": 1})
        cluster.call("n0", "put", key="from-n0", value="hello")
        for key in ("from-n3", "from-n0"):
            wait_until(lambda: all(cluster.call(n, "get", key=key) for n in nodes), 5, f"{key} on every node")
        assert cluster.call("n1", "get", key="from-n3")["value"] == {"x": 1}
        wait_until(lambda: len({s["checksum"] for s in statuses(cluster, nodes).values()}) == 1, 5,
                   "equal checksums")

        # delete spreads
        cluster.call("n1", "delete", key="from-n0")
        wait_until(lambda: all(cluster.call(n, "get", key="from-n0") is None for n in nodes), 5,
                   "the delete on every node")

        # graceful leave is shown as left
        cluster.call("n2", "leave")
        cluster.procs["n2"].wait(timeout=10)
        wait_until(all_see(cluster, ["n0", "n1", "n3"], "n2", "left"), 5, "n2 marked left")

        # kill -9 is detected as failed (dead), not left
        cluster.kill("n3")
        wait_until(all_see(cluster, ["n0", "n1"], "n3", "dead"), 10, "n3 marked dead")
        assert "member n3 failed" in cluster.log("n0")


def test_cli_client_commands_and_json_contract() -> None:
    with process_cluster(CONFIG.format(mode="hybrid")) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a", p1)
        cluster.start("b", p2, seeds=[cluster.addresses["a"]])
        ctl_a, ctl_b = cluster.controls["a"], cluster.controls["b"]
        out = cluster.cli("put", "color", "blue", "--control", ctl_a, "--json")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: cluster.cli("get", "color", "--control", ctl_b).returncode == 0, 5, "color on b")
        got = orjson.loads(cluster.cli("get", "color", "--control", ctl_b, "--json").stdout)
        assert got["key"] == "color" and got["value"] == "blue"
        missing = cluster.cli("get", "nope", "--control", ctl_b)
        assert missing.returncode == 1 and "not found" in missing.stderr
        members = orjson.loads(cluster.cli("members", "--control", ctl_a, "--json").stdout)
        assert {m["id"] for m in members} == {"a", "b"}
        assert all({"id", "address", "status", "incarnation", "tags"} <= set(m) for m in members)
        status = orjson.loads(cluster.cli("status", "--control", ctl_a, "--json").stdout)
        for field in ("node_id", "members", "keys", "checksum", "messages_in", "messages_out", "bytes_in",
                      "bytes_out"):
            assert field in status
        assert status["bytes_in"] > 0 and status["messages_out"] > 0
        unreachable = cluster.cli("status", "--control", "ipc:///tmp/gossipmq-nobody-here.ctl")
        assert unreachable.returncode == 2 and "no node answered" in unreachable.stderr


def test_rogue_frames_are_dropped_counted_and_logged_once_per_cause() -> None:
    with process_cluster(CONFIG.format(mode="hybrid")) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a", p1)
        cluster.start("b", p2, seeds=[cluster.addresses["a"]])
        ctx = zmq.Context()
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 5000)  # let every queued rogue frame go out before close
        rogue.connect(cluster.addresses["a"])
        bad = [[b"hello"], [b"GMQ\x09", b"{}"], [b"GMQ\x01", b"{nope"], [b"GMQ\x01", b" " * (2 << 20)],
               [b"GMQ\x01", b'{"type":"teleport","src":"x","addr":"y","inc":1,"body":{}}']]
        for _ in range(20):
            for frames in bad:
                rogue.send_multipart(frames)
        rogue.close()
        ctx.term()
        wait_until(lambda: cluster.call("a", "status")["dropped"].get("unknown_type", 0) >= 20, 10,
                   "100 rogue frames counted")
        dropped = cluster.call("a", "status")["dropped"]
        assert dropped == {"frame_count": 20, "version": 20, "malformed": 20, "oversized": 20, "unknown_type": 20}
        log = cluster.log("a")
        for cause in ("frame_count", "version", "malformed", "oversized", "unknown_type"):
            assert log.count(f"dropped frame ({cause}") == 1
        cluster.call("b", "put", key="after-flood", value=1)
        wait_until(lambda: cluster.call("a", "get", key="after-flood"), 5, "replication after the flood")


def test_sigterm_leaves_gracefully() -> None:
    with process_cluster(CONFIG.format(mode="hybrid")) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a", p1)
        cluster.start("b", p2, seeds=[cluster.addresses["a"]])
        wait_until(lambda: cluster.call("a", "status")["members"]["alive"] == 2, 5, "b joined")
        started = time.monotonic()
        cluster.kill("b", sig=15)
        assert time.monotonic() - started < 5
        wait_until(all_see(cluster, ["a"], "b", "left"), 5, "b marked left after SIGTERM")

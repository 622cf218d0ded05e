"""Single inputs that used to break a node silently (issue #10), each reproduced over real sockets
against `gossipctl run` processes: after each one the node still answers, its counters name the
cause, and writes still replicate. Every wait is bounded; processes are stopped in finally."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gossipmq.core.messages import INT64_MAX
from gossipmq.transports.control import ControlError, request
from tests._wire import RawPeer, entry, envelope, now_hlc
from tests.helpers import ProcessCluster, free_ports, process_cluster, wait_until

pytestmark = pytest.mark.slow

BASE = """
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 200
suspect_after_ms = 2000
dead_after_ms = 4000
[anti_entropy]
interval_ms = 0
[conflict_resolution]
strategy = "lww"
[[conflict_resolution.rules]]
prefix = "set/"
resolver = "crdt"
type = "orset"
"""


@pytest.fixture()
def trio() -> Iterator[ProcessCluster]:
    with process_cluster(BASE) as cluster:
        ports = free_ports(3)
        cluster.start("a", ports[0])
        for name, port in zip("bc", ports[1:]):
            cluster.start(name, port, seeds=[cluster.addresses["a"]])
        wait_until(lambda: all(cluster.call(n, "status")["members"]["alive"] == 3 for n in "abc"), 15,
                   "three members everywhere")
        yield cluster


def replicates(cluster: ProcessCluster, src: str, dst: str, key: str, timeout: float = 10.0) -> None:
    cluster.call(src, "put", key=key, value=key)
    wait_until(lambda: (cluster.call(dst, "get", key=key) or {}).get("value") == key, timeout,
               f"{key} written on {src} to reach {dst}")


def dropped(cluster: ProcessCluster, node: str) -> dict[str, int]:
    return cluster.call(node, "status")["dropped"]


def counters(cluster: ProcessCluster, node: str) -> dict[str, int]:
    return cluster.call(node, "info")["counters"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- deep nesting ------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [251, 1000])
def test_a_deeply_nested_value_from_a_client_is_refused_and_the_node_keeps_serving(trio: ProcessCluster,
                                                                                     depth: int) -> None:
    out = trio.cli("put", "k", nested(depth), "--value-json", "--control", trio.controls["a"])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "nesting deeper than 64 levels" in out.stderr or "nested too deeply" in out.stderr, out.stderr
    assert trio.call("a", "get", key="k") is None            # refused means not applied
    replicates(trio, "a", "b", "after-nested")


def test_a_deeply_nested_value_from_a_peer_is_dropped_counted_and_never_stored(trio: ProcessCluster) -> None:
    peer = RawPeer(trio.addresses["b"])
    try:
        template = orjson.dumps(envelope("ack", {"entries": [entry("deep", "VALUE", "mallory/1", 1, now_hlc())],
                                                 "coverage": {}})).decode()
        peer.send_json(template.replace('"VALUE"', nested(300)))   # JSON encoders refuse to write it
        wait_until(lambda: dropped(trio, "b").get("bad_value"), 5, "the nested entry to be dropped as bad_value")
    finally:
        peer.close()
    assert trio.call("b", "get", key="deep") is None
    replicates(trio, "b", "c", "after-deep")
    replicates(trio, "c", "b", "after-deep-back")


# ---- integers the world cannot hold --------------------------------------------------------------
def test_integers_beyond_int64_are_refused_at_the_door(tmp_path: Path) -> None:
    config = BASE + '\n[storage]\nbackend = "sqlite"\npath = "' + str(tmp_path / "{id}.db") + '"\n'
    with process_cluster(config) as cluster:
        ports = free_ports(2)
        cluster.start("a", ports[0])
        cluster.start("b", ports[1], seeds=[cluster.addresses["a"]])
        wait_until(lambda: cluster.call("a", "status")["members"]["alive"] == 2, 10, "two members")
        peer = RawPeer(cluster.addresses["a"])
        try:
            huge_hlc = f'{{"type":"ack","src":"mallory","addr":"tcp://127.0.0.1:9","inc":1,"body":{{"entries":' \
                       f'[["k",1,false,"mallory/1",1,{1 << 63},{{"mallory/1":1}},"",""]],"coverage":{{}}}}}}'
            peer.send_json(huge_hlc)
            claim = f'["a","tcp://127.0.0.1:9",{(1 << 64) - 1},"suspect",0,{{}},"mallory",""]'
            peer.send_json(f'{{"type":"join","src":"mallory","addr":"tcp://127.0.0.1:9","inc":1,"body":{{}},'
                           f'"members":[{claim}]}}')
            peer.send_json(f'{{"type":"join","src":"mallory","addr":"tcp://127.0.0.1:9","inc":{(1 << 64) - 1},'
                           f'"body":{{}}}}')
            wait_until(lambda: dropped(cluster, "a").get("schema", 0) >= 3, 5, "three schema drops")
        finally:
            peer.close()
        status = cluster.call("a", "status")
        assert status["incarnation"] < INT64_MAX and status["task_failures"] == 0
        replicates(cluster, "a", "b", "after-huge")          # the durable flush and the encoder still work
        replicates(cluster, "b", "a", "after-huge-back")


def test_an_incarnation_ahead_of_any_clock_is_refused(trio: ProcessCluster) -> None:
    peer = RawPeer(trio.addresses["a"])
    try:
        absurd = int(time.time() * 1000) + 10 ** 12
        claim = ["b", trio.addresses["b"], absurd, "dead", 0, {}, "mallory", ""]
        peer.send(envelope("join", {}, members=[claim]))
        wait_until(lambda: dropped(trio, "a").get("absurd_incarnation"), 5, "the absurd claim to be dropped")
    finally:
        peer.close()
    members = {m["id"]: m for m in trio.call("a", "members")}
    assert members["b"]["status"] == "alive" and members["b"]["incarnation"] < 10 ** 13
    replicates(trio, "b", "a", "after-absurd")


def test_a_merkle_level_used_as_an_exponent_is_range_checked_first(trio: ProcessCluster) -> None:
    """16 ** 2**31 never finishes: the level must be refused before anything is computed."""
    peer = RawPeer(trio.addresses["a"])
    try:
        body = {"shape": [16, 4], "level": 2 ** 31, "nodes": [1], "hashes": [1]}   # passes the schema
        peer.send(envelope("merkle_sync", body))
        wait_until(lambda: dropped(trio, "a").get("merkle_range"), 5, "the impossible level to be dropped")
    finally:
        peer.close()
    replicates(trio, "b", "a", "after-level")


# ---- claims that cannot lie past the evidence -----------------------------------------------------
def test_a_forged_coverage_claim_cannot_hide_another_nodes_writes(trio: ProcessCluster) -> None:
    first = trio.call("b", "put", key="b/first", value=1)
    replica, counter = first["replica"], first["counter"]
    wait_until(lambda: trio.call("c", "get", key="b/first"), 10, "b's first write at c")
    peer = RawPeer(trio.addresses["c"])
    try:
        for forged in (counter + 1000, 1 << 62):
            peer.send(envelope("ack", {"entries": [], "coverage": {replica: forged}}))
        wait_until(lambda: counters(trio, "c").get("coverage_refused", 0) >= 1 or dropped(trio, "c").get("schema"),
                   5, "the forged coverage to be refused")
    finally:
        peer.close()
    for i in range(3):   # b's next writes still reach c (anti-entropy is off: only the digest sync can)
        replicates(trio, "b", "c", f"b/after-forgery-{i}")


def test_orset_members_survive_a_restart_without_durable_storage(trio: ProcessCluster) -> None:
    for i in range(5):
        trio.call("a", "sadd", key="set/s", member=f"x{i}")
    want = {f"x{i}" for i in range(5)}
    wait_until(lambda: all(set((trio.call(n, "smembers", key="set/s") or {}).get("value", [])) == want for n in "bc"),
               10, "every add everywhere")
    trio.kill("a")
    trio.start("a", free_ports(1)[0])                      # a new life on a new port: alone, empty replica
    trio.call("a", "sadd", key="set/s", member="y")      # a causal write by the new life, before it synced
    trio.call("a", "join", addresses=[trio.addresses["b"]])
    want.add("y")
    wait_until(lambda: all(set((trio.call(n, "smembers", key="set/s") or {}).get("value", [])) == want
                           for n in "abc"), 15, "the old adds and the new one on every replica")


# ---- the control channel takes typed requests only -----------------------------------------------
@pytest.mark.parametrize("req, message", [
    ({"cmd": "block", "peers": "abc"}, "Expected `array`, got `str` - at `peers`"),
    ({"cmd": "put", "key": None, "value": 1}, "Expected `str`, got `null` - at `key`"),
    ({"cmd": "incr", "key": "c", "value": 1.9}, "Expected `int`, got `float` - at `value`"),
    ({"cmd": "put", "value": 1}, "missing required field `key`"),
    ({"cmd": "teleport"}, "unknown command 'teleport'"),
    ({"key": "k"}, "names no command"),
    ({"cmd": "get", "key": "k", "extra": 1}, "unknown field `extra`"),
])
def test_control_requests_are_decoded_strictly(trio: ProcessCluster, req: dict, message: str) -> None:
    with pytest.raises(ControlError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        request(trio.controls["a"], req)
    assert trio.call("a", "status")["node_id"] == "a"


# ---- floods keyed by who sends, not by the connection -----------------------------------------------
def test_a_flooder_that_reconnects_keeps_its_rate_limit() -> None:
    config = BASE + "\n[limits]\npeer_rate = 200.0\npeer_burst = 200\nstranger_rate = 5.0\nstranger_burst = 5\n"
    with process_cluster(config) as cluster:
        ports = free_ports(2)
        cluster.start("a", ports[0])
        cluster.start("b", ports[1], seeds=[cluster.addresses["a"]])
        wait_until(lambda: cluster.call("a", "status")["members"]["alive"] == 2, 10, "two members")
        sent = 0
        for _ in range(10):                  # 10 connections x 300 messages, as the spoofed member "b"
            peer = RawPeer(cluster.addresses["a"])
            for _ in range(300):
                peer.send(envelope("syn", {"mode": "pull", "digest": {}}, src="b", addr=cluster.addresses["b"]))
                sent += 1
            peer.close()
        limited = wait_until(lambda: dropped(cluster, "a").get("rate_limited", 0) >= sent // 2, 10,
                             "most of the flood to be rate limited")
        assert limited
        assert cluster.call("b", "status")["members"]["alive"] == 2   # the real b was not starved
        replicates(cluster, "b", "a", "after-flood")


def test_forged_joins_cannot_grow_the_member_table_without_bound(trio: ProcessCluster) -> None:
    peer = RawPeer(trio.addresses["a"])
    try:
        for i in range(200):
            peer.send(envelope("join", {}, src=f"ghost-{i}", addr=f"tcp://127.0.0.1:{20000 + i}"))
        wait_until(lambda: dropped(trio, "a").get("stranger_rate_limited", 0) >= 100, 5, "joins to be limited")
    finally:
        peer.close()
    members = trio.call("a", "members")
    assert len(members) <= 3 + 64 + 16, len(members)    # the stranger burst, plus what refilled meanwhile


def test_a_frame_beyond_libzmqs_limit_cuts_the_sender_and_is_counted(trio: ProcessCluster) -> None:
    before = trio.call("a", "info")["runtime"].get("inbox_disconnects", 0)
    peer = RawPeer(trio.addresses["a"])
    try:
        peer.send_frames([b"GMQ\x01", b" " * (3 << 20)])   # above 2 x max_frame_bytes: libzmq cuts the session
        wait_until(lambda: trio.call("a", "info")["runtime"].get("inbox_disconnects", 0) > before, 5,
                   "the cut session to be counted")
    finally:
        peer.close()
    replicates(trio, "a", "b", "after-cut")


# ---- acknowledged means kept ------------------------------------------------------------------------
def test_a_majority_acknowledged_write_survives_its_origin_dying(trio: ProcessCluster) -> None:
    result = trio.call("a", "put", key="acked", value="kept", ack="majority", timeout=10)
    assert result["acked"] >= 2
    trio.kill("a", signal.SIGKILL)                       # at once: no gossip round may have run
    wait_until(lambda: all((trio.call(n, "get", key="acked") or {}).get("value") == "kept" for n in "bc"), 10,
               "the acknowledged write on both survivors")


def test_an_impossible_ack_level_fails_before_writing(trio: ProcessCluster) -> None:
    with pytest.raises(ControlError, match="only 3 members"):
        request(trio.controls["a"], {"cmd": "put", "key": "x", "value": 1, "ack": 5})
    assert trio.call("a", "get", key="x") is None


def test_a_tcp_control_endpoint_on_another_interface_needs_a_token(tmp_path: Path) -> None:
    port, control_port = free_ports(2)
    args = [sys.executable, "-m", "gossipmq", "run", "--node-id", "t", "--bind", f"tcp://127.0.0.1:{port}",
            "--control", f"tcp://0.0.0.0:{control_port}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "control_token" in out.stderr and "Traceback" not in out.stderr

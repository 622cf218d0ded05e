"""Operating gossipmq (issue #12), proved against real `gossipctl run` processes on loopback: the
runtime verbs (join, force-leave, tags, monitor, info, version, ls, members filters), `--json` on
every verb, cluster names (the address-reuse merge of the issue, and its control case), container
configuration from the environment, IPv6, and the clean failures (one line, exit 2, no traceback).

Every wait is bounded (`wait_until`, `Stream.next_matching`); the few "stays so" checks observe for
a fixed window while the thing that would break them demonstrably happens (`holds`)."""
from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from gossipmq._version import __version__
from gossipmq.agent import Agent
from gossipmq.transports.control import ControlError, request
from tests.helpers import ProcessCluster, env_without_control, free_ports, process_cluster, wait_until

DEAD_AFTER_S = 1.5
CONFIG = f"""
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 100
suspect_after_ms = 700
dead_after_ms = {int(DEAD_AFTER_S * 1000)}
[gossip]
reap_after_ms = 60000
dead_probe_ms = 500
"""


# ---- helpers ---------------------------------------------------------------------------------------
def ctl(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """One `gossipctl` invocation (GOSSIPMQ_CONTROL/_CONFIG/_CONTROL_TOKEN of the caller removed)."""
    base = {k: v for k, v in env_without_control().items()
            if k not in ("GOSSIPMQ_CONFIG", "GOSSIPMQ_CONTROL_TOKEN", "GOSSIPMQ_CLUSTER")}
    return subprocess.run([sys.executable, "-m", "gossipmq", *args], capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})})


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return orjson.loads(result.stdout)


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str, as_json: bool = False) -> str:
    """Exit 2, exactly one line on stderr naming the problem, no traceback; with --json the stdout
    is one document {"error": ...}. Returns the error line."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    if as_json:
        assert orjson.loads(result.stdout) == {"error": lines[0][len("error: "):]}
    return lines[0]


def members_of(cluster: ProcessCluster, node: str) -> dict[str, str]:
    return {m["id"]: m["status"] for m in cluster.call(node, "members")}


def alive_ids(cluster: ProcessCluster, node: str) -> set[str]:
    return {i for i, s in members_of(cluster, node).items() if s == "alive"}


def holds(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """`predicate` is true at every check during `seconds` (a bounded observation window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.1)


def spawn(cluster: ProcessCluster, node_id: str, args: list[str], env: dict[str, str] | None = None,
          control: str | None = None, token: str | None = None, umask: int = -1) -> None:
    """Start `gossipctl run ARGS` with extra environment (tracked by the cluster, so it is always
    stopped); wait until its control endpoint answers when `control` is given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOSSIPMQ_")}
    log = open(cluster.workdir / f"{node_id}.log", "ab")
    cluster.procs[node_id] = subprocess.Popen([sys.executable, "-m", "gossipmq", "run", *args], stdout=log,
                                              stderr=subprocess.STDOUT, env={**base, **(env or {})},
                                              start_new_session=True, umask=umask)
    log.close()
    if control is not None:
        cluster.controls[node_id] = control
        wait_until(lambda: request(control, {"cmd": "status"}, timeout=0.5, token=token), 15,
                   f"{node_id} to answer on {control}")


class Stream:
    """A streaming `gossipctl ... --json` command; its stdout lines are read as they arrive,
    each stamped with the wall-clock time it reached us."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gossipmq", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env_without_control(),
                                     start_new_session=True)
        self.lines: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.seen: list[Any] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            arrived = time.time()
            try:
                self.lines.put((arrived, orjson.loads(raw)))
            except orjson.JSONDecodeError:
                self.lines.put((arrived, {"not_json": raw}))

    def next_matching(self, predicate: Callable[[Any], bool], timeout: float, what: str) -> tuple[float, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                arrived, item = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(item)
            if predicate(item):
                return arrived, item
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last lines: {self.seen[-8:]!r}")

    def drain(self) -> list[Any]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait()[1])
            except queue.Empty:
                return self.seen

    def close(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@contextmanager
def streaming(*args: str) -> Iterator[Stream]:
    stream = Stream(*args)
    try:
        yield stream
    finally:
        stream.close()


def is_event(item: Any, reason: str, member: str) -> bool:
    event = item.get("event", item)   # monitor wraps events as {"event": ...}; members --watch does not
    return event.get("reason") == reason and event.get("member", {}).get("id") == member


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ---- runtime verbs ------------------------------------------------------------------------------------
def start_pair(cluster: ProcessCluster) -> None:
    """Node a, then b seeded by a; returns once each sees both alive."""
    p1, p2 = free_ports(2)
    cluster.start("a", p1)
    cluster.start("b", p2, seeds=[cluster.addresses["a"]])
    wait_until(lambda: alive_ids(cluster, "a") == alive_ids(cluster, "b") == {"a", "b"}, 10, "a and b joined")


def test_join_makes_two_clusters_one() -> None:
    with process_cluster(CONFIG) as cluster:
        p1, p2, p3, nobody = free_ports(4)
        cluster.start("a1", p1)
        cluster.start("a2", p2, seeds=[cluster.addresses["a1"]])
        cluster.start("b1", p3)
        wait_until(lambda: alive_ids(cluster, "a2") == {"a1", "a2"}, 10, "a1 and a2 joined")
        assert alive_ids(cluster, "b1") == {"b1"}

        # by a name: b1 advertises tcp://127.0.0.1:PORT, not the address dialled
        out = ok_json(ctl("join", f"localhost:{p3}", "--control", cluster.controls["a1"], "--json"))
        assert out["joined"] is True and out["new_members"] == ["b1"] and out["members"] >= 2
        everyone = {"a1", "a2", "b1"}
        wait_until(lambda: all(alive_ids(cluster, n) == everyone for n in everyone), 10, "one cluster of three")

        text = ctl("join", cluster.addresses["a2"], "--control", cluster.controls["b1"])
        assert text.returncode == 0 and text.stdout.startswith("joined: 3 members known"), text
        refused = ctl("join", f"tcp://127.0.0.1:{nobody}", "--timeout", "0.5", "--json",
                      "--control", cluster.controls["a1"])
        assert_clean_failure(refused, "no answer from", as_json=True)


def test_force_leave_turns_a_killed_member_left_everywhere() -> None:
    with process_cluster(CONFIG) as cluster:
        ports = free_ports(3)
        cluster.start("a", ports[0])
        for name, port in zip(("b", "c"), ports[1:], strict=True):
            cluster.start(name, port, seeds=[cluster.addresses["a"]])
        wait_until(lambda: all(len(alive_ids(cluster, n)) == 3 for n in "abc"), 10, "3 alive members")

        refused = ctl("force-leave", "b", "--control", cluster.controls["a"], "--json")
        assert_clean_failure(refused, "'b' is alive", as_json=True)
        assert_clean_failure(ctl("force-leave", "nobody", "--control", cluster.controls["a"]), "no member 'nobody'")

        cluster.kill("c")
        wait_until(lambda: members_of(cluster, "a")["c"] == "dead", 10, "a marks the killed c dead")
        out = ok_json(ctl("force-leave", "c", "--control", cluster.controls["a"], "--json"))
        assert out == {"member": "c", "status": "left"}
        wait_until(lambda: all(members_of(cluster, n)["c"] == "left" for n in "ab"), 5, "c left on a and b")
        # the detectors go on running (b's would declare c dead again): c stays left, not dead
        holds(lambda: all(members_of(cluster, n)["c"] == "left" for n in "ab"), 2 * DEAD_AFTER_S, "c stays left")
        left = ok_json(ctl("members", "--status", "left", "--control", cluster.controls["b"], "--json"))
        assert [m["id"] for m in left] == ["c"]
        assert "member c left" in cluster.log("b")


def test_tags_set_and_delete_reach_peers_as_updated_events() -> None:
    with process_cluster(CONFIG) as cluster:
        start_pair(cluster)
        ctl_a, ctl_b = cluster.controls["a"], cluster.controls["b"]

        with streaming("members", "--watch", "--json", "--control", ctl_b) as watch:
            _, first = watch.next_matching(lambda item: "members" in item, 10, "the current view")
            assert {m["id"] for m in first["members"]} == {"a", "b"}

            out = ok_json(ctl("tags", "set", "zone=eu", "rack=r1", "--control", ctl_a, "--json"))
            assert out["tags"] == {"zone": "eu", "rack": "r1"} and isinstance(out["incarnation"], int)
            watch.next_matching(lambda e: is_event(e, "updated", "a") and e["member"]["tags"] == out["tags"], 5,
                                "b's updated event with a's new tags")
            tagged = ok_json(ctl("members", "--tag", "zone=eu", "--tag", "rack=r1", "--control", ctl_b, "--json"))
            assert [m["id"] for m in tagged] == ["a"]

            out = ok_json(ctl("tags", "delete", "rack", "--control", ctl_a, "--json"))
            assert out["tags"] == {"zone": "eu"}
            watch.next_matching(lambda e: is_event(e, "updated", "a") and e["member"]["tags"] == {"zone": "eu"}, 5,
                                "b's updated event without rack")
            assert ok_json(ctl("members", "--tag", "rack=r1", "--control", ctl_b, "--json")) == []

            # the watched node dies: the watch ends with exit 2 and a last JSON line {"error": ...}
            cluster.kill("b")
            _, last = watch.next_matching(lambda item: "error" in item, 5, "the watch's error line")
            assert "stale" in last["error"] and watch.proc.wait(timeout=5) == 2
            assert not [x for x in watch.drain() if "not_json" in x]

        assert_clean_failure(ctl("tags", "set", "gmq.key=x", "--control", ctl_a, "--json"), "gmq.", as_json=True)
        assert_clean_failure(ctl("tags", "delete", "gmq.curve", "--control", ctl_a), "managed by gossipmq")
        assert_clean_failure(ctl("tags", "set", "novalue", "--control", ctl_a), "NAME=VALUE")
        assert cluster.call("a", "members")[0]["tags"] == {"zone": "eu"}


def test_the_agent_refuses_reserved_tags_too(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_ports(1)[0]
        agent = Agent.from_config(None, node_id="solo", bind=f"tcp://127.0.0.1:{port}",
                                  control=f"ipc://{tmp_path}/solo.ctl")
        async with agent:
            for change in (agent.set_tags({"gmq.curve": "forged"}), agent.delete_tags(["gmq.curve"])):
                with pytest.raises(ValueError, match="managed by gossipmq"):
                    await change
            assert await agent.set_tags({"zone": "eu"}) == {"zone": "eu"}
    asyncio.run(scenario())


def test_monitor_pushes_logs_and_events_as_they_happen() -> None:
    with process_cluster(CONFIG) as cluster:
        start_pair(cluster)
        ctl_a = cluster.controls["a"]
        with streaming("monitor", "--events", "--json", "--level", "debug", "--control", ctl_a) as debug, \
                streaming("monitor", "--json", "--control", ctl_a) as info:
            for stream in (debug, info):
                stream.next_matching(lambda item: item.get("result", {}).get("monitoring") == "a", 10, "the ack")

            # --level debug: a local write is logged at debug level and reaches the debug monitor
            assert ctl("put", "color", "blue", "--control", ctl_a).returncode == 0
            debug.next_matching(lambda item: item.get("log", {}).get("level") == "debug"
                                and "color" in item["log"]["message"], 5, "the debug line of the write")

            # the node keeps serving other clients while two monitors are attached
            started = time.monotonic()
            assert cluster.call("a", "status")["node_id"] == "a"
            assert time.monotonic() - started < 1.0

            # kill b: the failed event and its log line are pushed the moment a declares b dead
            killed = time.time()
            cluster.kill("b")
            arrived, item = debug.next_matching(lambda e: is_event(e, "failed", "b"), 10, "the failed event")
            event = item["event"]
            assert event["member"]["status"] == "dead" and event["previous"] == "suspect"
            assert arrived - killed < DEAD_AFTER_S + 2.0, "failed later than the detection time explains"
            # pushed, not polled: it reached us well within the server's 1-s poll tick and the stream's
            # 2-s heartbeat after the node recorded it (measured: a few milliseconds)
            assert arrived - event["time"] < 0.3, f"event took {arrived - event['time']:.3f}s to arrive"
            info.next_matching(lambda item: "member b failed" in item.get("log", {}).get("message", ""), 5,
                               "the info monitor's failed log line")
            info_lines = info.drain()
            assert not [x for x in info_lines if "event" in x or x.get("log", {}).get("level") == "debug"]
            assert not [x for x in debug.drain() if "heartbeat" in x or "not_json" in x]
        # the node's own stderr kept its --log-level (info) while a debug monitor was attached
        assert " DEBUG " not in cluster.log("a")


def test_info_version_ls_members_filters_and_ack() -> None:
    with process_cluster(CONFIG) as cluster:
        start_pair(cluster)
        ctl_a, ctl_b = cluster.controls["a"], cluster.controls["b"]

        info = ok_json(ctl("info", "--control", ctl_a, "--json"))
        assert info["version"] == __version__ and info["node_id"] == "a" and info["cluster"] == ""
        assert info["strategies"] == {"peer_selection": "uniform", "dissemination": "hybrid",
                                      "failure_detection": "heartbeat", "conflict_resolution": "lww",
                                      "security": "none"}
        assert info["uptime_s"] > 0 and info["counters"]["in.syn"] > 0 and info["runtime"]["bytes_in"] > 0
        text = ctl("info", "--control", ctl_a).stdout
        assert "dissemination=hybrid, failure_detection=heartbeat" in text and f"gossipmq   {__version__}" in text

        assert ok_json(ctl("version", "--json")) == {"gossipctl": __version__}
        both = ok_json(ctl("version", "--control", ctl_a, "--json"))
        assert both["gossipctl"] == __version__ and both["node"]["version"] == __version__
        assert ctl("--version").stdout.strip() == f"gossipctl {__version__}"

        for key in ("users/2", "users/1", "orders/1"):
            assert ctl("put", key, "x", "--control", ctl_a).returncode == 0
        wait_until(lambda: ctl("ls", "--control", ctl_b).stdout.split() == ["orders/1", "users/1", "users/2"], 5,
                   "b lists every key, sorted")
        assert ok_json(ctl("ls", "users/", "--control", ctl_b, "--json")) == {"prefix": "users/",
                                                                             "keys": ["users/1", "users/2"]}

        assert ctl("tags", "set", "role=cache", "--control", ctl_b).returncode == 0
        wait_until(lambda: ok_json(ctl("members", "--status", "alive", "--tag", "role=cache", "--control", ctl_a,
                                       "--json")), 5, "b's tag seen by a")
        cached = ok_json(ctl("members", "--status", "alive", "--tag", "role=cache", "--control", ctl_a, "--json"))
        assert [m["id"] for m in cached] == ["b"]
        assert ok_json(ctl("members", "--status", "dead", "--status", "left", "--control", ctl_a, "--json")) == []

        acked = ok_json(ctl("put", "important", "1", "--ack", "all", "--control", ctl_a, "--json"))
        assert acked["acked"] == 2 and acked["acked_by"] == ["b"]
        assert cluster.call("b", "get", key="important")["value"] == "1"   # held by b when put returned
        assert_clean_failure(ctl("put", "k", "v", "--ack", "3", "--control", ctl_a, "--json"), "needs 3 copies",
                             as_json=True)
        assert_clean_failure(ctl("put", "k", "v", "--ack", "most", "--control", ctl_a), "--ack 'most'")


def test_load_writes_a_file_of_keys_in_batches(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    flags.write_bytes(orjson.dumps({f"flags/{i}": {"on": i % 2 == 0} for i in range(250)}, option=orjson.OPT_INDENT_2))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"key": "a", "value": 1}\n\n{"key": "big", "value": 9223372036854775813}\n'
                    '{"key": "c", "value": [1, 2]}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "value": 1}\nnot json\n')
    with process_cluster(CONFIG) as cluster:
        start_pair(cluster)
        ctl_a = cluster.controls["a"]

        loaded = ok_json(ctl("load", str(flags), "--batch", "100", "--ack", "all", "--control", ctl_a, "--json"))
        assert loaded == {"written": 250, "failed": [], "acked": 2}
        assert cluster.call("b", "get", key="flags/249")["value"] == {"on": False}   # held by b when load returned

        partly = ctl("load", str(rows), "--control", ctl_a)   # the refused write fails alone, named
        assert partly.returncode == 1 and "2 of 3 keys written" in partly.stdout, partly
        assert "refused: 'big': the value holds an integer outside the 64-bit range" in partly.stderr
        assert cluster.call("a", "get", key="c")["value"] == [1, 2] and cluster.call("a", "get", key="big") is None
        assert_clean_failure(ctl("load", str(bad), "--control", ctl_a), "bad.jsonl:2: not JSON")
        assert_clean_failure(ctl("load", str(tmp_path / "nothing.json"), "--control", ctl_a), "cannot read")


CLIENT_VERBS = [["put", "k", "v"], ["get", "k"], ["delete", "k"], ["incr", "n"], ["sadd", "s", "m"],
                ["srem", "s", "m"], ["smembers", "s"], ["ls"], ["members"], ["members", "--watch"], ["status"],
                ["info"], ["join", "127.0.0.1:1"], ["force-leave", "x"], ["tags", "set", "a=b"],
                ["tags", "delete", "a"], ["monitor"], ["version"], ["leave"]]


def test_every_verb_speaks_json_on_success_and_on_failure(tmp_path: Path) -> None:
    gone = f"ipc://{tmp_path}/nobody.ctl"
    for verb in CLIENT_VERBS:
        result = ctl(*verb, "--control", gone, "--json")
        assert_clean_failure(result, "no such socket file", as_json=True)
    with process_cluster(CONFIG) as cluster:
        cluster.start("a", free_ports(1)[0])
        ctl_a = cluster.controls["a"]
        for verb in (["put", "k", "v"], ["get", "k"], ["ls"], ["members"], ["status"], ["info"], ["version"],
                     ["tags", "set", "a=b"], ["tags", "delete", "a"], ["delete", "k"]):
            assert isinstance(ok_json(ctl(*verb, "--control", ctl_a, "--json")), dict | list), verb
        lines = ctl("monitor", "--duration", "1", "--events", "--control", ctl_a, "--json").stdout.splitlines()
        assert lines and all(isinstance(orjson.loads(line), dict) for line in lines)
        assert ok_json(ctl("leave", "--control", ctl_a, "--json")) == {"node_id": "a", "leaving": True}
        cluster.procs["a"].wait(timeout=10)


def test_shell_completion_is_enabled() -> None:
    helptext = ctl("--help").stdout
    assert "--install-completion" in helptext and "--show-completion" in helptext
    # typer guesses the shell from the parent processes; name it, so the test does not depend on
    # whether pytest runs under a shell (an orphaned background run has none).
    script = ctl("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "complete" in script.stdout


# ---- cluster identity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("b_cluster", ["beta", "alpha"], ids=["other-name-never-merges", "same-name-merges"])
def test_a_new_cluster_on_a_dead_members_address(b_cluster: str) -> None:
    """Issue #12's data-loss path: cluster A (a1, a2) loses a2; a new one-node cluster starts on
    a2's old address and writes the same key. Named differently, the two never merge; with the
    same name (the control case) a1's dead-member probes absorb it and B's value wins."""
    with process_cluster(CONFIG) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a1", p1, extra=["--cluster", "alpha"])
        cluster.start("a2", p2, seeds=[cluster.addresses["a1"]], extra=["--cluster", "alpha"])
        cluster.call("a1", "put", key="owner", value="A")
        wait_until(lambda: cluster.call("a2", "get", key="owner"), 10, "owner=A on a2")
        cluster.kill("a2")
        wait_until(lambda: members_of(cluster, "a1")["a2"] == "dead", 10, "a1 marks a2 dead")

        b1_ctl = f"ipc://{cluster.workdir}/b1.ctl"
        spawn(cluster, "b1", ["--config", str(cluster.config_path), "--node-id", "b1",
                              "--bind", cluster.addresses["a2"], "--control", b1_ctl],
              env={"GOSSIPMQ_CLUSTER": b_cluster}, control=b1_ctl)
        assert cluster.call("b1", "info")["cluster"] == b_cluster   # read from GOSSIPMQ_CLUSTER
        cluster.call("b1", "put", key="owner", value="B")   # later HLC: wins under lww if they merge

        if b_cluster == "alpha":
            wait_until(lambda: "b1" in alive_ids(cluster, "a1") and "a1" in alive_ids(cluster, "b1"), 10,
                       "the same-named clusters merge")
            wait_until(lambda: cluster.call("a1", "get", key="owner")["value"] == "B", 10, "B's value on a1")
            return
        # a1 keeps contacting a2's old address (gossip to the dead) and b1 drops every one of them
        wait_until(lambda: cluster.call("b1", "status")["dropped"].get("wrong_cluster", 0) >= 4, 10,
                   "b1 dropping a1's messages as wrong_cluster")
        holds(lambda: members_of(cluster, "a1") == {"a1": "alive", "a2": "dead"}
              and members_of(cluster, "b1") == {"b1": "alive"}, 2.0, "the clusters stay apart")
        assert cluster.call("a1", "get", key="owner")["value"] == "A"
        assert cluster.call("b1", "get", key="owner")["value"] == "B"
        status = ok_json(ctl("status", "--control", b1_ctl, "--json"))
        assert status["dropped"]["wrong_cluster"] >= 4
        assert "belongs to cluster 'alpha', this node to 'beta'" in cluster.log("b1")


# ---- configuration for containers ---------------------------------------------------------------------
def test_every_run_flag_reads_its_environment_variable_and_logs_are_json() -> None:
    with process_cluster(CONFIG) as cluster:
        p_seed, p_env, p_nobody = free_ports(3)
        cluster.start("s", p_seed, extra=["--cluster", "containers"])
        env_ctl = f"ipc://{cluster.workdir}/e.ctl"
        env = {
            "GOSSIPMQ_CONFIG": str(cluster.config_path),
            "GOSSIPMQ_NODE_ID": "e",
            "GOSSIPMQ_BIND": f"tcp://127.0.0.1:{p_env}",
            "GOSSIPMQ_ADVERTISE": f"tcp://localhost:{p_env}",
            "GOSSIPMQ_SEEDS": f"127.0.0.1:{p_nobody}, {cluster.addresses['s']}",
            "GOSSIPMQ_CONTROL": env_ctl,
            "GOSSIPMQ_CLUSTER": "containers",
            "GOSSIPMQ_LOG_LEVEL": "debug",
            "GOSSIPMQ_LOG_FORMAT": "json",
            "GOSSIPMQ_CONTROL_TOKEN": "s3cret",
            "GOSSIPMQ_DISSEMINATION__STRATEGY": "pull",          # the generic <TABLE>__<KEY> override
            "GOSSIPMQ_NODE__TAGS": '{ role = "env" }',
        }
        spawn(cluster, "e", [], env=env, control=env_ctl, token="s3cret")

        info = request(env_ctl, {"cmd": "info"}, token="s3cret")
        assert (info["node_id"], info["address"], info["bind"], info["cluster"]) == (
            "e", f"tcp://localhost:{p_env}", f"tcp://127.0.0.1:{p_env}", "containers")
        assert info["strategies"]["dissemination"] == "pull" and info["tags"] == {"role": "env"}
        assert info["seeds"] == [f"tcp://127.0.0.1:{p_nobody}", cluster.addresses["s"]]
        wait_until(lambda: {m["id"]: (m["address"], m["tags"]) for m in cluster.call("s", "members")
                            if m["status"] == "alive"}.get("e") == (f"tcp://localhost:{p_env}", {"role": "env"}),
                   10, "s sees e at its advertised address with its tags")
        with pytest.raises(ControlError, match="needs its access token"):
            request(env_ctl, {"cmd": "status"})
        client_env = {"GOSSIPMQ_CONTROL": env_ctl, "GOSSIPMQ_CONTROL_TOKEN": "s3cret"}
        assert ok_json(ctl("status", "--json", env=client_env))["node_id"] == "e"

        cluster.call("s", "put", key="from-s", value=1)
        wait_until(lambda: request(env_ctl, {"cmd": "get", "key": "from-s"}, token="s3cret"), 5, "from-s on e")
        records = [orjson.loads(line) for line in cluster.log("e").splitlines() if line.strip()]
        assert records and all({"node_id", "level", "message", "time"} <= set(r) for r in records)
        assert {r["node_id"] for r in records} == {"e"}
        assert {"debug", "info"} <= {r["level"].lower() for r in records}
        assert any("listening on" in r["message"] for r in records)


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_end_to_end() -> None:
    with process_cluster(CONFIG) as cluster:
        p1, p2, p_ctl = free_ports(3)
        v1, v2 = f"tcp://[::1]:{p1}", f"tcp://[::1]:{p2}"
        ctl1, ctl2 = f"ipc://{cluster.workdir}/v1.ctl", f"tcp://[::1]:{p_ctl}"   # loopback: no token needed
        base = ["--config", str(cluster.config_path)]
        spawn(cluster, "v1", [*base, "--node-id", "v1", "--bind", v1, "--control", ctl1], control=ctl1)
        spawn(cluster, "v2", [*base, "--node-id", "v2", "--bind", v2, "--seed", f"[::1]:{p1}", "--control", ctl2],
              control=ctl2)
        wait_until(lambda: alive_ids(cluster, "v1") == {"v1", "v2"}, 10, "v2 joined v1 over IPv6")
        assert ctl("put", "six", "v6", "--control", ctl1).returncode == 0
        wait_until(lambda: ctl("get", "six", "--control", ctl2).stdout.strip() == "v6", 5, "six on v2")
        status = ok_json(ctl("status", "--control", ctl2, "--json"))
        assert status["address"] == v2 and status["members"]["alive"] == 2
        members = ok_json(ctl("members", "--control", ctl2, "--json"))
        assert {m["id"]: m["address"] for m in members} == {"v1": v1, "v2": v2}
        assert v1 in ctl("members", "--control", ctl2).stdout


# ---- clean failures ------------------------------------------------------------------------------------
def test_bind_failures_are_one_line() -> None:
    with process_cluster(CONFIG) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a", p1)
        base = ["run", "--config", str(cluster.config_path), "--node-id", "x"]
        x_ctl = f"ipc://{cluster.workdir}/x.ctl"
        busy = ctl(*base, "--bind", cluster.addresses["a"], "--control", x_ctl)
        assert_clean_failure(busy, "cannot bind", "Address already in use")
        assert not (cluster.workdir / "x.ctl").exists()   # nothing left behind
        for bad in ("tcp://nonsense", "tcp://127.0.0.1:99999", "udp://127.0.0.1:5", "tcp://[::1"):
            assert_clean_failure(ctl(*base, "--bind", bad, "--control", x_ctl), "bind", bad)
        taken = ctl(*base, "--bind", f"tcp://127.0.0.1:{p2}", "--control", cluster.controls["a"])
        assert_clean_failure(taken, "in use by a running node")
        taken = ctl(*base, "--bind", f"tcp://127.0.0.1:{p2}", "--control", cluster.addresses["a"])
        assert_clean_failure(taken, f"cannot bind control endpoint {cluster.addresses['a']}", "already in use")
        assert cluster.call("a", "status")["node_id"] == "a"   # the first node was left alone


def test_stale_ipc_control_socket_fails_at_once_and_is_replaced() -> None:
    with process_cluster(CONFIG) as cluster:
        p1, p2 = free_ports(2)
        cluster.start("a", p1)
        cluster.kill("a")
        path = cluster.workdir / "a.ctl"
        assert path.exists()   # kill -9 leaves the socket file behind
        started = time.monotonic()
        result = ctl("status", "--control", cluster.controls["a"], "--json")
        assert time.monotonic() - started < 3.0   # the client process itself included; the check is instant
        assert_clean_failure(result, "stale", as_json=True)

        spawn(cluster, "fresh", ["--config", str(cluster.config_path), "--node-id", "fresh",
                                 "--bind", f"tcp://127.0.0.1:{p2}", "--control", cluster.controls["a"]],
              control=cluster.controls["a"])
        assert ok_json(ctl("status", "--control", cluster.controls["a"], "--json"))["node_id"] == "fresh"


def test_control_socket_is_private_even_under_umask_000() -> None:
    with process_cluster(CONFIG) as cluster:
        control = f"ipc://{cluster.workdir}/open.ctl"
        spawn(cluster, "open", ["--config", str(cluster.config_path), "--node-id", "open",
                                "--bind", f"tcp://127.0.0.1:{free_ports(1)[0]}", "--control", control],
              control=control, umask=0)
        assert stat.S_IMODE(os.stat(cluster.workdir / "open.ctl").st_mode) == 0o600


def test_tcp_control_off_loopback_needs_a_token() -> None:
    with process_cluster(CONFIG) as cluster:
        p_node, p_ctl = free_ports(2)
        args = ["--config", str(cluster.config_path), "--node-id", "t", "--bind", f"tcp://127.0.0.1:{p_node}",
                "--control", f"tcp://0.0.0.0:{p_ctl}"]
        assert_clean_failure(ctl("run", *args), "reachable from other hosts", "control_token")

        local = f"tcp://127.0.0.1:{p_ctl}"
        spawn(cluster, "t", [*args, "--token", "s3cret"], control=local, token="s3cret")
        assert_clean_failure(ctl("status", "--control", local, "--json"), "needs its access token", as_json=True)
        assert_clean_failure(ctl("status", "--control", local, "--token", "guess"), "wrong access token")
        assert ok_json(ctl("status", "--control", local, "--token", "s3cret", "--json"))["node_id"] == "t"
        assert ok_json(ctl("info", "--control", local, "--json",
                           env={"GOSSIPMQ_CONTROL_TOKEN": "s3cret"}))["control"] == f"tcp://0.0.0.0:{p_ctl}"


def test_help_texts_show_their_table_names() -> None:
    def helptext(*command: str) -> str:
        return " ".join(ctl(*command, "--help").stdout.split())   # the help is wrapped at 80 columns
    assert "(overrides [node] id)" in helptext("run") and "(overrides [metrics] listen" in helptext("run")
    assert "the [security] trust_dir of --config" in helptext("keys", "list")
    assert "its [node] table is ignored" in helptext("simulate")

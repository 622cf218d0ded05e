"""An adversarial peer and an adversarial operator, generated (hypothesis), against two real
`gossipctl run` processes over real sockets. Frames carry extreme integers, deep nesting, huge
collections, forged coverage and claims, unicode and empty ids, spoofed senders and replays;
control requests carry the same against the typed control channel. After every example the
node answers `status`, no handler, timer, encoder or task failed, and - every few examples -
a write still replicates both ways. Bounded: ~80 examples, every wait has a deadline."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipmq.core.codec import HEADER
from gossipmq.transports.control import ControlError, request
from tests._wire import RawPeer
from tests.helpers import ProcessCluster, free_ports, process_cluster, wait_until

pytestmark = pytest.mark.slow

CONFIG = """
[dissemination]
strategy = "hybrid"
fanout = 1
interval_ms = 100
[failure_detection]
strategy = "heartbeat"
interval_ms = 200
suspect_after_ms = 3000
dead_after_ms = 6000
[limits]
stranger_burst = 100000
stranger_rate = 100000.0
"""
FAILURES = ("task_failures", "timer_errors", "encode_errors")

# ---- generators ---------------------------------------------------------------------------------
extreme_ints = st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -(2 ** 63),
                                -(2 ** 70), 10 ** 30]) | st.integers()
ids = st.sampled_from(["", "a", "b", "mallory", "é" * 40, "\x00", "n/1/2", "x" * 300, "🙂"]) | st.text(max_size=20)
keys = st.text(max_size=30) | st.sampled_from(["", "k", "x" * 2000])


@st.composite
def deep(draw: Any) -> Any:
    depth = draw(st.sampled_from([1, 10, 64, 65, 200, 255, 300]))
    value: Any = draw(st.integers() | st.text(max_size=5))
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


values = st.recursive(st.none() | st.booleans() | extreme_ints | st.floats() | st.text(max_size=20),
                      lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                      max_leaves=10) | deep() | st.lists(st.integers(), min_size=1000, max_size=3000)
vv = st.dictionaries(ids, extreme_ints, max_size=5) | st.dictionaries(st.text(min_size=1, max_size=6), st.just(1),
                                                                       min_size=4000, max_size=5000)
entries = st.lists(st.tuples(keys, values, st.booleans(), ids, extreme_ints, extreme_ints, vv,
                             st.sampled_from(["", "forged"]), st.sampled_from(["", "mv", "crdt:orset", "??"]))
                   .map(list), max_size=4)
claims = st.lists(st.tuples(ids, ids, extreme_ints, st.sampled_from(["alive", "suspect", "dead", "left", "??"]),
                            extreme_ints, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                            ids, st.just("")).map(list), max_size=4)
bodies = st.one_of(
    st.just(("join", {})), st.just(("leave", {})),
    st.builds(lambda m: ("join_ack", {"members": m}), claims),
    st.builds(lambda mode, d: ("syn", {"mode": mode, "digest": d}), st.sampled_from(["push", "pull", "push-pull", "?"]),
              vv),
    st.builds(lambda d, e, c: ("syn_ack", {"digest": d, "entries": e, "coverage": c}), st.none() | vv, entries, vv),
    st.builds(lambda e, c: ("ack", {"entries": e, "coverage": c}), entries, vv),
    st.builds(lambda t, e: ("replicate", {"token": t, "entries": e}), extreme_ints, entries),
    st.builds(lambda s, t: ("ping", {"seq": s, "target": t}), extreme_ints, ids),
    st.builds(lambda lvl, n, h: ("merkle_sync", {"shape": [16, 4], "level": lvl, "nodes": n, "hashes": h}),
              extreme_ints, st.lists(extreme_ints, max_size=5), st.lists(extreme_ints, max_size=5)),
    st.builds(lambda t: (t, {}), st.text(max_size=12)),
)
frames = st.builds(
    lambda body, src, inc, members, rumors, cluster: {"type": body[0], "src": src, "addr": "tcp://127.0.0.1:9",
                                                      "inc": inc, "body": body[1], "members": members,
                                                      "rumors": rumors, "cluster": cluster},
    bodies, ids, extreme_ints, claims, entries, st.sampled_from(["", "other"]))
requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(["put", "put_many", "get", "delete", "incr", "sadd", "srem", "smembers", "keys", "members",
                             "status", "join", "force_leave", "tags_set", "tags_delete", "block", "events",
                             "nope", ""])},
    optional={"key": keys | extreme_ints | st.none(), "value": values, "member": ids | extreme_ints,
              "context": st.text(max_size=20), "field": ids | st.none(), "ack": st.sampled_from(["all", "x", 0, 99]),
              "addresses": st.lists(ids, max_size=3), "tags": st.dictionaries(ids, ids, max_size=3),
              "keys": st.lists(ids, max_size=3), "after": extreme_ints, "peers": ids | st.lists(ids, max_size=2),
              "items": st.lists(st.tuples(keys | extreme_ints, values) | extreme_ints, max_size=3) | extreme_ints,
              "verbose": st.booleans() | extreme_ints, "prefix": ids | extreme_ints, "id": extreme_ints})


def dumps(doc: Any) -> bytes:
    """JSON with big integers and deep nesting written as given (what a hostile peer can send)."""
    return json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ---- the cluster ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair() -> Iterator[ProcessCluster]:
    with process_cluster(CONFIG) as cluster:
        ports = free_ports(2)
        cluster.start("a", ports[0])
        cluster.start("b", ports[1], seeds=[cluster.addresses["a"]])
        wait_until(lambda: cluster.call("a", "status")["members"]["alive"] == 2, 10, "two members")
        cluster.written = 0  # type: ignore[attr-defined]
        yield cluster


def healthy(cluster: ProcessCluster, replicate: bool) -> None:
    for node in ("a", "b"):
        try:
            status = cluster.call(node, "status", timeout=10.0)   # generous: the machine may be loaded
        except ControlError as exc:
            raise AssertionError(f"{node} stopped answering ({exc}); its log ends:\n{cluster.log(node)[-4000:]}") from None
        assert not any(status.get(name) for name in FAILURES), (node, {n: status.get(n) for n in FAILURES})
        assert not status["dropped"].get("handler_error"), status["dropped"]
    if replicate:
        cluster.written += 1  # type: ignore[attr-defined]
        for src, dst in (("a", "b"), ("b", "a")):
            key = f"probe/{src}/{cluster.written}"  # type: ignore[attr-defined]
            cluster.call(src, "put", key=key, value=1)
            wait_until(lambda: cluster.call(dst, "get", key=key), 10, f"{key} to replicate to {dst}")


@given(st.lists(frames, min_size=1, max_size=4), st.booleans())
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_frames_never_deafen_or_corrupt_a_node(pair: ProcessCluster, batch: list[dict[str, Any]],
                                                       replay: bool) -> None:
    peer = RawPeer(pair.addresses["a"])
    try:
        for doc in batch:
            peer.send_frames([HEADER, dumps(doc)])
            if replay:
                peer.send_frames([HEADER, dumps(doc)])
        time.sleep(0.02)   # let them arrive before we check (checking is what is bounded, not this)
    finally:
        peer.close()
    healthy(pair, replicate=len(batch) > 2 or replay)


@given(requests)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_control_requests_get_an_answer_and_change_nothing_they_should_not(pair: ProcessCluster,
                                                                                   req: dict[str, Any]) -> None:
    if req.get("cmd") in ("join", "block", "force_leave"):
        req = {**req, "addresses": [], "peers": []}   # never partition or shrink our own test cluster
    try:
        request(pair.controls["a"], json.loads(dumps(req)) if _jsonable(req) else {"cmd": "status"}, timeout=8.0)
    except ControlError as exc:
        assert str(exc) and "\n" not in str(exc)           # one line naming the problem
    pair.call("a", "block", peers=[])
    healthy(pair, replicate=req.get("cmd") in ("put", "tags_set", "delete"))


def _jsonable(req: dict[str, Any]) -> bool:
    try:
        json.loads(dumps(req))
        return True
    except (ValueError, RecursionError):
        return False

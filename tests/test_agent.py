"""`gossipmq.Agent` over real ZeroMQ sockets on 127.0.0.1: the embedding API of docs/embedding.md.

Every wait is bounded and waits for a condition (a member view, a key, an event), never for a
fixed time. Each agent gets its own ports (`free_ports`) and its own control endpoint in a short
private directory, so several people can run these tests on one machine.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq

import gossipmq
from gossipmq.core.messages import origin_node
from gossipmq import Agent, BatchResult, EventsLost, GossipError, KeyEvent, MemberEvent, RuntimeFailure, WriteResult, hookimpl
from gossipmq.core.plugins import make_plugin_manager
from gossipmq.transports.control import WRITE_SLICE, request
from gossipmq.transports.memory import MemoryNetwork, make_nodes
from tests.helpers import config, free_ports, registry

FAST: dict[str, dict[str, Any]] = {
    "dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 100},
    "failure_detection": {"strategy": "heartbeat", "interval_ms": 200, "suspect_after_ms": 1500,
                          "dead_after_ms": 3000},
    "conflict_resolution": {"strategy": "lww", "rules": [
        {"prefix": "doc/", "resolver": "multi_value"},
        {"prefix": "visits/", "resolver": "crdt", "type": "pncounter"},
        {"prefix": "cart/", "resolver": "crdt", "type": "orset"},
    ]},
}
WAIT = 10.0   # seconds any one condition may take on a loaded 2-core machine


# ---- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def ctl_dir() -> Iterator[Path]:
    """A short private directory for ipc control endpoints (a unix socket path has ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="gmqa-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(coro: Coroutine[Any, Any, Any], timeout: float = 90.0) -> Any:
    """Run one scenario in a fresh event loop, bounded as a whole."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def tables(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    doc = {k: dict(v) for k, v in FAST.items()}
    for table, values in extra.items():
        doc.setdefault(table, {}).update(values)
    return doc


def make(node_id: str, port: int, ctl: Path, doc: dict[str, Any] | None = None, **kw: Any) -> Agent:
    return Agent.from_config(doc if doc is not None else tables(), node_id=node_id, bind=f"tcp://127.0.0.1:{port}",
                             control=f"ipc://{ctl}/{node_id}.ctl", **kw)


async def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll `predicate` (cheap, local) until it holds; fail naming `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(0.02)


async def next_event(events: AsyncIterator[Any], where: Callable[[Any], bool] = lambda e: True,
                     timeout: float = WAIT) -> Any:
    """The next event satisfying `where` (others are skipped), within `timeout`."""
    async def find() -> Any:
        async for event in events:
            if where(event):
                return event
        raise AssertionError("the subscription ended")
    return await asyncio.wait_for(find(), timeout)


def sees_alive(agent: Agent, n: int) -> bool:
    return sum(1 for m in agent.members(["alive"])) == n


@asynccontextmanager
async def cluster(ctl: Path, n: int, doc: dict[str, Any] | None = None,
                  plugins: dict[int, list[object]] | None = None) -> AsyncIterator[list[Agent]]:
    """n agents, each joined through the first; yields once every one sees all n alive."""
    ports = free_ports(n)
    agents = [make(f"n{i}", port, ctl, doc, plugins=(plugins or {}).get(i, ())) for i, port in enumerate(ports)]
    async with AsyncExitStack() as stack:
        for agent in agents:
            await stack.enter_async_context(agent)
        for agent in agents[1:]:
            await agent.join([agents[0].address])
        await until(lambda: all(sees_alive(a, n) for a in agents), f"{n} agents to see each other alive")
        yield agents


# ---- the public face -----------------------------------------------------------------------------
def test_the_package_exports_the_embedding_api() -> None:
    for name in ("Agent", "RuntimeFailure", "WriteResult", "KeyEvent", "MemberEvent", "MemberInfo", "EventsLost",
                 "hookimpl", "Config", "GossipError"):
        assert name in gossipmq.__all__ and getattr(gossipmq, name) is not None
    assert issubclass(RuntimeFailure, GossipError)
    with pytest.raises(AttributeError):
        gossipmq.Nope  # type: ignore[attr-defined]  # noqa: B018


# ---- convergence and the verbs -------------------------------------------------------------------
def test_two_agents_converge_and_every_verb_works(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            put = await a.put("color", "red")
            assert isinstance(put, WriteResult) and put.origin == "n0" and put.value == "red" and put.acked == 1
            assert a.get("color") == "red"
            await until(lambda: b.get("color") == "red", "the put to reach b")
            read = b.read("color")
            assert read is not None and read.value == "red" and not read.deleted

            # counters and sets: `.value` is the whole value after the write, on both sides
            assert (await a.incr("visits/home", 3)).value == 3
            assert (await b.incr("visits/home", -1)).value in (-1, 2)
            assert (await a.sadd("cart/alice", "book")).value == ["book"]
            await until(lambda: b.get("cart/alice") == ["book"], "the set add to reach b")
            assert sorted((await b.sadd("cart/alice", "pen")).value) == ["book", "pen"]
            await until(lambda: sorted(a.get("cart/alice", [])) == ["book", "pen"], "b's add to reach a")
            assert (await a.srem("cart/alice", "book")).value == ["pen"]
            await until(lambda: a.get("visits/home") == 2 and b.get("visits/home") == 2, "the counter to merge")
            await until(lambda: b.get("cart/alice") == ["pen"], "the remove to reach b")

            # concurrent writes to a multi-value key are kept as siblings; read.token resolves them
            await a.put("doc/readme", "from a")   # neither has seen the other's write: no await yields in between
            await b.put("doc/readme", "from b")
            await until(lambda: sorted(a.get("doc/readme") or []) == ["from a", "from b"] == sorted(
                b.get("doc/readme") or []), "both siblings on both agents")
            siblings = a.read("doc/readme")
            assert siblings is not None and len(siblings.siblings) == 2
            assert {origin_node(s["origin"]) for s in siblings.siblings} == {"n0", "n1"}   # type: ignore[union-attr]
            await a.put("doc/readme", "merged", context=siblings.token)
            await until(lambda: b.get("doc/readme") == ["merged"], "the resolving write to reach b")

            # delete: a tombstone spreads; nothing to delete -> None
            deleted = await b.delete("color")
            assert deleted is not None and deleted.deleted
            await until(lambda: a.get("color") is None, "the delete to reach a")
            assert a.get("color", "gone") == "gone" and (read := a.read("color")) is not None and read.deleted
            assert await a.delete("color") is None and await a.delete("never-written") is None

            assert a.keys() == b.keys() == ["cart/alice", "doc/readme", "visits/home"]
            assert a.keys("cart/") == ["cart/alice"]
            await until(lambda: a.status()["checksum"] == b.status()["checksum"], "equal checksums")
            status = a.status()
            assert status["node_id"] == "n0" and status["members"]["alive"] == 2 and status["hook_errors"] == {}
            me = [m for m in a.members() if m.is_self]
            assert [m.id for m in me] == ["n0"] and me[0].address == a.address
    run(scenario())


def test_ack_levels_count_copies_and_an_impossible_level_writes_nothing(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 3) as (a, b, c):
            assert (await a.put("k", 1)).acked == 1                    # "local"
            majority = await a.put("k", 2, ack="majority")
            assert majority.acked >= 2
            every = await a.put("k", 3, ack="all")
            assert every.acked == 3 and b.get("k") == 3 and c.get("k") == 3   # held there when put returns
            assert (await a.incr("visits/x", 1, ack=2)).acked >= 2
            assert (await a.sadd("cart/x", "m", ack="all")).acked == 3
            keys = a.status()["keys"]
            with pytest.raises(ValueError, match="needs 4 copies but only 3 members"):
                await a.put("impossible", 1, ack=4)
            for level in ("bogus", 0, -1, True, 2.5):
                with pytest.raises(ValueError, match="ack must be one of"):
                    await a.put("impossible", 1, ack=level)   # type: ignore[arg-type]
            assert a.get("impossible") is None and a.status()["keys"] == keys

            # an ack timeout: the write is applied here, not confirmed by enough members, and still spreads
            a.runtime.block([c.address])   # type: ignore[union-attr]  # a partition a -/- c (both directions at a)
            with pytest.raises(TimeoutError, match=r"2 of the 3 copies asked for \(--ack all\) were confirmed"):
                await a.put("late", "v", ack="all", timeout=0.5)
            assert a.get("late") == "v"
            await until(lambda: b.get("late") == "v", "the unacknowledged write to reach b")
            await until(lambda: c.get("late") == "v", "b to relay it to c")
            a.runtime.block([])   # type: ignore[union-attr]
    run(scenario())


def test_majority_is_a_quorum_of_the_known_members_so_a_cut_off_node_cannot_claim_it(ctl_dir: Path) -> None:
    """a is cut off from b and c and declares them dead: a majority of the cluster it knows is
    still 2 of 3, so `ack="majority"` fails before writing instead of counting a alone as a
    majority; b and c, which still reach each other, make one."""
    async def scenario() -> None:
        async with cluster(ctl_dir, 3) as (a, b, c):
            a.runtime.block([b.address, c.address])   # type: ignore[union-attr]
            await until(lambda: sum(1 for m in a.members(["dead"])) == 2, "a to declare b and c dead")
            await until(lambda: any(m.id == "n0" for m in b.members(["dead"])), "b to declare a dead")
            with pytest.raises(ValueError, match=r"majority needs 2 copies \(a majority of the 3 members"):
                await a.put("q", 1, ack="majority")
            assert a.get("q") is None
            assert (await b.put("q", 2, ack="majority")).acked == 2 and c.get("q") == 2
            a.runtime.block([])   # type: ignore[union-attr]
            await until(lambda: sees_alive(a, 3), "a to see b and c alive again")
            assert (await a.put("q", 3, ack="majority")).acked >= 2
    run(scenario())


def test_put_many_writes_in_order_refuses_alone_and_confirms_every_copy(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 3) as (a, b, c):
            assert await a.put_many({f"bulk/{i}": i for i in range(500)}) == BatchResult(500, (), 1)
            mixed = await a.put_many([("x/1", 1), ("x/2", 1 << 70), ("x/3", 3)])
            assert mixed.written == 2 and [(r.index, r.key) for r in mixed.refused] == [(1, "x/2")]
            assert "64-bit range" in mixed.refused[0].error
            assert (a.get("x/1"), a.get("x/2"), a.get("x/3")) == (1, None, 3)
            # 2,000 x ~300 B: more than one 256-KiB message; every version confirmed by all 3
            big = {f"acked/{i}": f"{i:04d}" + "v" * 296 for i in range(2000)}
            every = await a.put_many(big, ack="all")
            assert every.written == 2000 and every.acked == 3
            assert all(b.get(k) == v and c.get(k) == v for k, v in big.items())   # held when it returns
            await until(lambda: b.get("bulk/499") == 499 and c.get("x/3") == 3, "the local batch to spread")
            with pytest.raises(ValueError, match="needs 4 copies"):
                await a.put_many({"never": 1}, ack=4)
            assert a.get("never") is None

            # a large batch is applied a slice per loop turn: the loop keeps turning meanwhile
            turns = 0

            def tick() -> None:
                nonlocal turns
                turns += 1
                if not bulk.done():
                    asyncio.get_running_loop().call_soon(tick)
            bulk = asyncio.ensure_future(a.put_many({f"huge/{i}": i for i in range(20 * WRITE_SLICE)}))
            tick()
            assert (await bulk).written == 20 * WRITE_SLICE and turns >= 19
    run(scenario())


def test_a_lost_copy_is_sent_again_while_the_writer_waits(ctl_dir: Path) -> None:
    """The copy for c is lost (a brief partition at a); a resends it to the member that has not
    confirmed, so `ack="all"` still succeeds well within its timeout once the link is back."""
    async def scenario() -> None:
        async with cluster(ctl_dir, 3) as (a, b, c):
            runtime = a.runtime
            assert runtime is not None
            lost = runtime.io["blocked_out"]
            runtime.block([c.address])
            waiting = asyncio.create_task(a.put("k", "v", ack="all", timeout=5))
            await until(lambda: runtime.io["blocked_out"] > lost, "the copy for c to be lost")
            assert not waiting.done()
            runtime.block([])
            result = await asyncio.wait_for(waiting, 5)
            assert result.acked == 3 and c.get("k") == "v"
            assert runtime.io["resent_copies"] >= 1
    run(scenario())


def test_a_write_waiting_for_copies_fails_at_once_when_the_agent_stops(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            a.runtime.block([b.address])   # type: ignore[union-attr]  # b can never confirm
            waiting = asyncio.create_task(a.put("k", 1, ack="all", timeout=60))
            await until(lambda: a.get("k") == 1, "the write to be applied on a")
            await a.close()
            with pytest.raises(GossipError, match="stopped before enough copies confirmed"):
                await asyncio.wait_for(waiting, 2)   # not after the 60 s ack timeout
    run(scenario())


# ---- events ----------------------------------------------------------------------------------------
def test_events_by_prefix_and_kind(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            with b.events(prefix="flags/") as flags, b.events(kinds=["joined", "updated", "left", "failed"]) as \
                    members, a.events(prefix="flags/", kinds=["key"]) as local:
                await a.put("other/x", 1)   # outside the prefix: never delivered to `flags`
                await a.put("flags/dark", True)
                first = await next_event(flags)
                assert first == KeyEvent("flags/dark", True, None, False, "remote", "n0")
                await a.put("flags/dark", False)
                assert (await next_event(flags)).old_value is True
                await a.delete("flags/dark")
                gone = await next_event(flags)
                assert (gone.value, gone.old_value, gone.deleted) == (None, False, True)
                assert [e.source for e in [await next_event(local) for _ in range(3)]] == ["local"] * 3

                tags = await a.set_tags({"zone": "eu-1"})
                assert tags["zone"] == "eu-1"
                updated = await next_event(members, lambda e: e.member.id == "n0")
                assert isinstance(updated, MemberEvent) and updated.kind == "updated"
                assert updated.member.tags["zone"] == "eu-1" and updated.previous == "alive"
                assert "zone" not in (await a.delete_tags(["zone"]))
                assert "zone" not in (await next_event(members, lambda e: e.member.id == "n0")).member.tags
                with pytest.raises(ValueError, match="managed by gossipmq"):
                    await a.set_tags({"gmq.curve": "x"})

                ports = free_ports(2)
                async with make("c", ports[0], ctl_dir) as c:
                    await c.join([a.address])
                    joined = await next_event(members, lambda e: e.member.id == "c")
                    assert joined.kind == "joined" and joined.member.status == "alive"
                left = await next_event(members, lambda e: e.member.id == "c")   # the block left gracefully
                assert (left.kind, left.member.status) == ("left", "left")

                d = make("d", ports[1], ctl_dir)
                await d.start()
                await d.join([a.address])
                await next_event(members, lambda e: e.member.id == "d" and e.kind == "joined")
                await d.close()   # gone without a word
                failed = await next_event(members, lambda e: e.member.id == "d" and e.kind == "failed")
                assert failed.member.status == "dead"
                assert len(flags) == 0   # a prefix means key events: none of those member events queued there
            with pytest.raises(ValueError, match="unknown event kinds"):
                b.events(kinds=["nope"])
    run(scenario())


def test_a_slow_subscriber_loses_the_oldest_events_and_the_node_keeps_going(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            with b.events(prefix="load/", maxsize=5) as slow:   # never read while the writes arrive
                for i in range(50):
                    await a.put(f"load/{i:02d}", i)
                await until(lambda: len(b.keys("load/")) == 50, "all 50 writes on b")
                await b.put("reply", "b keeps replicating")
                await until(lambda: a.get("reply") == "b keeps replicating", "b's write on a")
                assert len(slow) == 5
                lost = await next_event(slow)
                assert lost == EventsLost(45)
                rest = [await next_event(slow) for _ in range(5)]
                assert all(isinstance(e, KeyEvent) and e.key.startswith("load/") for e in rest)
                assert len(slow) == 0 and slow.lost_total == 45


def test_a_full_subscription_drops_the_oldest_and_says_how_many_first() -> None:
    async def scenario() -> list[Any]:
        from gossipmq.transports.observers import Subscription
        sub = Subscription(None, None, 3, lambda s: None)
        for i in range(10):
            sub.push(i)
        sub.close()
        return [e async for e in sub]
    assert run(scenario()) == [EventsLost(7), 7, 8, 9]
    run(scenario())


def test_open_subscriptions_end_when_the_agent_stops(ctl_dir: Path) -> None:
    async def scenario() -> None:
        a = make("a", free_ports(1)[0], ctl_dir)
        async with a:
            events = a.events()
        assert [e async for e in events] == []   # ended, not hanging
        with pytest.raises(GossipError, match="has stopped"):
            a.events()
        with pytest.raises(GossipError, match="has stopped"):
            await a.put("k", 1)
        assert a.status()["status"] == "left" and a.get("k") is None   # reads show the final state
    run(scenario())


# ---- extension points cannot hurt the node ----------------------------------------------------------
class RaisesOnce:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def gossipmq_key_changed(self, key: str) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("observer bug, once")


class AlwaysRaises:
    @hookimpl
    def gossipmq_key_changed(self, node_id: str, key: str, entry: Any, source: str) -> None:
        raise RuntimeError(f"observer bug on every {source} change")


class Recorder:
    """A well-behaved observer: it must keep being called whatever the others do."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str, str]] = []
        self.members: list[tuple[str, str, str]] = []

    @hookimpl
    def gossipmq_key_changed(self, node_id: str, key: str, source: str) -> None:
        self.keys.append((node_id, key, source))

    @hookimpl
    def gossipmq_member_changed(self, node_id: str, member: dict[str, Any], reason: str) -> None:
        self.members.append((node_id, member["id"], reason))


def test_a_raising_hook_is_counted_logged_once_and_the_node_keeps_replicating(
        ctl_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue #11's deafening scenario, over real sockets: hooks that raise on the receive path."""
    caplog.set_level(logging.ERROR, logger="gossipmq")
    once, recorder = RaisesOnce(), Recorder()

    async def scenario() -> dict[str, int]:
        async with cluster(ctl_dir, 2, plugins={1: [once, AlwaysRaises(), recorder]}) as (a, b):
            for i in range(20):
                await a.put(f"in/{i}", i)        # b applies them in its receive loop, where the hooks raise
            await until(lambda: len(b.keys("in/")) == 20, "a's writes on b")
            for i in range(20):
                await b.put(f"out/{i}", i)       # and b's own writes still leave it
            await until(lambda: len(a.keys("out/")) == 20, "b's writes on a")
            await a.put("in/late", "still heard")   # b is not deaf after all those errors
            await until(lambda: b.get("in/late") == "still heard", "a late write on b")
            await until(lambda: [m.status for m in a.members() if m.id == "n1"] == ["alive"] and
                        [m.status for m in b.members() if m.id == "n0"] == ["alive"], "both alive in each other's view")
            assert len([k for k in recorder.keys if k[1].startswith(("in/", "out/"))]) == 41
            return b.status()["hook_errors"]

    errors = run(scenario())
    assert errors["agent-plugin-0-RaisesOnce.gossipmq_key_changed"] == 1
    assert errors["agent-plugin-1-AlwaysRaises.gossipmq_key_changed"] >= 41
    logged = [r for r in caplog.records if "raised in gossipmq_key_changed" in r.getMessage()]
    assert sorted(r.getMessage().split()[1] for r in logged) == ["agent-plugin-0-RaisesOnce",
                                                                 "agent-plugin-1-AlwaysRaises"]
    assert all(r.exc_info and "observer bug" in str(r.exc_info[1]) for r in logged)   # with the traceback
    assert all(getattr(r, "node_id", None) == "n1" for r in logged)


def test_key_events_are_built_only_while_someone_listens_and_every_listener_hears_them(ctl_dir: Path) -> None:
    """Nobody listening costs nothing (the node skips building key events), and each way of
    listening turns them back on: a subscription at once, a hook registered into the running
    node's plugin manager and the debug log by the next kernel timer."""
    logger = logging.getLogger("gossipmq")
    level = logger.level
    logger.setLevel(logging.INFO)

    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            node = b.node
            assert node is not None
            await a.put("quiet/0", 0)
            await until(lambda: b.get("quiet/0") == 0, "a write applied with nobody listening")
            assert node.replication.key_events is False
            with b.events(kinds=["joined"]):           # member events only: still nobody for keys
                assert node.replication.key_events is False
            with b.events(prefix="loud/") as events:  # takes key events: on at once
                assert node.replication.key_events is True
                await a.put("loud/1", 1)
                event = await next_event(events)
                assert (event.key, event.value, event.source) == ("loud/1", 1, "remote")
            assert node.replication.key_events is False   # off again once it closed
            recorder = Recorder()
            b.pm.register(recorder)                    # a hook added to the running node
            await until(lambda: node.replication.key_events, "the hook to be noticed by a kernel timer")
            await a.put("hooked/2", 2)
            await until(lambda: ("n1", "hooked/2", "remote") in recorder.keys, "the hook to hear the write")
            b.pm.unregister(recorder)
            await until(lambda: not node.replication.key_events, "the hook's removal to be noticed")
            logger.setLevel(logging.DEBUG)
            await until(lambda: node.replication.key_events, "the debug log to be noticed")

    try:
        run(scenario())
    finally:
        logger.setLevel(level)


def test_the_memory_runtime_fires_the_same_hooks_as_zeromq(ctl_dir: Path) -> None:
    """One observer path: a plugin sees the same key and member events in memory as over sockets."""
    pm = make_plugin_manager(load_entrypoints=False)
    in_memory = Recorder()
    pm.register(in_memory)
    pm.register(AlwaysRaises())
    net = MemoryNetwork(seed=3, pm=pm)
    for node in make_nodes(config(), registry(), 2, seed=3):
        net.add(node)
    assert net.wait_for(lambda: all(len(n.members.reachable_ids()) == 1 for n in net.nodes.values()), 10.0)
    net.put("mem://n0", "k", "v")
    assert net.wait_for(lambda: net.nodes["mem://n1"].read("k") is not None, 5.0)
    assert sum(o.hook_errors.total() for o in net.observers.values()) == 2   # isolated there too

    over_zmq = Recorder()

    async def scenario() -> None:
        async with cluster(ctl_dir, 2, plugins={0: [over_zmq], 1: [over_zmq]}) as (a, b):
            await a.put("k", "v")
            await until(lambda: b.get("k") == "v", "the put on b")

    run(scenario())
    assert sorted(in_memory.keys) == [("n0", "k", "local"), ("n1", "k", "remote")]
    assert sorted(over_zmq.keys) == [("n0", "k", "local"), ("n1", "k", "remote")]
    joined = [("n0", "n1", "joined"), ("n1", "n0", "joined")]
    assert sorted(m for m in in_memory.members if m[2] == "joined") == joined
    assert sorted(m for m in over_zmq.members if m[2] == "joined") == joined


def test_a_plugin_that_cannot_work_is_refused_when_the_agent_is_made() -> None:
    class Typo:
        @hookimpl
        def gossipmq_key_change(self, key: str) -> None: ...

    class WrongArgument:
        @hookimpl
        def gossipmq_key_changed(self, keys: str) -> None: ...

    class Undecorated:
        def gossipmq_key_changed(self, key: str) -> None: ...

    for plugin, message in ((Typo(), "unknown hook 'gossipmq_key_change'"), (WrongArgument(), "keys"),
                            (Undecorated(), "implements no gossipmq hook")):
        with pytest.raises(gossipmq.PluginError, match=message):
            Agent.from_config(None, plugins=[plugin])


# ---- lifecycle -------------------------------------------------------------------------------------
def test_runtime_failure_surfaces_from_async_with_wait_closed_and_events(
        ctl_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A supervised task dies (the storage commit raises): the node closes and says so."""
    caplog.set_level(logging.ERROR, logger="gossipmq")
    doc = tables(storage={"backend": "sqlite", "path": str(tmp_path / "{id}.db"), "flush_ms": 20})

    def break_storage(agent: Agent) -> None:
        def flush(node: Any) -> int:
            raise OSError("disk on fire")
        agent.runtime.storage.flush = flush   # type: ignore[union-attr]

    async def body_waits(agent: Agent) -> None:
        await asyncio.wait_for(agent.wait_closed(), WAIT)

    async def body_reads_events(agent: Agent) -> None:
        async for _ in agent.events():
            pass

    async def body_polls(agent: Agent) -> None:   # ends normally: the failure is raised by `async with`
        await until(lambda: agent.runtime.failure is not None, "the failure")   # type: ignore[union-attr]

    async def scenario(body: Callable[[Agent], Awaitable[None]]) -> Agent:
        port = free_ports(1)[0]
        agent = make("s", port, ctl_dir, doc)
        with pytest.raises(RuntimeFailure, match="storage commit failed: disk on fire"):
            async with agent:
                await agent.put("k", "v")
                break_storage(agent)
                await body(agent)
        with pytest.raises(RuntimeFailure):
            await agent.put("k2", "v")
        with pytest.raises(RuntimeFailure):
            await agent.wait_closed()
        assert agent.status()["task_failures"] == 1
        async with make("s", port, ctl_dir, doc) as again:   # everything was released; the database kept k
            assert again.get("k") == "v"
        return agent

    for body in (body_waits, body_reads_events, body_polls):
        run(scenario(body))
    failures = [r for r in caplog.records if "the flush task failed" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info for r in failures)


def test_start_runs_once(ctl_dir: Path) -> None:
    async def scenario() -> None:
        port = free_ports(1)[0]
        agent = make("once", port, ctl_dir)
        results = await asyncio.gather(agent.start(), agent.start(), return_exceptions=True)
        assert sum(isinstance(r, GossipError) and "already started" in str(r) for r in results) == 1
        with pytest.raises(GossipError, match="already started"):
            await agent.start()
        await agent.close()
        with pytest.raises(GossipError, match="already started"):
            await agent.start()
        await agent.close()   # idempotent
        await agent.leave()   # a no-op once stopped
        await agent.wait_closed()
    run(scenario())


def test_leave_hands_recent_writes_to_a_survivor(ctl_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Memory backend, gossip rounds 10 s apart: only the hand-off on leave can carry the write."""
    caplog.set_level(logging.INFO, logger="gossipmq")
    doc = tables(dissemination={"interval_ms": 10_000})

    async def scenario() -> None:
        async with cluster(ctl_dir, 2, doc) as (a, b):
            await a.put("acked/on-a-only", "keep me")
            assert b.get("acked/on-a-only") is None
            await a.leave()
            assert b.get("acked/on-a-only") == "keep me"
            await until(lambda: [m.status for m in b.members() if m.id == "n0"] == ["left"], "b to see a left")
    run(scenario())
    assert any("handed recent writes to 1 of 1 members" in r.getMessage() for r in caplog.records)


def test_gossipctl_leave_stops_an_embedded_agent(ctl_dir: Path) -> None:
    """The control channel's `leave` is obeyed even when the application is not awaiting anything."""
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            reply = await asyncio.to_thread(request, f"ipc://{ctl_dir}/n1.ctl", {"cmd": "leave"})
            assert reply == {"node_id": "n1", "leaving": True}
            await asyncio.wait_for(b.wait_closed(), WAIT)
            assert b.status()["status"] == "left"
            await until(lambda: [m.status for m in a.members() if m.id == "n1"] == ["left"], "a to see b left")
    run(scenario())


def test_an_exception_in_the_block_still_leaves_gracefully(ctl_dir: Path) -> None:
    async def scenario() -> None:
        async with cluster(ctl_dir, 2) as (a, b):
            with pytest.raises(ZeroDivisionError):
                async with make("c", free_ports(1)[0], ctl_dir) as c:
                    await c.join([a.address])
                    await until(lambda: sees_alive(a, 3), "c to join")
                    1 / 0   # noqa: B018
            await until(lambda: [m.status for m in a.members() if m.id == "c"] == ["left"], "a to see c left")
    run(scenario())


def test_run_forever_serves_until_gossipctl_leave_and_gives_the_signals_back(ctl_dir: Path) -> None:
    async def scenario() -> None:
        agent = make("rf", free_ports(1)[0], ctl_dir)
        task = asyncio.create_task(agent.run_forever(install_signals=True))
        await until(lambda: agent.runtime is not None, "the agent to start")
        await asyncio.to_thread(request, f"ipc://{ctl_dir}/rf.ctl", {"cmd": "leave"})
        await asyncio.wait_for(task, WAIT)
        assert agent.status()["status"] == "left"
        loop = asyncio.get_running_loop()
        assert not loop.remove_signal_handler(signal.SIGINT) and not loop.remove_signal_handler(signal.SIGTERM)

        other = make("rf2", free_ports(1)[0], ctl_dir)
        task = asyncio.create_task(other.run_forever())
        await until(lambda: other.runtime is not None, "the second agent to start")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert other.status()["status"] == "alive"   # cancelled: closed at once, without leaving
        with pytest.raises(GossipError, match="has stopped"):
            await other.put("k", 1)
    run(scenario())


# ---- a third-party strategy that raises (docs/security.md C29) -----------------------------------
class FlakySelector(gossipmq.PeerSelector):
    """Raises on its first three rounds, then picks every reachable member."""

    def __init__(self, options: Any) -> None:
        self.failures = 0

    def select(self, ctx: gossipmq.Context, k: int, exclude: Any = ()) -> list[str]:
        if self.failures < 3:
            self.failures += 1
            raise RuntimeError("flaky selector")
        return [m for m in ctx.members.reachable_ids() if m not in exclude][:k]


class FlakyPlugin:
    @hookimpl
    def gossipmq_register_strategies(self, registry: Any) -> None:
        registry.register("peer_selection", "flaky", FlakySelector)


def test_a_raising_strategy_timer_is_counted_logged_once_and_retried(ctl_dir: Path, caplog: Any) -> None:
    """A strategy that raises inside a timer costs that timer only: the runtime counts it, logs
    it once, and fires the timer again, so gossip rounds resume and writes still replicate."""
    doc = tables(peer_selection={"strategy": "flaky"}, dissemination={"strategy": "push", "interval_ms": 100})

    async def scenario() -> None:
        plugin = FlakyPlugin()
        async with cluster(ctl_dir, 2, doc, plugins={0: [plugin], 1: [plugin]}) as (a, b):
            await until(lambda: a.status()["timer_errors"] >= 3, "three failed rounds counted on a")
            await a.put("after-failures", 1)
            await until(lambda: b.get("after-failures") == 1, "a push round after the failures to reach b")
            assert a.status()["timer_errors"] == 3   # retried, then healthy: no further failures

    with caplog.at_level(logging.ERROR):
        run(scenario())
    failed = [r.getMessage() for r in caplog.records if "failed; retrying" in r.getMessage()]
    assert len(failed) == 2, failed   # once per agent, although each failed three times



# ---- the control channel's event-loop callback ------------------------------------------------------
def _pipelined(endpoint: str, requests: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Send every request at once on one DEALER, then collect the replies (bounded by `timeout`)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        for payload in requests:
            sock.send_multipart([b"", orjson.dumps(payload)])
        replies: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while len(replies) < len(requests) and time.monotonic() < end:
            if sock.poll(100):
                replies.append(orjson.loads(sock.recv_multipart()[-1]))
        return replies
    finally:
        sock.close()


def test_a_pipelined_burst_past_one_batch_is_answered_in_full_and_monitors_hear_heartbeats(ctl_dir: Path) -> None:
    """The control socket wakes a loop callback that answers BATCH requests per turn: a burst of
    several batches queued at once is answered request by request (none lost to ZeroMQ's
    edge-triggered descriptor), and an attached monitor hears a heartbeat every 2 s."""
    from gossipmq.transports.control import ControlServer

    async def scenario() -> None:
        async with cluster(ctl_dir, 1) as (a,):
            endpoint = f"ipc://{ctl_dir}/n0.ctl"
            n = 3 * ControlServer.BATCH + 7
            puts = [{"cmd": "put", "key": f"burst/{i}", "value": i, "id": i} for i in range(n)]
            replies = await asyncio.to_thread(_pipelined, endpoint, puts, WAIT)
            assert sorted(r["id"] for r in replies) == list(range(n))
            assert all(r["ok"] for r in replies)
            assert all(a.get(f"burst/{i}") == i for i in range(n))
            # a request that arrives alone, long after the burst, is still seen
            assert (await asyncio.to_thread(request, endpoint, {"cmd": "get", "key": "burst/5"}))["value"] == 5

            def monitor() -> list[dict[str, Any]]:
                sock = zmq.Context.instance().socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                try:
                    sock.connect(endpoint)
                    sock.send_multipart([b"", orjson.dumps({"cmd": "monitor", "logs": False})])
                    lines: list[dict[str, Any]] = []
                    end = time.monotonic() + ControlServer.HEARTBEAT_S + WAIT
                    while time.monotonic() < end and not any("heartbeat" in x for x in lines):
                        if sock.poll(100):
                            lines.append(orjson.loads(sock.recv_multipart()[-1]))
                    return lines
                finally:
                    sock.close()
            lines = await asyncio.to_thread(monitor)
            assert lines[0]["ok"] and any("heartbeat" in x for x in lines), lines
    run(scenario())


def test_a_failure_inside_the_control_callback_stops_the_node_and_names_it(
        ctl_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`_ready` runs as a loop callback, outside any task: what escapes it must still end the
    supervised control task, so the node stops with the reason instead of going deaf."""
    caplog.set_level(logging.ERROR, logger="gossipmq")

    async def scenario() -> None:
        agent = make("s", free_ports(1)[0], ctl_dir)
        with pytest.raises(RuntimeFailure, match="control task failed: RuntimeError\\('wires crossed'\\)"):
            async with agent:
                def broken(batch: list[list[bytes]]) -> None:
                    raise RuntimeError("wires crossed")
                agent.runtime.control._handle_batch = broken   # type: ignore[union-attr,method-assign]
                await asyncio.to_thread(_pipelined, f"ipc://{ctl_dir}/s.ctl", [{"cmd": "status"}], 1.0)
                await asyncio.wait_for(agent.wait_closed(), WAIT)
    run(scenario())
    assert any("the control task failed" in r.getMessage() for r in caplog.records)

"""`gossipmq.Agent`: one node and its ZeroMQ runtime inside an asyncio application.

    async with Agent.from_config("configs/hybrid.toml", node_id="a", bind="tcp://127.0.0.1:7001") as agent:
        with agent.events(prefix="greeting") as events:   # subscribe first: events are not replayed
            await agent.put("greeting", "hello")
            print(await anext(events))

The agent is the single wiring path of a node: `gossipctl run` is a thin shell over it, and so
are the tests and benchmarks. It assembles the kernel (`Node.from_config`), the durable replica,
the transport half of the security strategy, chaos injection, event scripts and the ZeroMQ
runtime, and tears them down again. It installs no signal handler on the host application's
loop. Writes return once durable (sqlite) and their effects are applied; with an
acknowledgement level (`ack="majority"`) once that many members hold the version.

Whoever asks the node to stop - `leave()`, the end of the `async with` block, `gossipctl leave`,
a signal under `run_forever` - it leaves gracefully and closes. A runtime that must stop (a
supervised task failed, storage broke) closes at once and raises `RuntimeFailure` to the agent's
owner: from the `async with` block, `wait_closed()`, every open `events()` iterator and every later
write. Guide: docs/embedding.md.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from gossipmq.core.addresses import normalize_seed, split_seed
from gossipmq.core.config import Config, env_overrides, merge_overrides, parse_config, read_toml
from gossipmq.core.errors import GossipError, PluginError
from gossipmq.core.events import MemberInfo
from gossipmq.core.node import Node
from gossipmq.core.plugins import build_registry, make_plugin_manager, register_plugin
from gossipmq.core.registry import StrategyRegistry
from gossipmq.core.resolution import Op, Read, decode_context
from gossipmq.transports.chaos import Chaos
from gossipmq.transports.control import RESERVED_TAG_PREFIX, is_local, members_view, status_view
from gossipmq.transports.event_scripts import EventScripts
from gossipmq.transports.metrics import MetricsServer
from gossipmq.transports.observers import Subscription
from gossipmq.transports.security import transport_for
from gossipmq.transports.seeds import SeedResolver
from gossipmq.transports.zmq_runtime import ACK_TIMEOUT_S, RuntimeFailure, ZmqRuntime

__all__ = ["Agent", "BatchResult", "Refused", "RuntimeFailure", "WriteResult"]

Ack = str | int   # "local" | "majority" | "all" | a number of copies (this node included)
ACK_LEVELS = ("local", "majority", "all")


def _check_ack(ack: Ack) -> None:
    if not (ack in ACK_LEVELS or (type(ack) is int and ack >= 1)):
        raise ValueError(f"ack must be one of {', '.join(ACK_LEVELS)} or a number of copies >= 1 "
                         f"(this node included), not {ack!r}")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did: the new version's dot and HLC, the value a read now returns (counters,
    sets: the whole value), and how many copies were confirmed (1 = this node)."""

    key: str
    origin: str
    counter: int
    hlc: int
    value: Any = None
    deleted: bool = False
    acked: int = 1


@dataclass(frozen=True, slots=True)
class Refused:
    """One write of a `put_many` that the key's resolver or the limits refused (nothing written)."""

    index: int
    key: str
    error: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a `put_many` did: how many writes were applied here, which were refused, and the
    copies confirmed of every written version (1 = this node)."""

    written: int
    refused: tuple[Refused, ...] = ()
    acked: int = 1


class Agent:
    """One gossipmq node in this process (see module docstring)."""

    def __init__(self, config: Config, *, registry: StrategyRegistry, pm: Any, env: Mapping[str, str] | None = None
                 ) -> None:
        self.config = config
        self.registry = registry
        self.pm = pm
        self._env = env if env is not None else {}
        self.node: Node | None = None
        self.runtime: ZmqRuntime | None = None
        self.metrics: MetricsServer | None = None   # [metrics] listen: the /metrics endpoint
        self._started = False
        self._graceful = True                     # False: close() asked to stop without leaving
        self._stopper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()           # left (or not) and closed

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | Config | None = None, *,
                    plugins: Sequence[object] = (), env: Mapping[str, str] | None = None,
                    node_id: str | None = None, bind: str | None = None, advertise: str | None = None,
                    seeds: Sequence[str] | None = None, control: str | None = None, cluster: str | None = None,
                    tags: Mapping[str, str] | None = None, control_token: str | None = None,
                    metrics: str | None = None) -> Agent:
        """An agent from a TOML file, a dict of tables, a parsed Config, or the defaults (None).

        `plugins`: extra pluggy plugin objects (hookimpls) for this agent only, as
        ``pytest.main(plugins=...)``. `env`: an environment to read ``GOSSIPMQ_<TABLE>__<KEY>``
        overrides from (``os.environ`` in containers; none by default). The keyword overrides win
        over both. ConfigError names the file, table and key of a bad setting."""
        pm = make_plugin_manager()
        for i, plugin in enumerate(plugins):
            name = f"agent-plugin-{i}-{type(plugin).__name__}"
            try:
                register_plugin(pm, plugin, name=name)
            except pluggy.PluginValidationError as exc:   # an unknown hook, an argument the hook lacks
                raise PluginError(f"plugin {name}: {exc}") from None
            if not pm.get_hookcallers(plugin):   # pluggy would ignore it silently
                raise PluginError(f"plugin {name} implements no gossipmq hook (are its methods decorated "
                                  f"with @gossipmq.hookimpl?)")
        registry = build_registry(pm)
        overrides = env_overrides(env) if env is not None else {}
        if isinstance(config, Config):
            cfg = parse_config(merge_overrides(config.raw, overrides), registry, config.path) if overrides else config
        elif config is None or isinstance(config, Mapping):
            cfg = parse_config(merge_overrides(dict(config or {}), overrides), registry, "<dict>" if config else
                               "<defaults>")
        else:
            cfg = parse_config(merge_overrides(read_toml(config), overrides), registry, str(config))
        cfg = cfg.with_node(id=node_id, bind=bind, advertise=advertise, seeds=list(seeds or []), control=control,
                            cluster=cluster, tags=dict(tags) if tags else None, control_token=control_token)
        cfg = cfg.with_node(seeds=[normalize_seed(s) for s in cfg.node.seeds]).with_metrics(metrics)
        return cls(cfg, registry=registry, pm=pm, env=env)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind, join, serve. GossipError/ConfigError (one line) when it cannot start; nothing is left
        running then, and `start()` may be tried again."""
        if self._started:
            raise GossipError("this agent was already started (an Agent runs once: make a new one to run again)")
        self._started = True   # before the first await: a concurrent second start() is refused too
        try:
            await self._start()
        except BaseException:
            self._started = False
            raise

    async def _start(self) -> None:
        cfg = self.config
        identity = cfg.identity()
        metrics = MetricsServer.from_config(cfg.metrics)   # GossipError now if prometheus_client is missing
        node = Node.from_config(cfg, self.registry, incarnation=int(time.time() * 1000))
        chaos = Chaos.from_config(cfg.chaos, self._env)
        scripts = EventScripts.from_config(cfg.hooks)
        scripts_name = f"gossipmq.event_scripts.{identity.node_id}"
        if scripts is not None:
            register_plugin(self.pm, scripts, name=scripts_name)
        try:
            security = transport_for(node.security, node_id=identity.node_id, config_path=cfg.path,
                                     seeds=cfg.node.seeds)
            storage = None
            if cfg.storage.backend != "memory":   # sqlite3 is imported only by nodes that use it
                from gossipmq.transports.storage import attach
                storage = attach(node, cfg.storage)   # restore the replica (StorageError)
            seeds = SeedResolver([split_seed(s)[0] for s in cfg.node.seeds], own=(identity.advertise, cfg.node.bind))
            runtime = ZmqRuntime(node, bind=cfg.node.bind, control=identity.control,
                                 control_token=cfg.node.control_token, pm=self.pm, storage=storage,
                                 socket_options={r: node.security.socket_options(r) for r in ("inbox", "outbox")},
                                 chaos=chaos, seeds=seeds, security=security)
            if chaos is not None:
                runtime.log.warning("chaos injection on: %s", chaos.describe())
            await runtime.start()   # on failure it has closed everything it opened (storage included)
            if metrics is not None:
                try:
                    await metrics.start(runtime)   # serves until the runtime's tasks are cancelled (close, leave)
                except BaseException:
                    await runtime.aclose()
                    raise
        except BaseException:
            if scripts is not None:   # a retried start() registers it again
                self.pm.unregister(name=scripts_name)
            raise
        self.node, self.runtime, self.metrics = node, runtime, metrics
        self._stopper = asyncio.ensure_future(self._stop_when_asked(runtime))
        runtime.observers.call_hook("gossipmq_node_started", node_id=node.node_id, address=node.address, config=cfg)

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Leave gracefully at the end of the block, and when the block raised an Exception (an
        application bug must not lose the writes it acknowledged); close at once on cancellation,
        KeyboardInterrupt or SystemExit, which ask for a prompt stop. A RuntimeFailure of the node
        is raised here unless the block is already raising something."""
        runtime = self.runtime
        if runtime is None:
            return
        await self._stop(graceful=kind is None or issubclass(kind, Exception))
        if runtime.failure is not None and kind is None:
            raise runtime.failure

    async def leave(self) -> None:
        """Leave the cluster gracefully (recent writes handed to peers first), then close. Returns
        once closed; a no-op on an agent that has stopped; RuntimeFailure if the node failed."""
        runtime = self._runtime(check=False)
        if runtime.failure is not None:
            raise runtime.failure
        await self._stop(graceful=True)
        if runtime.failure is not None:
            raise runtime.failure

    async def close(self) -> None:
        """Stop at once, without telling the cluster (peers will detect the departure). Never
        raises the node's failure (`wait_closed` does); a no-op when not running."""
        if self.runtime is not None:
            await self._stop(graceful=False)

    async def wait_closed(self) -> None:
        """Wait until the node has stopped and closed - after `leave()`/`close()`, `gossipctl leave`,
        the end of the `async with` block, or a failure, which is raised here."""
        runtime = self._runtime(check=False)
        await self._wait_stopped()
        if runtime.failure is not None:
            raise runtime.failure

    async def run_forever(self, *, install_signals: bool = False) -> None:
        """Start, serve until SIGINT/SIGTERM (with `install_signals`), `gossipctl leave` or a
        failure; leave gracefully; close. What `gossipctl run` does. Cancelled: closes at once."""
        import signal
        await self.start()
        runtime = self._runtime()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if install_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, runtime.stopping.set)
        try:
            await self.wait_closed()
        finally:
            for sig in signals:   # the loop may outlive this agent: give the signals back
                loop.remove_signal_handler(sig)
            await self.close()   # a no-op once stopped; on cancellation, stop now

    async def _stop(self, *, graceful: bool) -> None:
        """Ask the stopper to stop (leaving first if `graceful`) and wait until it has closed."""
        runtime = self.runtime
        assert runtime is not None
        if not runtime.stopping.is_set():
            self._graceful = graceful
            runtime.stopping.set()
        elif not graceful:
            self._graceful = False   # a leave under way still finishes; close() just waits for it
        await self._wait_stopped()

    async def _stop_when_asked(self, runtime: ZmqRuntime) -> None:
        """Obey `runtime.stopping`, whoever set it (leave/close, the end of `async with`,
        `gossipctl leave`, a signal, a failure): leave gracefully unless told otherwise or failed,
        then close. Open subscriptions end, or raise the RuntimeFailure - nobody waits on a dead node."""
        try:
            await runtime.stopping.wait()
            if runtime.failure is None and self._graceful:
                try:
                    await runtime.leave()
                except Exception as exc:   # e.g. the final commit failed: that is a failure of the node
                    runtime.log.error("leaving the cluster failed; closing", exc_info=exc)
                    runtime.fail(f"leaving the cluster failed: {exc!r}")
        finally:
            try:
                if runtime.failure is not None:
                    runtime.observers.close(runtime.failure)
                await runtime.aclose()
            finally:
                self._stopped.set()

    async def _wait_stopped(self) -> None:
        await self._stopped.wait()
        task = self._stopper
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise GossipError(f"the node did not close cleanly: {task.exception()!r}") from task.exception()

    @property
    def node_id(self) -> str:
        return self.config.identity().node_id

    @property
    def address(self) -> str:
        return self.config.identity().advertise

    @property
    def control_endpoint(self) -> str:
        return self.config.identity().control

    # -- writes -----------------------------------------------------------------------------------
    async def put(self, key: str, value: Any, *, context: str | Mapping[str, int] | None = None,
                  field: str | None = None, ack: Ack = "local", timeout: float = ACK_TIMEOUT_S) -> WriteResult:
        """Write `value` under `key` (`context`: the token or mapping of a read, for multi-value
        and mvreg keys). ValueError when refused (nothing is written then)."""
        return await self._write(key, Op("put", value, _context(context), field), ack, timeout)

    async def delete(self, key: str, *, context: str | Mapping[str, int] | None = None, field: str | None = None,
                     ack: Ack = "local", timeout: float = ACK_TIMEOUT_S) -> WriteResult | None:
        """Tombstone `key` (or an OR-Map field); None when there was nothing to delete."""
        if not self._live_node().store.is_live(key):
            return None
        return await self._write(key, Op("delete", None, _context(context), field), ack, timeout)

    async def incr(self, key: str, n: int = 1, *, field: str | None = None, ack: Ack = "local",
                   timeout: float = ACK_TIMEOUT_S) -> WriteResult:
        """Add `n` to a counter key (gcounter/pncounter, or an OR-Map field); `.value` is the new total."""
        return await self._write(key, Op("incr", n, None, field), ack, timeout)

    async def sadd(self, key: str, member: str, *, field: str | None = None, ack: Ack = "local",
                   timeout: float = ACK_TIMEOUT_S) -> WriteResult:
        """Add `member` to an OR-Set key (add-wins); `.value` is the set now."""
        return await self._write(key, Op("sadd", member, None, field), ack, timeout)

    async def srem(self, key: str, member: str, *, field: str | None = None, ack: Ack = "local",
                   timeout: float = ACK_TIMEOUT_S) -> WriteResult:
        """Remove `member` from an OR-Set key (the adds this replica has seen; concurrent adds win)."""
        return await self._write(key, Op("srem", member, None, field), ack, timeout)

    async def put_many(self, items: Mapping[str, Any] | Sequence[tuple[str, Any]], *, ack: Ack = "local",
                       timeout: float = ACK_TIMEOUT_S) -> BatchResult:
        """Write many keys at once, in order: one durable commit and one set of sends for all of
        them, so a bulk load costs a fraction of as many `put`s. A write the resolver or the limits
        refuse fails alone (`refused`); with `ack`, every written version is confirmed by that
        many copies before it returns (TimeoutError as `put`; the writes stay applied)."""
        _check_ack(ack)
        pairs = items.items() if isinstance(items, Mapping) else items
        result = await self._runtime().write_many([(key, Op("put", value)) for key, value in pairs], ack, timeout)
        return BatchResult(result["written"], tuple(Refused(**f) for f in result["failed"]), result["acked"])

    async def _write(self, key: str, op: Op, ack: Ack, timeout: float) -> WriteResult:
        _check_ack(ack)
        runtime = self._runtime()
        if is_local(ack):
            result = await runtime.write(key, op)
        else:
            result = await runtime.write_acked(key, op, ack, timeout)
        return WriteResult(key, result["origin"], result["counter"], result["hlc"], result.get("value"),
                           result.get("deleted", False), result.get("acked", 1))

    # -- reads ------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """The value a read of `key` returns here (a list of siblings for multi-value keys), or `default`.
        Reads work until the agent is garbage: after it stopped they show its final state."""
        read = self._node().read(key)
        return default if read is None or read.deleted else read.value

    def read(self, key: str) -> Read | None:
        """The resolved view of `key`: value(s), siblings with their origin, causal context (pass
        `read.token` back as `context` to overwrite exactly what was read); None when unknown."""
        return self._node().read(key)

    def keys(self, prefix: str = "") -> list[str]:
        """Live keys of the replicated store (sorted), optionally under `prefix`."""
        return self._node().store.live_keys_under(prefix)

    def members(self, status: Collection[str] | None = None) -> list[MemberInfo]:
        """This node and every member it knows, optionally only those in `status`."""
        return [MemberInfo.from_view(v) for v in members_view(self._node(), statuses=list(status or []))]

    def status(self) -> dict[str, Any]:
        """The same content as `gossipctl status --json` (also after a failure: the counters say why)."""
        return status_view(self._runtime(check=False))

    def events(self, prefix: str | None = None, kinds: Collection[str] | None = None,
               maxsize: int = 1000) -> Subscription:
        """An async iterator of events (`KeyEvent`, `MemberEvent`, `EventsLost`): keys under
        `prefix`, of the `kinds` wanted (``key``, ``joined``, ``failed``, ``updated``, ...). Its
        queue holds `maxsize` events; a subscriber that falls behind loses the oldest and gets an
        `EventsLost` telling how many - it never slows the node. A `prefix` without `kinds` means key
        events only (member events have no key). `close()` (or ``with``) ends it;
        so does the node stopping (a failure is raised from the iterator). Events are not replayed:
        subscribe before the writes you want to see."""
        return self._runtime().observers.subscribe(prefix, kinds, maxsize)

    # -- membership at runtime --------------------------------------------------------------------
    async def join(self, addresses: Sequence[str], timeout: float = 5.0) -> dict[str, Any]:
        """Contact these members now; returns once one answered (TimeoutError otherwise)."""
        runtime = self._runtime()
        waiter = runtime.join([normalize_seed(a) for a in addresses], timeout)
        runtime.flush_effects()
        return await waiter

    async def set_tags(self, tags: Mapping[str, str], *, replace_all: bool = False) -> dict[str, str]:
        """Change this node's tags (merged into the current ones, or replacing them); peers see a
        member-updated event. Returns the tags now."""
        _check_tag_names(tags)
        node = self._live_node()
        merged = dict(tags) if replace_all else {**node.tags, **tags}
        if replace_all:   # tags the node manages itself (curve's announced key) stay
            merged.update({k: v for k, v in node.tags.items() if k.startswith(RESERVED_TAG_PREFIX)})
        self._runtime().apply(node.set_tags(time.time(), merged))
        return dict(node.tags)

    async def delete_tags(self, names: Collection[str]) -> dict[str, str]:
        """Remove these tags from this node (peers see a member-updated event); returns the tags now."""
        _check_tag_names(names)
        node = self._live_node()
        self._runtime().apply(node.set_tags(time.time(), {k: v for k, v in node.tags.items() if k not in names}))
        return dict(node.tags)

    async def force_leave(self, member_id: str) -> None:
        """Mark a failed member as left (Serf's force-leave). ValueError for an alive member."""
        node = self._live_node()
        self._runtime().apply(node.force_leave(time.time(), member_id))

    # -- internals --------------------------------------------------------------------------------
    def _runtime(self, check: bool = True) -> ZmqRuntime:
        """The running runtime. With `check` (writes, subscriptions, membership changes): the node's
        failure, or GossipError once it is stopping - a write there would go nowhere."""
        runtime = self.runtime
        if runtime is None:
            raise GossipError("the agent is not started (use `async with agent:` or `await agent.start()`)")
        if check and runtime.failure is not None:
            raise runtime.failure
        if check and runtime.stopping.is_set():
            raise GossipError(f"the agent {self.node_id} has stopped (left or closed); make a new one to run again")
        return runtime

    def _node(self) -> Node:
        """The node for reads: also after it stopped (its final state)."""
        return self._runtime(check=False).node

    def _live_node(self) -> Node:
        return self._runtime().node


def _check_tag_names(names: Collection[str]) -> None:
    """ValueError for tags gossipmq manages itself (``gmq.*``), as the control channel refuses them."""
    reserved = sorted(k for k in names if k.startswith(RESERVED_TAG_PREFIX))
    if reserved:
        raise ValueError(f"tags starting with {RESERVED_TAG_PREFIX!r} are managed by gossipmq: {reserved}")


def _context(context: str | Mapping[str, int] | None) -> dict[str, int] | None:
    if context is None:
        return None
    return decode_context(context) if isinstance(context, str) else dict(context)


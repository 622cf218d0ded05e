"""ZeroMQ runtime: drives one kernel Node over real sockets on asyncio.

Topology follows Zyre: one ROUTER inbox bound on the node's address, and one DEALER per
peer address connected to that peer's inbox. Per-peer DEALERs mean a slow or dead peer
can only fill its own bounded queue (SNDHWM), never block traffic to others; a full queue
makes a send fail at once (counted as ``send_blocked``) instead of buffering without
limit. Sockets use LINGER 0, except that on graceful leave the final messages get a short
linger so they actually go out.

We deliberately do not set ZMQ_IMMEDIATE on the DEALERs: with it, the very first messages
to a freshly connected peer (the join) are refused until TCP completes.

Supervision: every long-lived task (receive, control, flush, security watchers) runs under
`_supervise`. A failure that a task cannot recover from is logged with its traceback, counted
(``task_failures``) and stops the node: `failure` holds it and the owner (`Agent`, `gossipctl run`)
raises it - a live process that hears nothing is never an outcome. Failures that concern one
input stay with that input: a frame that cannot be decoded or handled is dropped and counted; a
send that cannot be encoded fails alone; a timer whose handler raises is counted, logged once and
re-armed; an observer that raises is isolated (transports/observers.py).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import pluggy
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.effects import Confirmed, Dropped, Effect, MemberChanged, Schedule, Send
from gossipmq.core.errors import GossipError, RemoteProtocolError
from gossipmq.core.limits import RateLimiter, entry_size
from gossipmq.core.messages import Entry, origin_node
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op
from gossipmq.core.timers import Timer

from .chaos import Chaos
from .control import WRITE_SLICE, ControlServer, _reason, is_local, tcp_host
from .drain import Drain
from .metrics import COMMIT_BUCKETS, Histogram
from .observers import Observers
from .security import TransportSecurity
from .seeds import SeedResolver

INBOX_RCVHWM = 10_000
PEER_SNDHWM = 1_000
LEAVE_FLUSH_S = 0.5
TIMER_RETRY_S = 1.0
HANDOFF_PEERS = 3        # members a leaving node hands its own recent writes to
HANDOFF_TIMEOUT_S = 1.5  # how long it waits for them to confirm
ACK_TIMEOUT_S = 5.0      # default wait of a write with an acknowledgement level
RESEND_S = (0.25, 2.0)   # a copy not confirmed is sent again after 0.25 s, then doubling up to 2 s


MEMORY_TRIM_S = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where it does not exist (musl, macOS)."""
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class RuntimeFailure(GossipError):
    """A task the node cannot run without failed; the node stopped (the log has the traceback)."""


class NodeLog(logging.LoggerAdapter):
    """Log records of one node carry its id (`record.node_id`): several agents in one process
    stay apart, and `gossipctl monitor` streams exactly this node's lines."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {})["node_id"] = self.extra["node_id"]  # type: ignore[index]
        return msg, kwargs


def _ipv6(address: str) -> bool:
    host = tcp_host(address)
    return host is not None and ":" in host


class _LinkWatch:
    """The monitor of one DEALER (see `ZmqRuntime._watch_link`).

    libzmq sends monitor events without ZMQ_DONTWAIT, from its I/O thread: an event for a
    monitor whose reading end is closed blocks that thread, and with it every socket of the node
    (found the hard way: a node went deaf after a neighbour died). So a watch always stops in
    this order: disable the monitor on the DEALER while its reader is still open (the last
    event, MONITOR_STOPPED, is queued to it), then close the reader, then the DEALER. The reader
    is closed here rather than in the task: a task cancelled before it first ran never runs its
    `finally`, and an open socket would make the context's term() wait forever."""

    def __init__(self, sock: zmq.Socket, monitor: zmq.asyncio.Socket) -> None:
        self.sock = sock
        self.monitor = monitor
        self.task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if not self.sock.closed:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
        self.monitor.close(linger=0)


class ZmqRuntime:
    def __init__(self, node: Node, *, bind: str, control: str | None = None, control_token: str = "",
                 pm: pluggy.PluginManager | None = None, socket_options: dict[str, dict[str, Any]] | None = None,
                 chaos: Chaos | None = None, seeds: SeedResolver | None = None,
                 security: TransportSecurity | None = None, storage: Any | None = None) -> None:
        self.node = node
        self.log = NodeLog(logging.getLogger("gossipmq"), {"node_id": node.node_id})
        #: durable replica (transports/storage.py SqliteStorage) or None for the memory backend
        self.storage = storage
        #: addresses we neither send to nor accept from (`block` control command: test partitions)
        self.blocked: set[str] = set()
        #: transport half of a security strategy (transports/security.py) or None
        self.security = security
        limits = node.limits
        #: token buckets (core/limits.py): per member, per sending host, for strangers per host
        self.rate = RateLimiter(limits.peer_rate, limits.peer_burst, limits.tracked_peers)
        self.host_rate = RateLimiter(limits.address_rate, limits.address_burst, limits.tracked_peers)
        self.stranger_rate = RateLimiter(limits.stranger_rate, limits.stranger_burst, limits.tracked_peers)
        self.chaos = chaos            # fault injection on outgoing messages (transports/chaos.py)
        self.seeds = seeds            # seeds given as DNS names, re-resolved on every join
        self.bind = bind
        self.pm = pm
        self.observers = Observers(node, pm, self.log, sole_consumer=True)
        self.observers.on_member = self._on_member
        self.control = ControlServer(self, control, control_token) if control else None
        self.socket_options = socket_options or {}
        self.actx = zmq.asyncio.Context()
        self.sctx: zmq.SyncContext = zmq.Context.shadow(self.actx.underlying)
        self.peers: dict[str, zmq.Socket] = {}
        self.link_watchers: dict[str, _LinkWatch] = {}   # address -> the monitor of its DEALER
        self._link_ids = itertools.count()
        self.timers: dict[Timer, asyncio.TimerHandle] = {}
        self.io: Counter[str] = Counter()
        self.commit_seconds = Histogram(COMMIT_BUCKETS)   # durable commits that wrote something (metrics)
        self.stopping = asyncio.Event()
        self.failure: BaseException | None = None
        self.started_at = 0.0
        self._pending: list[Effect] = []
        self._acks: dict[int, tuple[int, set[str], asyncio.Future[None]]] = {}   # token -> (needed, by, done)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._logged: Counter[str] = Counter()
        self._closed = False
        self.inbox: zmq.asyncio.Socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind, start the supervised tasks and the kernel. GossipError (one line, naming the
        problem) when an endpoint cannot be bound; nothing is left running then."""
        self._loop = asyncio.get_running_loop()
        try:
            self.inbox = self._make_inbox()
            if self.security is not None:
                await self.security.start(self)
                self.security.configure_inbox(self.inbox)
            try:
                self.inbox.bind(self.bind)
            except zmq.ZMQError as exc:
                raise GossipError(f"cannot bind {self.bind}: {_reason(exc)}"
                                  + (" (another node or program listens there)" if exc.errno == zmq.EADDRINUSE
                                     else "")) from None
            if self.control is not None:
                self.control.bind(self.actx)
        except BaseException:
            self.close()
            raise
        self.started_at = time.time()
        self._supervise("receive", self._receive_loop())
        self._supervise("inbox-monitor", self._watch_inbox())
        if self.control is not None:
            self._supervise("control", self.control.serve())
        if self.storage is not None:
            self._supervise("flush", self._flush_loop())
        self._supervise("memory", self._return_memory())
        self.log.info("node %s listening on %s (advertised %s, incarnation %d)", self.node.node_id, self.bind,
                      self.node.address, self.node.inc)
        self._apply(self.node.start(time.time()))

    async def leave(self) -> None:
        """Graceful departure: hand our recent writes to a few members (so an acknowledged write
        never leaves with us, memory backend included), tell the cluster, let the last messages go."""
        if self.inbox is None or self.node.status == "left":
            return
        self.log.info("node %s leaving the cluster", self.node.node_id)
        await self._hand_off()
        self._apply(self.node.leave(time.time()))
        self.commit()
        await asyncio.sleep(0.05)

    async def _hand_off(self) -> None:
        node = self.node
        peers = list(node.members.reachable_ids())
        node.rng.shuffle(peers)
        waits = []
        for member_id in peers[:HANDOFF_PEERS]:
            entries = node.replication.own_entries_missing(member_id, node.gossip.max_message_bytes)
            if entries:
                waits.append(self._replicate(entries, [member_id], 1)[0])
        if not waits:
            return
        done, _ = await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=HANDOFF_TIMEOUT_S)
        confirmed = sum(1 for task in done if not task.exception())
        self.log.info("handed recent writes to %d of %d members before leaving", confirmed, len(waits))

    async def run(self) -> None:
        """Start, serve until `stopping` is set (a signal, `gossipctl leave`, a failure), leave
        gracefully, close. Raises the failure that stopped the node, if one did."""
        await self.start()
        try:
            await self.stopping.wait()
            if self.failure is None:
                await self.leave()
        finally:
            await self.aclose()
        if self.failure is not None:
            raise self.failure

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.observers.close()
        for _, _, done in self._acks.values():   # writes waiting for copies: no confirmation can come now
            if not done.done():
                done.set_exception(self.failure or GossipError("the node stopped before enough copies confirmed"))
                done.exception()   # retrieved: a waiter that gave up (or a hand-off) must not make asyncio log it
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        if self.storage is not None:
            try:
                self.commit()
            except GossipError:
                pass   # commit() logged it and set `failure` (the owner raises it); the sockets still close
            finally:
                self.storage.close()
        for address in list(self.link_watchers):
            self._unwatch(address)
        for sock in self.peers.values():
            sock.close(linger=int(LEAVE_FLUSH_S * 1000))
        self.peers.clear()
        if self.inbox is not None:
            self.inbox.close(linger=0)
        if self.control is not None:
            self.control.close()
        if self.security is not None:
            self.security.stop()
        self.actx.term()

    # -- supervision -------------------------------------------------------------------------
    def _supervise(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: self._task_done(name, t))
        self._tasks.append(task)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a long-lived task of a plugin's transport half under the same supervision."""
        self._supervise(name, coro)

    def _task_done(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is None and self.stopping.is_set():
            return
        self.io["task_failures"] += 1
        if exc is None:
            self.fail(f"the {name} task ended unexpectedly")
        else:
            self.log.error("the %s task failed; stopping the node", name, exc_info=exc)
            self.fail(f"the {name} task failed: {exc!r}")

    def fail(self, reason: str) -> None:
        """Stop the node because it cannot go on; its owner raises RuntimeFailure(reason)."""
        if self.failure is None:
            self.failure = RuntimeFailure(reason)
        self.stopping.set()

    # -- receiving ---------------------------------------------------------------------------
    def _make_inbox(self) -> zmq.asyncio.Socket:
        inbox = self.actx.socket(zmq.ROUTER)
        inbox.setsockopt(zmq.LINGER, 0)
        # per connection; with MAXMSGSIZE this bounds what one peer can make us buffer ([limits])
        inbox.setsockopt(zmq.RCVHWM, self.node.limits.inbox_hwm)
        inbox.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # libzmq's hard guard; frames between max_frame_bytes and this are counted as oversized.
        inbox.setsockopt(zmq.MAXMSGSIZE, 2 * self.node.gossip.max_frame_bytes + 4096)
        if _ipv6(self.bind):
            inbox.setsockopt(zmq.IPV6, 1)
        self._apply_options(inbox, "inbox")
        return inbox

    async def _receive_loop(self) -> None:
        """Deliver inbound messages until cancelled: up to 64 per loop turn (a flood must not
        starve timers - heartbeats - or the control channel), from a loop callback (drain.py)."""
        assert self.inbox is not None
        await Drain(self.inbox, self._on_messages, 64, copy=False).run()

    def _on_messages(self, messages: list[list[zmq.Frame]]) -> None:
        # zero-copy frames carry who sent them: the CURVE-authenticated User-Id, or the host
        for zframes in messages:
            if self.security is not None:
                peer: str | None = self.security.identify(zframes[0])
                host = peer or "?"
            else:
                peer = None
                host = cast(str, zframes[0].get("Peer-Address")) or "?"   # a metadata property: always str
            self._handle_frames([f.bytes for f in zframes[1:]], peer, host)

    async def _watch_inbox(self) -> None:
        """Count what libzmq does to inbound sessions on its own: a peer whose frame exceeded
        MAXMSGSIZE is cut without a word, which shows only as a disconnect (libzmq gives no
        reason); failed handshakes (CURVE refusals, protocol errors) are counted too."""
        assert self.inbox is not None
        events = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        monitor = self.inbox.get_monitor_socket(events)
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_DISCONNECTED:
                    self.io["inbox_disconnects"] += 1
                else:
                    self.io["handshake_failures"] += 1
        finally:
            self.inbox.disable_monitor()
            monitor.close(linger=0)

    def _handle_frames(self, frames: list[bytes], peer: str | None, host: str = "?") -> None:
        """One received message: rate limits, decode, kernel; `peer`: the CURVE-authenticated
        member id (None without CURVE); `host`: the sender's address (or its member id with CURVE)."""
        node = self.node
        self.io["bytes_in"] += sum(len(f) for f in frames)
        now = time.time()
        if peer is None and not self.host_rate.allow(host, now):   # before decoding: cheapest
            self._apply(node.record_drop(now, "rate_limited", f"host {host} exceeds {self.host_rate.rate:g} "
                                                              f"messages/s ([limits] address_rate)"))
            return
        try:
            env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes, limits=node.limits)
        except RemoteProtocolError as exc:
            self._apply(node.record_drop(now, exc.cause, exc.detail))
            return
        if self.blocked and env.addr in self.blocked:
            self.io["blocked_in"] += 1
            return
        if env.src not in node.members and env.src != node.node_id:
            # a sender we do not know (a join, a stranger): a small bucket per host
            if not self.stranger_rate.allow(host, now):
                self._apply(node.record_drop(now, "stranger_rate_limited", f"{env.type} from unknown {env.src!r} "
                                                                           f"(host {host}) exceeds "
                                                                           f"{self.stranger_rate.rate:g} messages/s"))
                return
        elif not self.rate.allow(peer if peer is not None else (host, env.src), now):
            self._apply(node.record_drop(now, "rate_limited", f"{env.src!r} (host {host}) exceeds "
                                                              f"{self.rate.rate:g} messages/s ([limits] peer_rate)"))
            return
        if self.security is not None and peer is None:
            self._apply(node.record_drop(now, "revoked_key", f"{env.type} from {env.src!r} arrived on a "
                                                             f"session whose key is no longer trusted"))
            return
        try:
            effects = node.handle_message(now, env, peer=peer)
        except Exception as exc:  # a handler bug must not take the node down; say so loudly
            self._log_once(f"handler:{env.type}", f"handler failed on {env.type} from {env.src}", exc)
            effects = node.record_drop(now, "handler_error", f"{env.type} from {env.src}: {exc!r}")
        if self.security is not None:
            self.security.after_input()   # a peer announced a new key: re-dial it before replying
        if self.storage is not None and env.type == "replicate":
            self.commit()   # a confirmation promises the write is as durable here as configured
        self._apply(effects)

    # -- effects -----------------------------------------------------------------------------
    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                if effect.address in self.blocked:
                    self.io["blocked_out"] += 1
                    continue
                if self.chaos is not None:
                    assert self._loop is not None
                    self.chaos.send(effect, self._send, self._loop)
                else:
                    self._send(effect)
            elif isinstance(effect, Schedule):
                self._schedule(effect)
            elif isinstance(effect, Confirmed):
                self._confirmed(effect)
            else:
                self.observers.dispatch(effect)

    def apply(self, effects: list[Effect]) -> None:
        """Carry out kernel effects produced outside the receive loop (security hooks, verbs)."""
        self._apply(effects)

    def queue(self, effects: list[Effect]) -> None:
        """Hold effects until `flush_effects` (after a durable commit: no dot leaves before it)."""
        self._pending.extend(effects)

    def flush_effects(self) -> None:
        pending, self._pending = self._pending, []
        self._apply(pending)

    def _send(self, send: Send) -> None:
        if self.seeds is not None and send.address in self.seeds.names:
            task = asyncio.ensure_future(self._send_resolved(send))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        sock = self.peers.get(send.address)
        if sock is None:
            sock = self._dial(send.address)
            if sock is None:
                return
        try:
            frames = encode_envelope(send.envelope)
        except Exception as exc:  # one bad message fails alone
            self.io["encode_errors"] += 1
            self._log_once(f"encode:{send.envelope.type}", f"cannot encode a {send.envelope.type} to "
                                                           f"{send.address}; it is dropped", exc)
            return
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.io["send_blocked"] += 1
            return
        except zmq.ZMQError as exc:
            self.io["send_errors"] += 1
            self._log_once(f"send:{exc.errno}", f"cannot send to {send.address}: {exc.strerror}")
            return
        self.io["bytes_out"] += sum(len(f) for f in frames)

    def _dial(self, address: str) -> zmq.Socket | None:
        sock = self.sctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        # Back off from 0.1 s to at most 1 s: a peer dialled before it listened (a seed still
        # starting, a task being scheduled) is reached within a second of coming up, not after
        # a 5-s backoff that delays every message queued for it (probes, `--ack` copies).
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if _ipv6(address):
            sock.setsockopt(zmq.IPV6, 1)
        self._apply_options(sock, "outbox")
        if self.security is not None and not self.security.configure_dealer(sock, address):
            sock.close(linger=0)
            self.io["no_trusted_key"] += 1
            self.observers.log_drop(Dropped("no_trusted_key", f"not sending to {address}: no trusted key "
                                                              f"is known for it"))
            return None
        if self.node.cluster.overlay.watches_links:
            self._watch_link(address, sock)   # before connect: the monitor's reader must be there first
        try:
            sock.connect(address)
        except zmq.ZMQError as exc:
            self._unwatch(address)
            sock.close(linger=0)
            self.io["bad_address"] += 1
            self.observers.log_drop(Dropped("bad_address", f"cannot connect to {address!r}: {exc.strerror}"))
            return None
        self.peers[address] = sock
        return sock

    def _watch_link(self, address: str, sock: zmq.Socket) -> None:
        """A partial-view overlay keeps its neighbours over live links, as HyParView over TCP
        does: the first refused or dropped connection of this DEALER is reported to the kernel
        (`Node.unreachable`) at once, instead of after a failure detector's timeouts."""
        # a fresh name per monitor: libzmq releases a closed socket's monitor endpoint later, on
        # its reaper thread, so a name derived from the socket (id()) can still be taken
        endpoint = f"inproc://gossipmq-link-{id(self)}-{next(self._link_ids)}"
        try:
            sock.monitor(endpoint, zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED)
        except zmq.ZMQError as exc:   # the link goes unwatched; the failure detector still sees it
            self._log_once("link-monitor", f"cannot watch the link to {address}: {exc.strerror}")
            return
        monitor = self.actx.socket(zmq.PAIR)
        monitor.connect(endpoint)
        watch = _LinkWatch(sock, monitor)
        watch.task = asyncio.ensure_future(self._link_lost(address, watch))
        self.link_watchers[address] = watch

    def _unwatch(self, address: str) -> None:
        watch = self.link_watchers.pop(address, None)
        if watch is not None:
            watch.stop()

    async def _link_lost(self, address: str, watch: _LinkWatch) -> None:
        event = parse_monitor_message(await watch.monitor.recv_multipart())["event"]
        if self._closed or self.link_watchers.get(address) is not watch or event == zmq.EVENT_MONITOR_STOPPED:
            return
        watch.task = None   # done: stop() must not cancel the task that runs it
        self.io["links_lost"] += 1
        self.close_peer(address)   # stops the watch, then libzmq's reconnect attempts; a later send dials afresh
        try:
            self._apply(self.node.unreachable(time.time(), address))
        except Exception as exc:   # noqa: BLE001 - a kernel bug must not pass silently, nor kill the loop
            self.io["task_failures"] += 1
            self._log_once("unreachable", f"handling the lost link to {address} failed", exc)

    async def _send_resolved(self, send: Send) -> None:
        """A seed given by DNS name: resolve it now (again on every retry), join every address."""
        try:
            addresses = await self.seeds.resolve(send.address)  # type: ignore[union-attr]
        except OSError as exc:
            self.observers.log_drop(Dropped("seed_unresolved", f"cannot resolve seed {send.address}: {exc}"))
            return
        for address in addresses:
            if self.security is not None:
                self.security.alias(address, send.address)   # the resolved address keeps the seed's key
            self._send(Send(address, send.envelope))

    def close_peer(self, address: str) -> None:
        """Forget the DEALER to `address` (its queue is dropped); the next send dials afresh."""
        self._unwatch(address)
        sock = self.peers.pop(address, None)
        if sock is not None:
            sock.close(linger=0)

    def _on_member(self, event: MemberChanged) -> None:
        m = event.member
        if event.reason in ("reaped", "rejoined"):
            # A rejoined member is a new process: our old DEALER may sit in reconnect backoff
            # (up to RECONNECT_IVL_MAX) and hold our probes long enough to suspect it. Start fresh.
            self.close_peer(m["address"])
        elif m.get("old_address"):
            self.close_peer(m["old_address"])   # the member moved: the old DEALER would only leak
        if self.control is not None and self.control.monitors:   # `gossipctl monitor --events`, pushed
            self.control.push_event(self.observers.member_events[-1])

    async def rebind_inbox(self) -> None:
        """Unbind and bind the inbox again: every inbound session is cut (peers reconnect at
        once and pass ZAP again), and new security options (a rotated key) take effect."""
        assert self.inbox is not None
        endpoint = cast(bytes, self.inbox.last_endpoint).decode()   # LAST_ENDPOINT is a bytes option
        self.inbox.unbind(endpoint)
        if self.security is not None:
            self.security.configure_inbox(self.inbox)
        for _ in range(100):   # the old listener closes asynchronously in libzmq's I/O thread
            try:
                self.inbox.bind(self.bind)
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE:
                    raise
                await asyncio.sleep(0.02)
        self.inbox.bind(self.bind)

    # -- timers ------------------------------------------------------------------------------
    def _schedule(self, item: Schedule) -> None:
        assert self._loop is not None
        old = self.timers.pop(item.timer, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, item.at - time.time())
        self.timers[item.timer] = self._loop.call_later(delay, self._fire, item.timer)

    def _fire(self, timer: Timer) -> None:
        self.timers.pop(timer, None)
        self.observers.refresh_key_events()   # a hook registered since, a log level changed
        try:
            effects = self.node.handle_timer(time.time(), timer)
        except Exception as exc:
            self.io["timer_errors"] += 1
            self._log_once(f"timer:{timer}", f"timer {timer} failed; retrying in {TIMER_RETRY_S:g} s", exc)
            assert self._loop is not None
            self.timers[timer] = self._loop.call_later(TIMER_RETRY_S, self._fire, timer)
            return
        self._apply(effects)

    def _apply_options(self, sock: zmq.Socket, role: str) -> None:
        for name, value in self.socket_options.get(role, {}).items():
            setattr(sock, name, value)

    def _log_once(self, what: str, message: str, exc: BaseException | None = None) -> None:
        """Log a failure the first time (with its traceback), then every 1000th time."""
        self._logged[what] += 1
        n = self._logged[what]
        if n == 1 or n % 1000 == 0:
            self.log.error("%s (%d so far)", message, n, exc_info=exc)

    # -- writes and control verbs (used by the control server and by Agent) ---------------------
    def mutate(self, key: str, op: Op) -> dict[str, Any]:
        """Apply one write here; its effects wait in the queue until `commit` + `flush_effects`.
        ValueError when the key's resolver or the limits refuse it (then nothing was applied)."""
        return self._mutate(key, op)[0]

    def _mutate(self, key: str, op: Op) -> tuple[dict[str, Any], Entry]:
        node = self.node
        entry, effects = node.mutate(time.time(), key, op)
        self.queue(effects)
        result: dict[str, Any] = {"key": key, "origin": origin_node(entry.origin), "counter": entry.counter,
                                  "hlc": entry.hlc, "deleted": entry.deleted, "replica": entry.origin}
        if op.verb == "put":
            result["value"] = op.value
        elif op.verb != "delete":
            read = node.read(key)
            result["value"] = read.value if read is not None else None
        return result, entry

    async def write(self, key: str, op: Op) -> dict[str, Any]:
        """`mutate`, durable (sqlite) and its effects applied before it returns."""
        result = self.mutate(key, op)
        self.commit()
        self.flush_effects()
        return result

    async def write_acked(self, key: str, op: Op, ack: str | int, timeout: float = ACK_TIMEOUT_S) -> dict[str, Any]:
        """`write`, then wait until `ack` members hold the version: "majority" of the members
        this node knows (dead ones included, this node too), "all" of the members reachable now,
        or a number of copies (this node included). ValueError before anything is written when
        that many members are not reachable; TimeoutError (naming how many confirmed) when they
        do not confirm in time - the write was applied here then and may still spread."""
        members, needed = self._copies_needed(ack)
        result, entry = self._mutate(key, op)
        self.commit()
        self.flush_effects()
        by = (await self._await_copies([entry], members, needed, ack, timeout))[0]
        result["acked"] = 1 + len(by)
        result["acked_by"] = sorted(by)
        return result

    def mutate_many(self, items: list[tuple[str, Op]]) -> tuple[list[Entry], list[dict[str, Any]]]:
        """Apply writes in order, each on its own: one the resolver or the limits refuse fails
        alone. (the versions written, [{"index", "key", "error"} of each refused one]); effects
        wait for `commit` + `flush_effects` as with `mutate`."""
        node, now = self.node, time.time()
        written: list[Entry] = []
        failed: list[dict[str, Any]] = []
        for index, (key, op) in enumerate(items):
            try:
                entry, effects = node.mutate(now, key, op)
            except ValueError as exc:
                failed.append({"index": index, "key": key, "error": str(exc)})
                continue
            self.queue(effects)
            written.append(entry)
        return written, failed

    async def write_many(self, items: list[tuple[str, Op]], ack: str | int = "local",
                         timeout: float = ACK_TIMEOUT_S) -> dict[str, Any]:
        """Many writes for one commit and one set of sends (bulk loads, pipelined clients):
        {"written", "failed", "acked"}. With `ack` every written version is confirmed by that
        many members (this node included) before it returns; ValueError/TimeoutError as
        `write_acked` (the writes stay applied on a timeout)."""
        members, needed = ([], 1) if is_local(ack) else self._copies_needed(ack)
        written: list[Entry] = []
        failed: list[dict[str, Any]] = []
        for start in range(0, len(items), WRITE_SLICE):
            if start:
                await asyncio.sleep(0)   # a large batch must not starve probes, answers and heartbeats
            done, refused = self.mutate_many(items[start:start + WRITE_SLICE])
            written += done
            failed += [{**f, "index": f["index"] + start} for f in refused]
            self.commit()
            self.flush_effects()
        acked = 1
        if written and needed > 1:
            acked += min(len(by) for by in await self._await_copies(written, members, needed, ack, timeout))
        return {"written": len(written), "failed": failed, "acked": acked if written else 0}

    def _copies_needed(self, ack: str | int) -> tuple[list[str], int]:
        """(the members reachable now, the copies `ack` asks for, this node included);
        ValueError when there are not that many. "majority" is a quorum of the members this node
        knows, dead ones included (`MemberTable.holders`): a side of a partition that declared
        the others dead cannot call two or three copies a majority."""
        members = list(self.node.members.reachable_ids())
        total = len(members) + 1
        if ack == "majority":
            known = 1 + len(self.node.members.holders())
            needed = known // 2 + 1
            asked = (f"--ack majority needs {needed} copies (a majority of the {known} members this node "
                     f"knows, dead ones included)")
        else:
            needed = total if ack == "all" else int(ack)
            asked = f"--ack {ack} needs {needed} copies"
        if needed > total:
            raise ValueError(f"{asked} but only {total} members (this node included) are reachable")
        return members, needed

    async def _await_copies(self, entries: list[Entry], members: list[str], needed: int, ack: str | int,
                            timeout: float) -> list[set[str]]:
        """Send `entries` to `members` (in messages within the delta budget) and wait until every
        message is confirmed by `needed - 1` of them, so each version has `needed` copies: per
        message, the members that confirmed it. TimeoutError names the copies of the least-held."""
        if needed <= 1:
            return [set()]
        budget = self.node.gossip.max_message_bytes
        chunks: list[list[Entry]] = [[]]
        used = 0
        for entry in entries:
            size = entry_size(entry)
            if chunks[-1] and used + size > budget:
                chunks.append([])
                used = 0
            chunks[-1].append(entry)
            used += size
        waits = [self._replicate(chunk, members, needed - 1) for chunk in chunks]
        try:
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(done) for done, _ in waits)), timeout)
        except TimeoutError:
            least = min(len(by) for _, by in waits)
            raise TimeoutError(f"{least + 1} of the {needed} copies asked for (--ack {ack}) were confirmed "
                               f"within {timeout:g} s; the write was applied on this node and may still "
                               f"spread") from None
        finally:
            for done, _ in waits:
                done.cancel()
        return [by for _, by in waits]

    def _replicate(self, entries: list[Entry], members: list[str], needed: int
                   ) -> tuple[asyncio.Future[None], set[str]]:
        """Send `entries` to `members`; the future resolves once `needed` of them confirmed
        (the set fills with who did)."""
        assert self._loop is not None
        token, effects = self.node.replicate(time.time(), entries, members)
        done: asyncio.Future[None] = self._loop.create_future()
        by: set[str] = set()
        self._acks[token] = (needed, by, done)
        resend = self._loop.call_later(RESEND_S[0], self._resend, token, entries, members, RESEND_S[0])
        done.add_done_callback(lambda _: self._acks.pop(token, None))
        done.add_done_callback(lambda _: resend.cancel())
        self.commit()
        self._apply(effects)
        return done, by

    def _resend(self, token: int, entries: list[Entry], members: list[str], delay: float) -> None:
        """One copy or its confirmation can be lost on the way (a link still in reconnect backoff,
        a peer whose key is still being learned, a full queue): send the request again to the
        members that have not confirmed, backing off, for as long as the writer waits."""
        waiting = self._acks.get(token)
        if waiting is None or self._closed or self._loop is None:
            return
        _, by, done = waiting
        if done.done():
            return
        missing = [m for m in members if m not in by and self.node.members.is_reachable(m)]
        if missing:
            self.io["resent_copies"] += len(missing)
            _, effects = self.node.replicate(time.time(), entries, missing, token)
            self._apply(effects)
        delay = min(delay * 2, RESEND_S[1])
        handle = self._loop.call_later(delay, self._resend, token, entries, members, delay)
        done.add_done_callback(lambda _: handle.cancel())

    def _confirmed(self, effect: Confirmed) -> None:
        waiting = self._acks.get(effect.token)
        if waiting is None:
            return
        needed, by, done = waiting
        by.add(effect.member)
        if len(by) >= needed and not done.done():
            done.set_result(None)

    def commit(self) -> None:
        """Write what the store journaled to durable storage (no-op with the memory backend).
        A storage failure stops the node: it can no longer keep what it acknowledges."""
        if self.storage is None:
            return
        started = time.perf_counter()
        try:
            rows = self.storage.flush(self.node)
        except Exception as exc:
            self._pending.clear()   # nothing of the failed batch may leave the node
            self.log.error("storage commit failed; stopping the node", exc_info=exc)
            self.fail(f"storage commit failed: {exc}")
            raise GossipError(f"storage commit failed, the node is stopping: {exc}") from None
        if rows:
            self.commit_seconds.observe(time.perf_counter() - started)

    def join(self, addresses: list[str], timeout: float) -> Awaitable[dict[str, Any]]:
        """Contact `addresses`; resolves with the members known once one of them answered."""
        node = self.node
        before = {m.id for m in node.members.all()}
        # A member reached by a DNS name (or through NAT) advertises another address than the one
        # dialled, so a join_ack arriving since now counts as an answer too (nodes send one only
        # in answer to a join).
        acks = node.stats["in.join_ack"]
        answered: Callable[[], bool] = lambda: node.stats["in.join_ack"] > acks or any(  # noqa: E731
            m.addr in addresses for m in node.members.all() if m.status in ("alive", "suspect"))
        self.queue(node.join(time.time(), addresses))

        async def wait() -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while not answered() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not answered():
                raise TimeoutError(f"no answer from {', '.join(addresses)} within {timeout:g} s")
            new = sorted({m.id for m in node.members.all()} - before)
            return {"joined": True, "new_members": new, "members": len(node.members.reachable_ids()) + 1}
        return wait()

    def block(self, peers: list[str]) -> dict[str, Any]:
        self.blocked = set(peers)
        return {"blocked": sorted(self.blocked)}

    # -- periodic work -----------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        interval = self.node.storage.flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self.commit()

    async def _return_memory(self) -> None:
        """Give freed heap back to the OS now and then (glibc keeps it otherwise): after a burst -
        a flood of junk frames, a large sync - the node's RSS returns near its baseline."""
        trim = _malloc_trim()
        if trim is None:
            return
        while True:
            await asyncio.sleep(MEMORY_TRIM_S)
            trim(0)

    # -- observing ---------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """The runtime's own counters (bytes, sockets, failures), beside the kernel's stats."""
        return {**self.io, "peers_connected": len(self.peers),
                "hook_errors": sum(self.observers.hook_errors.values())}

"""ZeroMQ runtime: drives one kernel Node over real sockets on asyncio.

Topology follows Zyre: one ROUTER inbox bound on the node's address, and one DEALER per
peer address connected to that peer's inbox. Per-peer DEALERs mean a slow or dead peer
can only fill its own bounded queue (SNDHWM), never block traffic to others; a full queue
makes a send fail at once (counted as ``send_blocked``) instead of buffering without
limit. Sockets use LINGER 0, except that on graceful leave the final messages get a short
linger so they actually go out.

We deliberately do not set ZMQ_IMMEDIATE on the DEALERs: with it, the very first messages
to a freshly connected peer (the join) are refused until TCP completes.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter, deque
from typing import Any

import orjson
import pluggy
import zmq
import zmq.asyncio

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.effects import Dropped, Effect, KeyChanged, MemberChanged, Notice, RoundCompleted, Schedule, Send
from gossipmq.core.errors import RemoteProtocolError
from gossipmq.core.limits import RateLimiter
from gossipmq.core.node import Node
from gossipmq.transports import kv_control
from gossipmq.transports.chaos import Chaos
from gossipmq.transports.seeds import SeedResolver

log = logging.getLogger("gossipmq")

INBOX_RCVHWM = 10_000
PEER_SNDHWM = 1_000
LEAVE_FLUSH_S = 0.5


class ZmqRuntime:
    def __init__(self, node: Node, *, bind: str, control: str | None, pm: pluggy.PluginManager | None = None,
                 socket_options: dict[str, dict[str, Any]] | None = None, chaos: Chaos | None = None,
                 seeds: SeedResolver | None = None, security: Any | None = None, storage: Any | None = None) -> None:
        self.node = node
        #: durable replica (transports/storage.py SqliteStorage) or None for the memory backend
        self.storage = storage
        #: addresses we neither send to nor accept from (`block` control command: test partitions)
        self.blocked: set[str] = set()
        #: transport half of a security plugin (transports/curve.py CurveTransport) or None
        self.security = security
        limits = node.limits
        self.rate = RateLimiter(limits.peer_rate, limits.peer_burst, limits.tracked_peers)
        self.chaos = chaos            # fault injection on outgoing messages (transports/chaos.py)
        self.seeds = seeds            # seeds given as DNS names, re-resolved on every join
        self.member_events: deque[dict[str, Any]] = deque(maxlen=1000)  # for `members --watch`
        self._event_seq = 0
        self.bind = bind
        self.control_endpoint = control
        self.pm = pm
        self.socket_options = socket_options or {}
        self.actx = zmq.asyncio.Context()
        self.sctx = zmq.Context.shadow(self.actx.underlying)
        self.peers: dict[str, zmq.Socket] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.io: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.exit_after_leave = False
        self._logged_causes: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, install_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self.inbox = self.actx.socket(zmq.ROUTER)
        self.inbox.setsockopt(zmq.LINGER, 0)
        # per connection; with MAXMSGSIZE this bounds what one peer can make us buffer ([limits])
        self.inbox.setsockopt(zmq.RCVHWM, self.node.limits.inbox_hwm)
        self.inbox.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # libzmq's hard guard; frames between max_frame_bytes and this are counted as oversized.
        self.inbox.setsockopt(zmq.MAXMSGSIZE, 2 * self.node.gossip.max_frame_bytes + 4096)
        self._apply_options(self.inbox, "inbox")
        if self.security is not None:
            await self.security.start(self)
            self.security.configure_inbox(self.inbox)
        self.inbox.bind(self.bind)
        tasks = [asyncio.create_task(self._receive_loop())]
        if self.control_endpoint:
            self.control = self.actx.socket(zmq.REP)
            self.control.setsockopt(zmq.LINGER, 0)
            self.control.bind(self.control_endpoint)
            tasks.append(asyncio.create_task(self._control_loop()))
        tasks.append(asyncio.create_task(self._convergence_loop()))
        if self.storage is not None:
            tasks.append(asyncio.create_task(self._flush_loop()))
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.stopping.set)
        log.info("node %s listening on %s (advertised %s, incarnation %d)", self.node.node_id, self.bind,
                 self.node.address, self.node.inc)
        self._apply(self.node.start(time.time()))
        if self.pm is not None:
            self.pm.hook.gossipmq_node_started(node_id=self.node.node_id, address=self.node.address, config=None)
        try:
            await self.stopping.wait()
            log.info("node %s leaving the cluster", self.node.node_id)
            self._apply(self.node.leave(time.time()))
            await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def close(self) -> None:
        if self.storage is not None:
            self.commit()
            self.storage.close()
        for handle in self.timers.values():
            handle.cancel()
        for sock in self.peers.values():
            sock.close(linger=int(LEAVE_FLUSH_S * 1000))
        self.peers.clear()
        self.inbox.close(linger=0)
        if getattr(self, "control", None) is not None:
            self.control.close(linger=0)
        if self.security is not None:
            self.security.stop()
        self.actx.term()

    # -- receiving ---------------------------------------------------------------------------
    async def _receive_loop(self) -> None:
        node = self.node
        received = 0
        while True:
            received += 1
            if received % 64 == 0:
                # A ready recv completes without yielding to the event loop: under a flood this
                # loop would starve timers (heartbeats) and the control channel. Yield now and then.
                await asyncio.sleep(0)
            peer: str | None = None
            if self.security is None:
                frames = await self.inbox.recv_multipart()
            else:  # zero-copy frames carry the CURVE-authenticated User-Id
                zframes = await self.inbox.recv_multipart(copy=False)
                peer = self.security.identify(zframes[0])
                frames = [f.bytes for f in zframes]
            routing_id, frames = frames[0], frames[1:]
            self.io["bytes_in"] += sum(len(f) for f in frames)
            now = time.time()
            # per-peer token bucket, keyed by who the transport says it is (never by the message)
            if not self.rate.allow(peer if peer is not None else routing_id, now):
                self._apply(node.record_drop(now, "rate_limited", f"peer {peer or routing_id.hex()} "
                                                                  f"exceeds {self.rate.rate:g} messages/s"))
                continue
            try:
                env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes, limits=node.limits)
            except RemoteProtocolError as exc:
                self._apply(node.record_drop(now, exc.cause, exc.detail))
                continue
            if self.blocked and env.addr in self.blocked:
                self.io["blocked_in"] += 1
                continue
            if self.security is not None and peer is None:
                self._apply(node.record_drop(now, "revoked_key", f"{env.type} from {env.src!r} arrived on a "
                                                                 f"session whose key is no longer trusted"))
                continue
            try:
                effects = node.handle_message(now, env, peer=peer)
            except Exception as exc:  # a handler bug must not take the node down; say so loudly
                log.exception("handler failed on %s from %s", env.type, env.src)
                effects = node.record_drop(now, "handler_error", f"{env.type} from {env.src}: {exc!r}")
            if self.security is not None:
                self.security.after_input()   # a peer announced a new key: re-dial it before replying
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
            else:
                self._observe(effect)

    def _send(self, send: Send) -> None:
        if self.seeds is not None and send.address in self.seeds.names:
            task = asyncio.ensure_future(self._send_resolved(send))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        sock = self.peers.get(send.address)
        if sock is None:
            sock = self.sctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
            self._apply_options(sock, "outbox")
            if self.security is not None and not self.security.configure_dealer(sock, send.address):
                sock.close(linger=0)
                self.io["no_trusted_key"] += 1
                self._log_drop(Dropped("no_trusted_key", f"not sending to {send.address}: no trusted key "
                                                         f"is known for it"))
                return
            try:
                sock.connect(send.address)
            except zmq.ZMQError as exc:
                sock.close()
                self._observe(Dropped("bad_address", f"cannot connect to {send.address!r}: {exc}"))
                return
            self.peers[send.address] = sock
        frames = encode_envelope(send.envelope)
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.io["send_blocked"] += 1
            return
        self.io["bytes_out"] += sum(len(f) for f in frames)

    async def _send_resolved(self, send: Send) -> None:
        """A seed given by DNS name: resolve it now (again on every retry), join every address."""
        try:
            addresses = await self.seeds.resolve(send.address)  # type: ignore[union-attr]
        except OSError as exc:
            self._observe(Dropped("seed_unresolved", f"cannot resolve seed {send.address}: {exc}"))
            return
        alias = getattr(self.security, "alias", None)
        for address in addresses:
            if alias is not None:
                alias(address, send.address)   # the resolved address keeps the seed's CURVE key
            self._send(Send(address, send.envelope))

    def apply(self, effects: list[Effect]) -> None:
        """Carry out kernel effects produced outside the receive loop (security hooks)."""
        self._apply(effects)

    def close_peer(self, address: str) -> None:
        """Forget the DEALER to `address` (its queue is dropped); the next send dials afresh."""
        sock = self.peers.pop(address, None)
        if sock is not None:
            sock.close(linger=0)

    async def rebind_inbox(self) -> None:
        """Unbind and bind the inbox again: every inbound session is cut (peers reconnect at
        once and pass ZAP again), and new security options (a rotated key) take effect."""
        endpoint = self.inbox.last_endpoint.decode()
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

    def _schedule(self, item: Schedule) -> None:
        assert self._loop is not None
        old = self.timers.pop(item.timer, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, item.at - time.time())
        self.timers[item.timer] = self._loop.call_later(delay, self._fire, item.timer)

    def _fire(self, timer: str) -> None:
        self.timers.pop(timer, None)
        self._apply(self.node.handle_timer(time.time(), timer))

    def _apply_options(self, sock: zmq.Socket, role: str) -> None:
        for name, value in self.socket_options.get(role, {}).items():
            setattr(sock, name, value)

    # -- observing ---------------------------------------------------------------------------
    def _observe(self, event: Any) -> None:
        node_id = self.node.node_id
        hook = self.pm.hook if self.pm is not None else None
        if isinstance(event, MemberChanged):
            m = event.member
            self._event_seq += 1
            self.member_events.append({"seq": self._event_seq, "time": time.time(), "reason": event.reason,
                                       "previous": event.previous, "member": m})
            extra = f": {m['detail']}" if m.get("detail") else ""
            log.info("member %s %s (%s -> %s, incarnation %d)%s", m["id"], event.reason, event.previous,
                     m["status"], m["incarnation"], extra)
            if event.reason in ("reaped", "rejoined"):
                # A rejoined member is a new process: our old DEALER may sit in reconnect backoff
                # (up to RECONNECT_IVL_MAX) and hold our probes long enough to suspect it. Start fresh.
                sock = self.peers.pop(m["address"], None)
                if sock is not None:
                    sock.close(linger=0)
            if hook:
                hook.gossipmq_member_changed(node_id=node_id, member=m, previous=event.previous, reason=event.reason)
        elif isinstance(event, KeyChanged):
            log.debug("key %s changed (%s)", event.key, event.source)
            if hook:
                hook.gossipmq_key_changed(node_id=node_id, key=event.key, entry=event.entry, source=event.source)
        elif isinstance(event, RoundCompleted):
            if hook:
                hook.gossipmq_round_completed(node_id=node_id, round=event.round, stats=event.stats)
        elif isinstance(event, Dropped):
            self._log_drop(event)
            if hook:
                hook.gossipmq_message_dropped(node_id=node_id, cause=event.cause, detail=event.detail)
        elif isinstance(event, Notice):
            log.info("%s: %s", event.kind, event.detail)

    def _log_drop(self, event: Dropped) -> None:
        """One line per cause the first time, then one line per 1000 more of that cause."""
        self._logged_causes[event.cause] += 1
        n = self._logged_causes[event.cause]
        if n == 1 or n % 1000 == 0:
            log.warning("dropped frame (%s, %d so far): %s", event.cause, n, event.detail)

    # -- control -----------------------------------------------------------------------------
    async def _control_loop(self) -> None:
        while True:
            raw = await self.control.recv()
            try:
                request = orjson.loads(raw)
                if self.security is not None and str(request.get("cmd", "")).startswith("keys_"):
                    result = await self.security.control(request)
                else:
                    result = self._control(request)
                reply = {"ok": True, "result": result}
            except Exception as exc:  # the control channel reports every failure to the caller
                reply = {"ok": False, "error": str(exc) or type(exc).__name__}
            await self.control.send(orjson.dumps(reply, default=str))
            if self.exit_after_leave:
                self.stopping.set()

    def _control(self, req: dict[str, Any]) -> Any:
        node, now = self.node, time.time()
        cmd = req.get("cmd")
        if cmd in kv_control.COMMANDS:
            result, effects = kv_control.handle(node, req, now)
            if cmd in kv_control.MUTATIONS:
                self.commit()   # durable before it is acknowledged and before its dot leaves us
            self._apply(effects)
            return result
        if cmd == "block":   # partition this node from these peer addresses (both directions)
            self.blocked = {str(a) for a in req.get("peers", [])}
            return {"blocked": sorted(self.blocked)}
        if cmd == "members":
            return node.members_view()
        if cmd == "status":
            status = node.status_view(now)
            status.update(bytes_in=self.io["bytes_in"], bytes_out=self.io["bytes_out"],
                          send_blocked=self.io["send_blocked"], peers_connected=len(self.peers))
            status["health_score"] = getattr(node.failure_detector, "health_score", None)
            if self.chaos is not None:
                status["chaos"] = dict(self.chaos.stats)
            return status
        if cmd == "events":
            after = int(req.get("after", 0))
            return {"last": self._event_seq, "events": [e for e in self.member_events if e["seq"] > after]}
        if cmd == "leave":
            self.exit_after_leave = True
            return {"node_id": node.node_id, "leaving": True}
        if cmd == "keys":
            prefix = str(req.get("prefix", ""))
            return sorted(k for k in node.store.entries if node.store.is_live(k) and k.startswith(prefix))
        raise ValueError(f"unknown control command {cmd!r}")

    def commit(self) -> None:
        """Write what the store journaled to durable storage (no-op with the memory backend)."""
        if self.storage is not None:
            self.storage.flush(self.node)

    async def _flush_loop(self) -> None:
        interval = self.node.storage.flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self.commit()

    async def _convergence_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.node.check_convergence(time.time())

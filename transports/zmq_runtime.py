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
from collections import Counter
from typing import Any

import orjson
import pluggy
import zmq
import zmq.asyncio

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.effects import Dropped, Effect, KeyChanged, MemberChanged, Notice, RoundCompleted, Schedule, Send
from gossipmq.core.errors import RemoteProtocolError
from gossipmq.core.node import Node

log = logging.getLogger("gossipmq")

INBOX_RCVHWM = 10_000
PEER_SNDHWM = 1_000
LEAVE_FLUSH_S = 0.5


class ZmqRuntime:
    def __init__(self, node: Node, *, bind: str, control: str | None, pm: pluggy.PluginManager | None = None,
                 socket_options: dict[str, dict[str, Any]] | None = None) -> None:
        self.node = node
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
        self.inbox.setsockopt(zmq.RCVHWM, INBOX_RCVHWM)
        self.inbox.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # libzmq's hard guard; frames between max_frame_bytes and this are counted as oversized.
        self.inbox.setsockopt(zmq.MAXMSGSIZE, 4 * self.node.gossip.max_frame_bytes + 4096)
        self._apply_options(self.inbox, "inbox")
        self.inbox.bind(self.bind)
        tasks = [asyncio.create_task(self._receive_loop())]
        if self.control_endpoint:
            self.control = self.actx.socket(zmq.REP)
            self.control.setsockopt(zmq.LINGER, 0)
            self.control.bind(self.control_endpoint)
            tasks.append(asyncio.create_task(self._control_loop()))
        tasks.append(asyncio.create_task(self._convergence_loop()))
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
        for handle in self.timers.values():
            handle.cancel()
        for sock in self.peers.values():
            sock.close(linger=int(LEAVE_FLUSH_S * 1000))
        self.peers.clear()
        self.inbox.close(linger=0)
        if getattr(self, "control", None) is not None:
            self.control.close(linger=0)
        self.actx.term()

    # -- receiving ---------------------------------------------------------------------------
    async def _receive_loop(self) -> None:
        node = self.node
        while True:
            frames = await self.inbox.recv_multipart()
            frames = frames[1:]  # routing id
            self.io["bytes_in"] += sum(len(f) for f in frames)
            now = time.time()
            try:
                env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes)
            except RemoteProtocolError as exc:
                self._apply(node.record_drop(now, exc.cause, exc.detail))
                continue
            try:
                effects = node.handle_message(now, env)
            except Exception as exc:  # a handler bug must not take the node down; say so loudly
                log.exception("handler failed on %s from %s", env.type, env.src)
                effects = node.record_drop(now, "handler_error", f"{env.type} from {env.src}: {exc!r}")
            self._apply(effects)

    # -- effects -----------------------------------------------------------------------------
    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
            elif isinstance(effect, Schedule):
                self._schedule(effect)
            else:
                self._observe(effect)

    def _send(self, send: Send) -> None:
        sock = self.peers.get(send.address)
        if sock is None:
            sock = self.sctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
            self._apply_options(sock, "outbox")
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
            extra = f": {m['detail']}" if m.get("detail") else ""
            log.info("member %s %s (%s -> %s, incarnation %d)%s", m["id"], event.reason, event.previous,
                     m["status"], m["incarnation"], extra)
            if event.reason == "reaped":
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
        if cmd == "put":
            entry, effects = node.put(now, str(req["key"]), req.get("value"))
            self._apply(effects)
            return {"key": entry.key, "value": entry.value, "origin": entry.origin, "counter": entry.counter}
        if cmd == "get":
            entry = node.get(str(req["key"]))
            if entry is None:
                return None
            return {"key": entry.key, "value": entry.value, "origin": entry.origin, "counter": entry.counter,
                    "hlc": entry.hlc, "vv": entry.vv}
        if cmd == "delete":
            entry, effects = node.delete(now, str(req["key"]))
            self._apply(effects)
            return {"key": req["key"], "deleted": entry is not None}
        if cmd == "members":
            return node.members_view()
        if cmd == "status":
            status = node.status_view(now)
            status.update(bytes_in=self.io["bytes_in"], bytes_out=self.io["bytes_out"],
                          send_blocked=self.io["send_blocked"], peers_connected=len(self.peers))
            return status
        if cmd == "leave":
            self.exit_after_leave = True
            return {"node_id": node.node_id, "leaving": True}
        if cmd == "keys":
            prefix = str(req.get("prefix", ""))
            return sorted(k for k, e in node.store.items() if not e.deleted and k.startswith(prefix))
        raise ValueError(f"unknown control command {cmd!r}")

    async def _convergence_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.node.check_convergence(time.time())

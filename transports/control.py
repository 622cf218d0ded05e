"""The control channel: how `gossipctl` client commands (and operators' scripts) talk to a node.

Wire: a ZeroMQ ROUTER on the node (ipc:// by default, or tcp://); clients connect a DEALER or
a REQ and send one JSON object per request, ``{"cmd": "put", "key": "k", "value": ...}``,
answered by ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``. A request may
carry an ``id`` (echoed in the reply, for clients that pipeline many requests on one socket) and
a ``token``. Requests are decoded into typed structs: an unknown command, a missing or mistyped
field is answered with an error that names it, never coerced.

Security: an ipc socket file is created mode 0600 whatever the umask; a tcp endpoint on a
non-loopback address is refused unless ``[node] control_token`` is set, and when a token is set
every request must carry it (docs/security.md). A second node given the same ipc endpoint
refuses to start while the first answers; a stale socket file left by a dead node is replaced.

``monitor`` turns a client connection into a stream: the node pushes its log lines (and, with
``events``, its events) to it as they happen, until the client goes away.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import msgspec
import orjson
import zmq
import zmq.asyncio

from gossipmq.core.errors import GossipError
from gossipmq.core.hashing import compare_digest
from gossipmq.core.membership import Member
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op, decode_context

from .drain import Drain

if TYPE_CHECKING:
    from .zmq_runtime import ZmqRuntime

#: tags the node manages itself (e.g. curve's announced key): operators cannot set or delete them
RESERVED_TAG_PREFIX = "gmq."


class ControlError(Exception):
    """The node could not be reached or refused the request."""


# ---- requests ---------------------------------------------------------------------------------------
Key = Annotated[str, msgspec.Meta(max_length=65_536)]
Ack = Literal["local", "majority", "all"] | Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Level = Literal["debug", "info", "warning", "error"]


class Request(msgspec.Struct, tag_field="cmd", forbid_unknown_fields=True, kw_only=True):
    token: str | None = None
    id: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)] | None = None


class Put(Request, tag="put"):
    key: Key
    value: Any
    context: str | None = None       # causal context token from a read (multi-value, mvreg)
    field: str | None = None         # OR-Map field
    ack: Ack = "local"


class PutMany(Request, tag="put_many"):
    """Many lww/multi-value puts in one request: one round trip, one commit, one set of sends."""
    items: Annotated[list[tuple[Key, Any]], msgspec.Meta(max_length=100_000)]
    ack: Ack = "local"


class Delete(Request, tag="delete"):
    key: Key
    context: str | None = None
    field: str | None = None
    ack: Ack = "local"


class Incr(Request, tag="incr"):
    key: Key
    value: Annotated[int, msgspec.Meta(ge=-(1 << 62), le=(1 << 62))] = 1
    field: str | None = None
    ack: Ack = "local"


class Sadd(Request, tag="sadd"):
    key: Key
    member: Annotated[str, msgspec.Meta(max_length=1024)]
    field: str | None = None
    ack: Ack = "local"


class Srem(Request, tag="srem"):
    key: Key
    member: Annotated[str, msgspec.Meta(max_length=1024)]
    field: str | None = None
    ack: Ack = "local"


class Get(Request, tag="get"):
    key: Key
    verbose: bool = False


class Smembers(Request, tag="smembers"):
    key: Key


class Keys(Request, tag="keys"):
    prefix: str = ""


class Members(Request, tag="members"):
    status: list[Literal["alive", "suspect", "dead", "left", "passive"]] = []
    tags: dict[str, str] = {}


class Status(Request, tag="status"):
    pass


class Rtt(Request, tag="rtt"):
    a: str
    b: str | None = None


class Info(Request, tag="info"):
    pass


class Version(Request, tag="version"):
    pass


class Events(Request, tag="events"):
    after: Annotated[int, msgspec.Meta(ge=0)] = 0


class Leave(Request, tag="leave"):
    pass


class Join(Request, tag="join"):
    addresses: Annotated[list[str], msgspec.Meta(min_length=1, max_length=256)]
    timeout: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0


class ForceLeave(Request, tag="force_leave"):
    member: str


class TagsSet(Request, tag="tags_set"):
    tags: dict[str, str]


class TagsDelete(Request, tag="tags_delete"):
    keys: list[str]


class Block(Request, tag="block"):
    """Partition this node from these peer addresses, both directions (tests, drills)."""

    peers: list[str]


class Monitor(Request, tag="monitor"):
    level: Level = "info"
    logs: bool = True
    events: bool = False


class KeysReload(Request, tag="keys_reload"):
    pass


class KeysRotate(Request, tag="keys_rotate"):
    key: str


class KeysStatus(Request, tag="keys_status"):
    pass


REQUESTS: tuple[type[Request], ...] = (
    Put, PutMany, Delete, Incr, Sadd, Srem, Get, Smembers, Keys, Members, Status, Rtt, Info, Version, Events, Leave,
    Join, ForceLeave, TagsSet, TagsDelete, Block, Monitor, KeysReload, KeysRotate, KeysStatus)
COMMANDS = tuple(sorted(cast(str, r.__struct_config__.tag) for r in REQUESTS))   # every tag= above is a str
_decode = msgspec.json.Decoder(Put | PutMany | Delete | Incr | Sadd | Srem | Get | Smembers | Keys | Members | Status
                               | Rtt | Info | Version | Events | Leave | Join | ForceLeave | TagsSet | TagsDelete
                               | Block | Monitor | KeysReload | KeysRotate | KeysStatus).decode
MAX_REQUEST_BYTES = 8 << 20
WRITE_SLICE = 256   # writes of one put_many applied per loop turn (then timers and the inbox run)


def is_local(ack: str | int) -> bool:
    """Does this acknowledgement level ask for no copy beyond this node's own?"""
    return ack == "local" or ack == 1


def decode_request(raw: bytes) -> Request:
    """Bytes -> a typed request; ValueError whose message names the command or field at fault."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"request of {len(raw)} bytes exceeds {MAX_REQUEST_BYTES}")
    try:
        return _decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "at `$.cmd`" in text:
            try:
                cmd = orjson.loads(raw).get("cmd")
            except (orjson.JSONDecodeError, AttributeError):
                cmd = None
            raise ValueError(f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})") from None
        if "missing required field `cmd`" in text:
            raise ValueError(f"the request names no command: add \"cmd\" (one of {', '.join(COMMANDS)})") from None
        raise ValueError(f"bad request: {text.replace('`$.', '`')}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"a request is one JSON object: {exc}") from None


# ---- endpoints ----------------------------------------------------------------------------------------
def ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None


def ipc_listener_alive(path: str) -> bool | None:
    """Is something accepting connections on the unix socket `path`? None when no such file."""
    if not os.path.exists(path):
        return None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
    finally:
        probe.close()


def _reason(exc: zmq.ZMQError) -> str:
    """libzmq's message without the "(addr=...)" it appends (we name the address ourselves)."""
    return str(exc.strerror).split(" (addr=")[0]


def tcp_host(endpoint: str) -> str | None:
    if not endpoint.startswith("tcp://"):
        return None
    host = endpoint[len("tcp://"):].rpartition(":")[0]
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- client ---------------------------------------------------------------------------------------
def _check_ipc(endpoint: str) -> None:
    """ControlError at once for an ipc endpoint with no socket file or a stale one (no listener)."""
    path = ipc_path(endpoint)
    if path is not None:
        alive = ipc_listener_alive(path)
        if alive is None:
            raise ControlError(f"no node answered on {endpoint}: no such socket file (is it running?)")
        if not alive:
            raise ControlError(f"no node is listening on {endpoint}: the socket file is stale (left by a node "
                               f"that exited)")


def request(endpoint: str, payload: dict[str, Any], timeout: float = 5.0, token: str | None = None) -> Any:
    """Send one request to the node at `endpoint` and return its result (ControlError otherwise)."""
    _check_ipc(endpoint)
    if token:
        payload = {**payload, "token": token}
    try:
        raw = orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError) as exc:   # e.g. a value nested deeper than JSON encoders go
        raise ControlError(f"the request cannot be sent as JSON (a value nested too deeply?): {exc}") from None
    ctx: zmq.SyncContext = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if tcp_host(endpoint) and ":" in (tcp_host(endpoint) or ""):
        sock.setsockopt(zmq.IPV6, 1)
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", raw])
        if not sock.poll(int(timeout * 1000)):
            raise ControlError(f"no node answered on {endpoint} within {timeout:g}s (is it running?)")
        reply = orjson.loads(sock.recv_multipart()[-1])
    except zmq.ZMQError as exc:
        raise ControlError(f"cannot reach {endpoint}: {exc}") from None
    finally:
        sock.close()
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "request failed"))
    return reply.get("result")


def stream(endpoint: str, payload: dict[str, Any], on_item: Callable[[dict[str, Any]], None],
           token: str | None = None, stop: Callable[[], bool] = lambda: False, silence_s: float = 10.0) -> None:
    """Send a streaming request (`monitor`) and hand every pushed item to `on_item` until `stop()`
    or the node goes silent for `silence_s` (it sends a heartbeat every 2 s): ControlError then."""
    _check_ipc(endpoint)
    if token:
        payload = {**payload, "token": token}
    ctx: zmq.SyncContext = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", orjson.dumps(payload)])
        last = time.monotonic()
        while not stop():
            if not sock.poll(200):
                if time.monotonic() - last > silence_s:
                    raise ControlError(f"the node on {endpoint} stopped answering")
                continue
            last = time.monotonic()
            item = orjson.loads(sock.recv_multipart()[-1])
            if item.get("ok") is False:
                raise ControlError(item.get("error", "request failed"))
            if "heartbeat" not in item:
                on_item(item)
    finally:
        sock.close()


# ---- views (read-only) --------------------------------------------------------------------------------
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("gossipmq")
    except PackageNotFoundError:
        return "unknown"


def _protocol_version() -> int:
    from gossipmq.core.messages import PROTOCOL_VERSION
    return PROTOCOL_VERSION


def _context(token: str | None) -> dict[str, int] | None:
    return decode_context(token) if token else None


def member_view(member: Member) -> dict[str, Any]:
    return {"id": member.id, "address": member.addr, "status": member.status, "incarnation": member.inc,
            "tags": dict(member.tags), "heartbeat": member.hb}


def members_view(node: Node, statuses: Sequence[str] | None = None, tags: dict[str, str] | None = None
                 ) -> list[dict[str, Any]]:
    """This node first (``self: true``), then every member it knows, by id; filtered by status
    and by tags (every given tag must match)."""
    me = {"id": node.node_id, "address": node.address, "status": node.status, "incarnation": node.inc,
          "tags": dict(node.tags), "heartbeat": node.hb, "self": True}
    rows = [me, *(member_view(m) for m in sorted(node.members.all(), key=lambda m: m.id))]
    overlay = node.cluster.overlay
    if overlay.partial:   # hyparview: the table is the active view; the passive view and estimate beside it
        view = overlay.describe()
        me.update(view="self", overlay=view["overlay"], size_estimate=view["size_estimate"])
        for row in rows[1:]:
            row["view"] = "active"
        rows += [{"id": p["id"], "address": p["address"], "status": "passive", "incarnation": 0, "tags": {},
                  "heartbeat": 0, "view": "passive"} for p in view["passive"] if p["id"] not in node.members]
    if statuses:
        rows = [r for r in rows if r["status"] in statuses]
    if tags:
        rows = [r for r in rows if all(r["tags"].get(k) == v for k, v in tags.items())]
    return rows


def status_view(runtime: ZmqRuntime) -> dict[str, Any]:
    """`gossipctl status --json`: the shape the README's JSON contract promises."""
    node = runtime.node
    now = time.time()
    counts = node.members.counts()
    counts[node.status] = counts.get(node.status, 0) + 1
    stats = node.stats
    view: dict[str, Any] = {
        "node_id": node.node_id,
        "address": node.address,
        "status": node.status,
        "incarnation": node.inc,
        "joined": node.cluster.joined,
        "members": counts,
        "keys": node.store.live_keys,
        "entries": len(node.store),
        "checksum": node.store.checksum(),
        "converged": node.convergence.converged(),
        "converged_since": node.convergence.since,
        **node.replication.lag.summary(now),
        "round": node.round,
        "messages_in": sum(v for k, v in stats.items() if k.startswith("in.")),
        "messages_out": sum(v for k, v in stats.items() if k.startswith("out.")),
        "dropped": {k.split(".", 1)[1]: v for k, v in stats.items() if k.startswith("dropped.")},
        "deferred_bytes": stats["deferred_bytes"],
        "storage": node.storage.backend,
        "conflicts": {**node.router.totals(), **node.replication.gc.stats,
                      "tombstones_pending": len(node.replication.gc.candidates),
                      "bad_entries": stats["dropped.bad_entry"], "context_compacted": stats["context_compacted"]},
        "strategies": dict(node.strategy_names),
        "health_score": getattr(node.failure_detector, "health_score", None),
        **({"overlay": node.cluster.overlay.describe()} if node.cluster.overlay.partial else {}),
        "uptime_s": round(now - runtime.started_at, 3) if runtime.started_at else 0.0,
    }
    io = runtime.counters()
    view.update(bytes_in=io.get("bytes_in", 0), bytes_out=io.get("bytes_out", 0),
                send_blocked=io.get("send_blocked", 0), peers_connected=io["peers_connected"],
                hook_errors=dict(runtime.observers.hook_errors), task_failures=io.get("task_failures", 0),
                timer_errors=io.get("timer_errors", 0), encode_errors=io.get("encode_errors", 0))
    if runtime.chaos is not None:
        view["chaos"] = dict(runtime.chaos.stats)
    return view


def info_view(runtime: ZmqRuntime) -> dict[str, Any]:
    """`gossipctl info`: version, uptime, configuration summary and every counter."""
    node = runtime.node
    return {
        "version": package_version(),
        "protocol": _protocol_version(),
        "node_id": node.node_id,
        "address": node.address,
        "bind": runtime.bind,
        "control": runtime.control.endpoint if runtime.control is not None else None,
        "incarnation": node.inc,
        "cluster": node.cluster_name,
        "uptime_s": round(time.time() - runtime.started_at, 3) if runtime.started_at else 0.0,
        "strategies": dict(node.strategy_names),
        "storage": node.storage.backend,
        "seeds": list(node.cluster.seeds),
        "tags": dict(node.tags),
        "counters": dict(sorted(node.stats.items())),
        "runtime": dict(sorted(runtime.counters().items())),
        "hook_errors": dict(runtime.observers.hook_errors),
    }


# ---- server ---------------------------------------------------------------------------------------
class _MonitorHandler(logging.Handler):
    """Pushes this node's log records to the monitors that asked for their level."""

    def __init__(self, server: ControlServer) -> None:
        super().__init__(logging.DEBUG)
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        node_id = getattr(record, "node_id", None)
        if node_id is not None and node_id != self.server.runtime.node.node_id:
            return
        try:
            line = {"log": {"time": record.created, "level": record.levelname.lower(), "logger": record.name,
                            "message": record.getMessage()}}
            self.server.push_log(record.levelno, line)
        except Exception:  # a log handler must never raise into the code that logged
            pass


class ControlServer:
    """The node side of the control channel (see module docstring)."""

    BATCH = 256          # requests handled per turn of the event loop (then it yields)
    BATCH_BYTES = 64 << 10   # ... or fewer once this much was read (a put_many carries many writes)
    HEARTBEAT_S = 2.0    # a monitor hears from the node at least this often

    def __init__(self, runtime: ZmqRuntime, endpoint: str, token: str = "") -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.token = token
        self.monitors: dict[bytes, tuple[int, bool, bool]] = {}   # client id -> (level, logs, events)
        self.sock: zmq.asyncio.Socket | None = None
        self._handler: _MonitorHandler | None = None
        self._saved_level: int | None = None    # the "gossipmq" logger's level before a monitor lowered it
        self._path: str | None = None
        self.requests = 0
        self.errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: Drain | None = None
        self._beat: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def bind(self, actx: zmq.asyncio.Context) -> None:
        """Bind the endpoint, or GossipError naming the problem (busy, unsafe, invalid)."""
        endpoint = self.endpoint
        host = tcp_host(endpoint)
        if host is not None and not is_loopback(host) and not self.token:
            raise GossipError(f"control endpoint {endpoint} is reachable from other hosts; set [node] control_token "
                              f"(or GOSSIPMQ_CONTROL_TOKEN) so requests must carry it, or use ipc:// or a loopback "
                              f"address")
        path = ipc_path(endpoint)
        if path is not None:
            alive = ipc_listener_alive(path)
            if alive:
                raise GossipError(f"control endpoint {endpoint} is in use by a running node; give this node its own "
                                  f"--control")
            if alive is False:
                os.unlink(path)   # a stale file left by a node that exited
        sock = actx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, 10_000)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES + 1024)
        if host is not None and ":" in host:
            sock.setsockopt(zmq.IPV6, 1)
        old_umask = os.umask(0o177) if path is not None else None
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise GossipError(f"cannot bind control endpoint {endpoint}: {_reason(exc)}") from None
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if path is not None:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            self._path = path
        self.sock = sock
        #: the same socket without asyncio: non-blocking reads of what is queued, and sends
        self._sync: zmq.SyncSocket = zmq.Socket.shadow(sock.underlying)

    def close(self) -> None:
        self.monitors.clear()
        self._monitor_level()
        if self._handler is not None:
            logging.getLogger("gossipmq").removeHandler(self._handler)
            self._handler = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass

    # -- serving ---------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Answer requests until cancelled: BATCH per loop turn, from a loop callback (drain.py);
        a failure inside ends this task, so the runtime's supervision sees it."""
        assert self.sock is not None
        self._loop = asyncio.get_running_loop()
        self._drain = Drain(self.sock, self._handle_batch, self.BATCH, max_bytes=self.BATCH_BYTES)
        try:
            await self._drain.run()
        finally:
            self._drain = None
            if self._beat is not None:
                self._beat.cancel()
                self._beat = None

    def _heartbeat(self) -> None:
        """Every 2 s while monitors are attached: a line that tells them the node is alive."""
        self._beat = None
        if not self.monitors or self._loop is None:
            return
        for client in list(self.monitors):
            self._send(client, {"heartbeat": time.time()})
        self._beat = self._loop.call_later(self.HEARTBEAT_S, self._heartbeat)

    def _handle_batch(self, batch: list[list[bytes]]) -> None:
        runtime = self.runtime
        replies: list[tuple[bytes, dict[str, Any]]] = []
        pending: list[tuple[bytes, Request, asyncio.Future[Any]]] = []
        for frames in batch:
            client, raw = frames[0], frames[-1]
            self.requests += 1
            req: Request | None = None
            try:
                req = decode_request(raw)
                self._check_token(req)
                result = self.dispatch(req, client)
                if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                    pending.append((client, req, asyncio.ensure_future(result)))
                    continue
                replies.append((client, self._ok(req, result)))
            except Exception as exc:  # every failure goes back to the caller as one line
                self.errors += 1
                replies.append((client, self._error(req, exc)))
        runtime.commit()      # one durable commit for every write of the batch, before any reply
        runtime.flush_effects()
        for client, reply in replies:
            self._send(client, reply)
        for client, req, fut in pending:
            fut.add_done_callback(partial(self._reply_done, client, req))

    def _reply_done(self, client: bytes, req: Request, fut: asyncio.Future[Any]) -> None:
        """A waiting verb finished: its result, or its failure, goes back to `client`."""
        self._send(client, self._error(req, fut.exception()) if fut.exception() else self._ok(req, fut.result()))

    def dispatch(self, req: Request, client: bytes) -> Any:
        """The answer to one request: a value, or an awaitable for verbs that wait."""
        rt, node, now = self.runtime, self.runtime.node, time.time()
        if isinstance(req, Put):
            return self._write(req.key, Op("put", req.value, _context(req.context), req.field), req.ack)
        if isinstance(req, PutMany):
            items = [(key, Op("put", value)) for key, value in req.items]
            if is_local(req.ack) and len(items) <= WRITE_SLICE:
                written, failed = rt.mutate_many(items)
                return {"written": len(written), "failed": failed, "acked": 1 if written else 0}
            return rt.write_many(items, req.ack)
        if isinstance(req, Delete):
            if not node.store.is_live(req.key):
                return {"key": req.key, "deleted": False}
            return self._write(req.key, Op("delete", None, _context(req.context), req.field), req.ack)
        if isinstance(req, Incr):
            return self._write(req.key, Op("incr", req.value, None, req.field), req.ack)
        if isinstance(req, Sadd | Srem):
            return self._write(req.key, Op(req.__struct_config__.tag, req.member, None, req.field),  # type: ignore[arg-type]
                               req.ack)
        if isinstance(req, Get):
            read = node.read(req.key)
            if read is None or (read.deleted and not req.verbose):
                return None
            return read.as_dict(verbose=req.verbose)
        if isinstance(req, Smembers):
            read = node.read(req.key)
            if read is None or read.deleted:
                return None
            if not isinstance(read.value, list):
                raise ValueError(f"{req.key!r} is not a set (it is {read.kind or 'lww'})")
            return read.as_dict()
        if isinstance(req, Keys):
            return node.store.live_keys_under(req.prefix)
        if isinstance(req, Members):
            return members_view(node, statuses=req.status, tags=req.tags)
        if isinstance(req, Status):
            return status_view(rt)
        if isinstance(req, Rtt):
            return node.coordinates.estimate(node.node_id, req.a, req.b)
        if isinstance(req, Info):
            return info_view(rt)
        if isinstance(req, Version):
            return {"version": package_version(), "protocol": _protocol_version()}
        if isinstance(req, Events):
            ring = rt.observers.member_events
            return {"last": rt.observers.member_seq, "events": [e for e in ring if e["seq"] > req.after]}
        if isinstance(req, Leave):
            asyncio.get_running_loop().call_later(0.05, rt.stopping.set)   # after the reply went out
            return {"node_id": node.node_id, "leaving": True}
        if isinstance(req, Join):
            return rt.join(req.addresses, req.timeout)
        if isinstance(req, ForceLeave):
            rt.queue(node.force_leave(now, req.member))
            return {"member": req.member, "status": "left"}
        if isinstance(req, TagsSet | TagsDelete):
            tags = dict(node.tags)
            names = list(req.tags) if isinstance(req, TagsSet) else req.keys
            reserved = [k for k in names if k.startswith(RESERVED_TAG_PREFIX)]
            if reserved:
                raise ValueError(f"tags starting with {RESERVED_TAG_PREFIX!r} are managed by gossipmq: {reserved}")
            if isinstance(req, TagsSet):
                tags.update(req.tags)
            else:
                for name in req.keys:
                    tags.pop(name, None)
            rt.queue(node.set_tags(now, tags))
            return {"tags": dict(node.tags), "incarnation": node.inc}
        if isinstance(req, Block):
            return rt.block(req.peers)
        if isinstance(req, Monitor):
            return self.add_monitor(client, req)
        if isinstance(req, KeysReload | KeysRotate | KeysStatus):
            if rt.security is None:
                raise ValueError(f"{req.__struct_config__.tag} needs curve security ([security] strategy = \"curve\")")
            return rt.security.control(msgspec.to_builtins(req))
        raise ValueError(f"unhandled command {req.__struct_config__.tag!r}")

    def _write(self, key: str, op: Op, ack: Any) -> Any:
        if ack != "local":
            return self.runtime.write_acked(key, op, ack)
        return self.runtime.mutate(key, op)

    def _check_token(self, req: Request) -> None:
        if self.token and not compare_digest((req.token or "").encode(), self.token.encode()):
            raise PermissionError("this node's control endpoint needs its access token (--token or "
                                  "GOSSIPMQ_CONTROL_TOKEN)" if not req.token else "wrong access token")

    @staticmethod
    def _ok(req: Request, result: Any) -> dict[str, Any]:
        reply: dict[str, Any] = {"ok": True, "result": result}
        if req.id is not None:
            reply["id"] = req.id
        return reply

    @staticmethod
    def _error(req: Request | None, exc: BaseException | None) -> dict[str, Any]:
        message = (str(exc) or type(exc).__name__) if exc is not None else "request failed"
        if isinstance(exc, KeyError):
            message = f"missing {exc}"
        reply: dict[str, Any] = {"ok": False, "error": message}
        if req is not None and req.id is not None:
            reply["id"] = req.id
        return reply

    def _send(self, client: bytes, reply: dict[str, Any]) -> bool:
        if self.sock is None:
            return False
        try:
            self._sync.send_multipart([client, b"", orjson.dumps(reply, default=str)], flags=zmq.NOBLOCK)
            if self._drain is not None:
                self._drain.kick()   # this send may have consumed the signal of a request queued meanwhile
            return True
        except zmq.ZMQError as exc:   # the client went away (EHOSTUNREACH) or reads too slowly (EAGAIN)
            if (exc.errno == errno.EHOSTUNREACH or exc.errno == zmq.EHOSTUNREACH) and client in self.monitors:
                del self.monitors[client]
                self._monitor_level()
            return False

    # -- monitor ---------------------------------------------------------------------------------
    def add_monitor(self, client: bytes, req: Monitor) -> dict[str, Any]:
        self.monitors[client] = (logging.getLevelName(req.level.upper()), req.logs, req.events)
        if req.logs and self._handler is None:
            self._handler = _MonitorHandler(self)
            logging.getLogger("gossipmq").addHandler(self._handler)
        self._monitor_level()
        if self._beat is None and self._loop is not None:
            self._beat = self._loop.call_later(self.HEARTBEAT_S, self._heartbeat)
        return {"monitoring": self.runtime.node.node_id, "level": req.level, "logs": req.logs, "events": req.events}

    def _monitor_level(self) -> None:
        """Records below the "gossipmq" logger's level are never created, so a `--level debug`
        monitor would see no debug line: lower the logger to the lowest level a monitor asks for
        (the run's own stderr handler keeps its level) and restore it once no such monitor is left."""
        logger = logging.getLogger("gossipmq")
        if self._saved_level is None:
            self._saved_level = logger.level
        logger.setLevel(self._saved_level)
        wanted = min((level for level, logs, _ in self.monitors.values() if logs), default=None)
        if wanted is not None and wanted < logger.getEffectiveLevel():
            logger.setLevel(wanted)

    def push_log(self, levelno: int, line: dict[str, Any]) -> None:
        for client, (level, logs, _) in list(self.monitors.items()):
            if logs and levelno >= level:
                self._send(client, line)

    def push_event(self, event: dict[str, Any]) -> None:
        for client, (_, _, events) in list(self.monitors.items()):
            if events:
                self._send(client, {"event": event})

"""Hostile-input limits: what one message may carry and how fast one peer may talk.

Every limit turns into a counted, once-per-cause-logged drop with a stable cause label
(``limit_entries``, ``limit_key``, ``rate_limited``...), never into an exception that escapes
the receive loop. The structural limits are checked by the codec right after decoding, so no
handler ever sees an oversized message. Rates are token buckets keyed by who the sender is,
never by a connection (a flooder that reconnects keeps its bucket):

* with CURVE, the authenticated member id (`peer_rate`);
* without it, the sending host's address (`address_rate`, checked before decoding: cheapest),
  then the host and the sender id the message claims (`peer_rate`) - a spoofed id only ever
  shares a bucket with the spoofer's own host;
* senders the node does not know (joins, strangers) share one small bucket per host
  (`stranger_rate`): forged joins cannot grow the member table or make the node dial
  sender-chosen addresses faster than that.

Frame size stays in [gossip] max_frame_bytes (the codec's check) and the frame count is fixed by
the protocol (2). Member metadata (tags) is bounded by the membership table (MAX_TAGS_BYTES).
Memory: libzmq queues at most `inbox_hwm` messages per connection, each at most MAXMSGSIZE
(2 x max_frame_bytes; a larger frame disconnects the sender), so one connection can make a node
buffer at most inbox_hwm x 2 x max_frame_bytes before TCP pushes back.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Annotated, Any

import msgspec
import orjson

from .clock import encode_hook
from .errors import RemoteProtocolError
from .messages import Entry, Envelope, MemberUpdate, body_lists


class LimitsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[limits]: per-message and per-peer bounds on received input."""

    max_entries: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 4096       # entries per message (rumors + delta)
    max_members: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 1024       # membership claims per message
    max_origins: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 4096       # digest / coverage / version-vector size
    max_key_bytes: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 1024     # one key, UTF-8
    max_value_bytes: Annotated[int, msgspec.Meta(ge=1, le=64 << 20)] = 256 * 1024  # one value, as JSON
    max_value_depth: Annotated[int, msgspec.Meta(ge=1, le=200)] = 64  # nesting of lists/objects in one value
    max_clock_skew_ms: Annotated[int, msgspec.Meta(ge=100, le=86_400_000)] = 60_000  # HLC ahead of our clock
    max_id_bytes: Annotated[int, msgspec.Meta(ge=32, le=4096)] = 256          # node ids and addresses
    peer_rate: Annotated[float, msgspec.Meta(ge=0, le=1e7)] = 2000.0        # messages/s from one member; 0 = no limit
    peer_burst: Annotated[int, msgspec.Meta(ge=1, le=1 << 24)] = 4000       # its token bucket depth
    address_rate: Annotated[float, msgspec.Meta(ge=0, le=1e8)] = 20_000.0   # messages/s from one host (IP); 0 = none
    address_burst: Annotated[int, msgspec.Meta(ge=1, le=1 << 24)] = 40_000
    stranger_rate: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 16.0      # messages/s from unknown senders per host
    stranger_burst: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 64
    tracked_peers: Annotated[int, msgspec.Meta(ge=16, le=1 << 20)] = 4096   # rate buckets kept (oldest evicted)
    inbox_hwm: Annotated[int, msgspec.Meta(ge=10, le=1 << 20)] = 1000       # messages queued per connection (RCVHWM)


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def str_size(text: str) -> int:
    """Bytes a string takes in JSON, quotes and escapes included (exact; fast for plain text)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(orjson.dumps(text))


def value_size(value: Any) -> int:
    """Bytes `value` takes as JSON (cheap for the common scalar cases). Call `value_problem`
    first on untrusted values: this assumes a value JSON can encode."""
    if value is None or isinstance(value, (bool, int, float)):
        return 24   # the longest 64-bit integer or float
    if isinstance(value, str):
        return str_size(value)
    return len(orjson.dumps(value))


def entry_size(entry: Entry) -> int:
    """The bytes `entry` takes in a message, its separating comma included (what byte budgets
    count): the codec's own encoding of it, exact and faster than summing field estimates. The
    entry must be storable (`value_problem` passed), as every stored or received entry is."""
    return len(_encode(entry)) + 1


_encode = msgspec.json.Encoder(enc_hook=encode_hook).encode


def value_problem(value: Any, max_depth: int) -> str | None:
    """Why `value` cannot be stored and gossiped as it is, or None. A stored value must survive a
    JSON round trip unchanged on every node: null, booleans, 64-bit integers, finite floats,
    strings, lists and objects with string keys, nested at most `max_depth` deep (iterative:
    a hostile nesting cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if item is None or kind is bool or kind is str:
            continue
        if kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return "an integer outside the 64-bit range"
        elif kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                return "a float that is not finite (NaN or infinity)"
        elif kind is list:
            if depth > max_depth:
                return f"nesting deeper than {max_depth} levels ([limits] max_value_depth)"
            stack.extend((x, depth + 1) for x in item)
        elif kind is dict:
            if depth > max_depth:
                return f"nesting deeper than {max_depth} levels ([limits] max_value_depth)"
            for k, x in item.items():
                if type(k) is not str:
                    return f"an object key that is not a string ({type(k).__name__})"
                stack.append((x, depth + 1))
        else:
            return f"a {kind.__name__}, which JSON cannot carry (use null, bool, int, float, str, list, dict)"
    return None


def _check_entries(entries: list[Entry], limits: LimitsSection) -> None:
    max_key, max_origin, max_origins = limits.max_key_bytes, limits.max_id_bytes + 16, limits.max_origins
    for entry in entries:
        key = entry.key
        if (len(key) if key.isascii() else len(key.encode())) > max_key:
            raise RemoteProtocolError("limit_key", f"key of {len(key.encode())} bytes exceeds {max_key}")
        if len(entry.origin) > max_origin:   # a member id and its life tag
            raise RemoteProtocolError("limit_id", f"entry origin of {len(entry.origin)} characters")
        if len(entry.vv) > max_origins:
            raise RemoteProtocolError("limit_origins", f"version vector of {len(entry.vv)} origins")
        value = entry.value
        if type(value) is not str:   # a string is always storable: only its size matters
            problem = value_problem(value, limits.max_value_depth)
            if problem is not None:
                raise RemoteProtocolError("bad_value", f"value under key {key[:64]!r} holds {problem}")
        size = value_size(value)
        if size > limits.max_value_bytes:
            raise RemoteProtocolError("limit_value", f"value of {size} bytes under key {key[:64]!r} "
                                                     f"exceeds {limits.max_value_bytes}")


def _check_members(members: list[MemberUpdate], limits: LimitsSection) -> None:
    for claim in members:
        if len(claim.id) > limits.max_id_bytes or len(claim.addr) > limits.max_id_bytes \
                or len(claim.by) > limits.max_id_bytes:
            raise RemoteProtocolError("limit_id", f"claim with an id/address longer than {limits.max_id_bytes}")


def check_limits(env: Envelope, limits: LimitsSection) -> None:
    """Raise RemoteProtocolError when `env` exceeds `limits` (body lists found by type, so
    strategy-owned bodies carrying entries or claims are bounded too)."""
    if len(env.src) > limits.max_id_bytes or len(env.addr) > limits.max_id_bytes:
        raise RemoteProtocolError("limit_id", f"sender id/address longer than {limits.max_id_bytes}")
    n_entries, n_members = len(env.rumors), len(env.members)
    _check_entries(env.rumors, limits)
    _check_members(env.members, limits)
    body = env.body
    for _, items in body_lists(body):
        if isinstance(items[0], Entry):
            n_entries += len(items)
            _check_entries(items, limits)
        else:
            n_members += len(items)
            _check_members(items, limits)
    for name in getattr(body, "__struct_fields__", ()):
        value = getattr(body, name)
        if isinstance(value, dict) and len(value) > limits.max_origins:
            raise RemoteProtocolError("limit_origins", f"{env.type}.{name} has {len(value)} items "
                                                       f"(at most {limits.max_origins})")
    if n_entries > limits.max_entries:
        raise RemoteProtocolError("limit_entries", f"{env.type} carries {n_entries} entries "
                                                   f"(at most {limits.max_entries})")
    if n_members > limits.max_members:
        raise RemoteProtocolError("limit_members", f"{env.type} carries {n_members} membership claims "
                                                   f"(at most {limits.max_members})")


class RateLimiter:
    """Token buckets per peer, in a bounded LRU: `allow(peer, now)` spends one token.

    Time comes in as an argument (sans-I/O). A peer that reconnects under many identities can only
    evict other buckets, not grow memory; an evicted honest peer simply starts with a full bucket.
    """

    def __init__(self, rate: float, burst: int, tracked: int = 4096) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tracked = tracked
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()  # peer -> [tokens, at]

    def allow(self, peer: Hashable, now: float) -> bool:
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[peer] = bucket
            if len(self._buckets) > self.tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer)
            elapsed = now - bucket[1]
            if elapsed > 0:
                bucket[0] = min(self.burst, bucket[0] + elapsed * self.rate)
                bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)

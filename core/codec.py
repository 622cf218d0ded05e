"""Envelope <-> ZeroMQ frames. Strict: every problem becomes a RemoteProtocolError with a
stable `cause` label (used for counters and once-per-cause logging)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .clock import encode_hook
from .errors import RemoteProtocolError
from .limits import LimitsSection, check_limits
from .messages import MAGIC, PROTOCOL_VERSION, Envelope, RawEnvelope

HEADER = MAGIC + bytes([PROTOCOL_VERSION])
DEFAULT_MAX_FRAME_BYTES = 1 << 20


_encode = msgspec.json.Encoder(enc_hook=encode_hook).encode
#: the envelope is decoded in one pass with its body left as raw JSON, then the body with the
#: decoder of its type: msgspec validates while it parses (no intermediate dicts)
_decode_raw = msgspec.json.Decoder(RawEnvelope).decode
_BODY_DECODERS: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def _body_decoder(body_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    decoder = _BODY_DECODERS.get(body_type)
    if decoder is None:
        decoder = _BODY_DECODERS[body_type] = msgspec.json.Decoder(body_type)
    return decoder


def encode_envelope(env: Envelope) -> list[bytes]:
    """Envelope -> [header frame, body frame] (msgspec's JSON encoder writes the structs directly)."""
    return [HEADER, _encode(env)]


def encoded_size(env: Envelope) -> int:
    """Bytes this envelope occupies on the wire (the simulator's byte counts)."""
    return len(HEADER) + len(_encode(env))


def decode_frames(frames: Sequence[bytes], bodies: Mapping[str, type[msgspec.Struct]],
                  max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, *,
                  limits: LimitsSection | None = None) -> Envelope:
    """Frames -> Envelope, or RemoteProtocolError naming the cause. With `limits`, a message
    carrying too many entries/claims or too large keys/values is refused here too."""
    if len(frames) != 2:
        raise RemoteProtocolError("frame_count", f"expected 2 frames, got {len(frames)}")
    header, body = frames
    if len(header) != 4 or header[:3] != MAGIC:
        raise RemoteProtocolError("bad_magic", f"header frame {bytes(header[:8])!r} is not gossipmq")
    if header[3] != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            "version", f"unsupported protocol version {header[3]} (this node speaks {PROTOCOL_VERSION})")
    if len(body) > max_frame_bytes:
        raise RemoteProtocolError("oversized", f"frame of {len(body)} bytes exceeds {max_frame_bytes}")
    try:
        raw = _decode_raw(body)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError("schema", f"envelope: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RemoteProtocolError("malformed", f"not JSON: {exc}") from None
    body_type = bodies.get(raw.type)
    if body_type is None:
        raise RemoteProtocolError("unknown_type", f"unknown message type {raw.type!r}")
    try:
        typed_body = _body_decoder(body_type).decode(raw.body)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError("schema", f"{raw.type} body: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RemoteProtocolError("malformed", f"{raw.type} body: {exc}") from None
    env = Envelope(type=raw.type, src=raw.src, addr=raw.addr, inc=raw.inc, body=typed_body,
                   members=raw.members, rumors=raw.rumors, sum=raw.sum, cluster=raw.cluster)
    if limits is not None:
        check_limits(env, limits)
    return env

"""Wire messages: one declarative module (the Zyre zre_msg.xml lesson).

Frame layout of every message (ZeroMQ multipart)::

    frame 0:  b"GMQ" + protocol version byte        (4 bytes)
    frame 1:  orjson document of an Envelope        (<= max_frame_bytes)

An Envelope carries who sent it (id, advertised address, incarnation), a typed body chosen
by ``type``, and piggybacked state that rides on every message: membership updates,
hot rumors and the sender's store checksum (for convergence monitoring).

Bodies are msgspec Structs so decoding is strict: a wrong type or a missing field is a
validation error, never a crash. Every integer is bounded at decode (`Count`: 0 .. 2^63-1), so
no peer can plant a number that later breaks an encoder, SQLite or an incarnation bump.
Strategies may add their own body types (SWIM's ping, ack, ...); the codec looks them up in a
per-node registry, and strategy bodies should use `Count` for their integers too.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 1
MAGIC = b"GMQ"
STATUSES = ("alive", "suspect", "dead", "left")
Status = Literal["alive", "suspect", "dead", "left"]
SyncMode = Literal["push", "pull", "push-pull"]
INT64_MAX = (1 << 63) - 1
#: a non-negative integer that fits a signed 64-bit column (counters, clocks, incarnations)
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
#: a dot counter (the first write of an origin is 1)
Counter = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]


# ---- dot origins: one life of one node's replica (core/replication.py explains why) -------------
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def life_tag(life: int) -> str:
    """A life number (the incarnation a replica started with) as a short base-36 tag."""
    out = ""
    while True:
        life, digit = divmod(life, 36)
        out = _B36[digit] + out
        if not life:
            return out


def origin_of(node_id: str, life: int) -> str:
    return f"{node_id}/{life_tag(life)}"


def origin_node(origin: str) -> str:
    """The member id of a dot origin (``n1/lq3x9k2a`` -> ``n1``)."""
    return origin.rpartition("/")[0] or origin


class Entry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One version of one key. Its dot (origin, counter) identifies the write uniquely.
    Untracked by the cycle collector (gc=False: 16 bytes less each, and a full collection does
    not walk a million stored versions): its fields are JSON data, which cannot form a cycle."""

    key: str
    value: Any
    deleted: bool
    origin: str
    counter: Counter
    hlc: Count
    #: causal context, origin -> counter: read-only (a kept version may hold it as a compact
    #: `clock.OwnDot`; `dict(entry.vv)` gives a dict); decoded from the wire as a dict
    vv: Mapping[str, Counter]
    sig: str = ""         # Ed25519 signature by the origin (curve security, signing = "ed25519"); relays keep it
    #: how `value`/`vv` are to be read: "" = a plain value (lww), "mv" = multi-value siblings,
    #: "crdt:<type>" = a CRDT state; see core/resolution.py and docs/conflict-resolution.md
    kind: str = ""

    @property
    def dot(self) -> tuple[str, int]:
        return (self.origin, self.counter)


class MemberUpdate(msgspec.Struct, array_like=True, frozen=True):
    """A claim about a member: SWIM precedence decides whether it replaces what we know."""

    id: str
    addr: str
    inc: Count
    status: Status
    hb: Count = 0
    tags: dict[str, str] = {}
    by: str = ""          # who asserts a suspect/dead status (Lifeguard counts independent suspectors)
    sig: str = ""         # Ed25519 signature by the member (alive/left) or by `by` (suspect/dead)


# ---- bodies owned by the kernel ---------------------------------------------------------

class Join(msgspec.Struct, frozen=True):
    """Sent to a seed (or any member) by a node that wants in."""


class JoinAck(msgspec.Struct, frozen=True):
    """The seed's reply: the member table as it knows it."""

    members: list[MemberUpdate]


class Leave(msgspec.Struct, frozen=True):
    """Graceful departure; the piggybacked 'left' update about the sender is the claim."""


class Syn(msgspec.Struct, frozen=True):
    """Opens a reconciliation. `digest` maps origin -> highest contiguous counter seen."""

    mode: SyncMode
    digest: dict[str, Count]


class SynAck(msgspec.Struct, frozen=True):
    """Reply to Syn: what the initiator lacks (pull) and/or our digest (push)."""

    digest: dict[str, Count] | None = None
    entries: list[Entry] = []
    coverage: dict[str, Count] = {}


class Ack(msgspec.Struct, frozen=True):
    """Closes a push: the entries the responder lacked."""

    entries: list[Entry] = []
    coverage: dict[str, Count] = {}


class Replicate(msgspec.Struct, frozen=True):
    """Write acknowledgement (`put --ack majority`) and hand-off on leave: store these entries and
    confirm with `token` once you hold each of them (or a version that covers it)."""

    token: Count
    entries: list[Entry]


class ReplicateAck(msgspec.Struct, frozen=True):
    token: Count


KERNEL_BODIES: dict[str, type[msgspec.Struct]] = {
    "join": Join,
    "join_ack": JoinAck,
    "leave": Leave,
    "syn": Syn,
    "syn_ack": SynAck,
    "ack": Ack,
    "replicate": Replicate,
    "replicate_ack": ReplicateAck,
}


class Envelope(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What travels: header, typed body and piggybacked state. `cluster` names the cluster the
    sender belongs to: a node drops every message of another cluster (``[node] cluster``).
    Fields at their default are left out of the frame."""

    type: str
    src: str
    addr: str
    inc: Count
    body: Any
    members: list[MemberUpdate] = []
    rumors: list[Entry] = []
    sum: str = ""
    cluster: str = ""


class RawEnvelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Validation shape of an Envelope before its body type is known."""

    type: str
    src: str
    addr: str
    inc: Count
    body: msgspec.Raw
    members: list[MemberUpdate] = []
    rumors: list[Entry] = []
    sum: str = ""
    cluster: str = ""


def body_lists(body: Any) -> Iterator[tuple[str, list[Entry] | list[MemberUpdate]]]:
    """(field, list) for each non-empty list of entries or membership claims in a body, found
    by type, so strategy-owned bodies are bounded, verified and counted like the kernel's."""
    for name in getattr(body, "__struct_fields__", ()):
        value = getattr(body, name)
        if isinstance(value, list) and value and isinstance(value[0], (Entry, MemberUpdate)):
            yield name, value

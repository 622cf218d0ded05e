"""The five pluggable concerns. Each strategy is a plain object chosen by name in TOML and
called directly on the hot path (no hook dispatch per message).

Every strategy receives a narrow `Context` (implemented by the kernel's Node): the member
view, the store, a seeded RNG, the current time, and ways to send messages of its own types
and to schedule its own timers. Timers are names: a strategy schedules ``"round"`` and gets
``on_timer(ctx, "round")`` back when it fires.

Base classes give no-op defaults so a strategy only writes what it needs.
"""
from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from .messages import Entry, Envelope, MemberUpdate

if TYPE_CHECKING:
    from .membership import MemberTable
    from .store import Store


class Context(Protocol):
    """What the kernel offers strategies. Implemented by `gossipmq.core.node.Node`."""

    node_id: str
    address: str
    tags: dict[str, str]
    now: float
    rng: random.Random
    members: MemberTable
    store: Store

    def send(self, member_id: str, type: str, body: msgspec.Struct) -> None: ...
    def send_to_address(self, address: str, type: str, body: msgspec.Struct) -> None: ...
    def schedule(self, owner: str, name: str, delay: float) -> None: ...
    def round_delay(self, interval: float, first: bool = False) -> float: ...
    def select_peers(self, k: int, exclude: Collection[str] = ()) -> list[str]: ...
    def start_sync(self, member_id: str, mode: str) -> None: ...
    def bump_heartbeat(self) -> None: ...
    def suspect(self, member_id: str, reason: str) -> None: ...
    def declare_dead(self, member_id: str, reason: str) -> None: ...
    def round_completed(self, stats: Mapping[str, Any]) -> None: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def gossip_claim(self, claim: MemberUpdate) -> None: ...
    def apply_entry(self, entry: Entry) -> bool: ...
    def payload_allowance(self) -> int: ...
    def spend_payload(self, n: int) -> None: ...
    def drop(self, cause: str, detail: str) -> None: ...
    def self_update(self) -> MemberUpdate: ...


class NoOptions(msgspec.Struct, forbid_unknown_fields=True):
    """For strategies without options."""


class Strategy:
    """Common surface: lifecycle, timers and strategy-owned message types."""

    concern: ClassVar[str] = ""
    #: message type name -> body Struct, for messages this strategy sends and handles
    message_types: ClassVar[Mapping[str, type[msgspec.Struct]]] = {}

    def start(self, ctx: Context) -> None:
        """Called once when the node starts."""

    def on_timer(self, ctx: Context, name: str) -> None:
        """A timer this strategy scheduled has fired."""

    def on_message(self, ctx: Context, env: Envelope) -> None:
        """A message of one of `message_types` arrived (sender already accounted for)."""


class PeerSelector(Strategy):
    """Chooses whom to talk to."""

    concern = "peer_selection"

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        raise NotImplementedError


class Dissemination(Strategy):
    """Decides when and how updates spread: whom to sync with, in which mode, and which hot
    entries ride on outgoing messages."""

    concern = "dissemination"

    def on_local_write(self, ctx: Context, entry: Entry) -> None:
        """A local put/delete happened (rumor strategies queue it)."""

    def on_applied(self, ctx: Context, entry: Entry) -> None:
        """A received entry changed the store."""

    def rumors(self, ctx: Context, to: str, budget: int) -> list[Entry]:
        """Hot entries to piggyback on a message to member `to`, within `budget` bytes."""
        return []


class FailureDetector(Strategy):
    """Decides when a member is suspect or dead."""

    concern = "failure_detection"

    def on_claim(self, ctx: Context, claim: MemberUpdate, changed: bool) -> None:
        """A membership claim arrived (piggybacked, in a join_ack or a leave) and changed our view
        (`changed`) or was stale. About ourselves, `changed` means we refuted it. Detectors use
        this to count independent suspicions and to timestamp heartbeats."""


class ConflictResolver(Strategy):
    """Settles two versions of one key. Must be deterministic, commutative and idempotent:
    every node must pick the same winner whatever order versions arrive in."""

    concern = "conflict_resolution"

    def resolve(self, local: Entry, remote: Entry) -> Entry:
        raise NotImplementedError


class SecurityProvider(Strategy):
    """Transport and message security. The kernel calls `verify_envelope`; the ZeroMQ runtime
    asks `socket_options` how to configure its sockets."""

    concern = "security"

    def socket_options(self, role: str) -> dict[str, Any]:
        """pyzmq socket options for role 'inbox' or 'outbox'."""
        return {}

    def verify_envelope(self, env: Envelope) -> str | None:
        """None to accept; otherwise a short reason to drop. May also filter single entries or
        claims out of `env` in place (counting each through `ctx.drop`)."""
        return None

    def seal_entry(self, entry: Entry) -> Entry:
        """A local write is about to be stored: return it signed (or unchanged)."""
        return entry

    def seal_claims(self, claims: list[MemberUpdate]) -> list[MemberUpdate]:
        """Membership claims about to leave this node: attach signatures, drop unprovable ones."""
        return claims


CONCERNS: dict[str, type[Strategy]] = {
    "peer_selection": PeerSelector,
    "dissemination": Dissemination,
    "failure_detection": FailureDetector,
    "conflict_resolution": ConflictResolver,
    "security": SecurityProvider,
}

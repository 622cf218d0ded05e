"""The five pluggable concerns. Each strategy is a plain object chosen by name in TOML and
called directly on the hot path (no hook dispatch per message).

Every strategy receives the same narrow `StrategyContext` (core/context.py): the member view,
the store, a seeded RNG, the current time, and ways to send messages of its own types and to
schedule its own timers. Timers are values: a strategy schedules ``ctx.schedule(concern,
"round", delay)`` and gets ``on_timer(ctx, Timer(concern, "round"))`` back when it fires.

Base classes give no-op defaults so a strategy only writes what it needs. The conflict-resolver
base, `ConflictResolver`, lives with the rest of its protocol in core/resolution.py.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from .context import StrategyContext
from .messages import Entry, Envelope, MemberUpdate
from .timers import Timer

#: what every strategy method receives (the name plugins written for 0.1 import)
Context = StrategyContext


class NoOptions(msgspec.Struct, forbid_unknown_fields=True):
    """For strategies without options."""


class Strategy:
    """Common surface: lifecycle, timers and strategy-owned message types."""

    concern: ClassVar[str] = ""
    #: message type name -> body Struct, for messages this strategy sends and handles
    message_types: ClassVar[Mapping[str, type[msgspec.Struct]]] = {}

    def start(self, ctx: Context) -> None:
        """Called once when the node starts."""

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        """A timer this strategy scheduled has fired (`timer.name`, `timer.arg`)."""

    def on_message(self, ctx: Context, env: Envelope) -> None:
        """A message of one of `message_types` arrived (sender already accounted for)."""


class PeerSelector(Strategy):
    """Chooses whom to talk to."""

    concern = "peer_selection"

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class RoundShape:
    """How a round-based dissemination strategy spreads an update (what theory and the
    simulator compare against): its mode, peers contacted per round, time between rounds."""

    mode: str         # "push", "pull", "push-pull" or "rumor"
    fanout: int       # peers contacted per round in a cluster of n
    interval: float   # seconds between rounds


class Dissemination(Strategy):
    """Decides when and how updates spread: whom to sync with, in which mode, and which hot
    entries ride on outgoing messages."""

    concern = "dissemination"

    def on_local_write(self, ctx: Context, entry: Entry) -> None:
        """A local put/delete happened (rumor strategies queue it)."""

    def on_applied(self, ctx: Context, entry: Entry) -> None:
        """A received entry changed the store."""

    def on_members_changed(self, ctx: Context) -> None:
        """The reachable members changed (joined, failed, left, entered or left the view):
        called once at the end of the input that changed them."""

    def rumors(self, ctx: Context, to: str, budget: int) -> list[Entry]:
        """Hot entries to piggyback on a message to member `to`, within `budget` bytes."""
        return []

    def round_shape(self, n: int) -> RoundShape | None:
        """The round shape in a cluster of `n` nodes (None: not a round-based epidemic)."""
        return None


class FailureDetector(Strategy):
    """Decides when a member is suspect or dead."""

    concern = "failure_detection"

    def on_claim(self, ctx: Context, claim: MemberUpdate, changed: bool) -> None:
        """A membership claim arrived (piggybacked, in a join_ack or a leave) and changed our view
        (`changed`) or was stale. About ourselves, `changed` means we refuted it. Detectors use
        this to count independent suspicions and to timestamp heartbeats."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A security strategy's verdict on a whole envelope: dropped and counted under `cause`."""

    cause: str
    detail: str


class SecurityProvider(Strategy):
    """Message security, as a filter: `admit` returns what the kernel may believe of an envelope
    (the same envelope, a new one with some entries or claims filtered out, or a `Rejected`); it
    never changes the envelope in place. The ZeroMQ runtime asks `socket_options` how to configure
    its sockets (a strategy with a transport half has one in transports/security.py)."""

    concern = "security"

    def socket_options(self, role: str) -> dict[str, Any]:
        """pyzmq socket options for role 'inbox' or 'outbox'."""
        return {}

    def admit(self, env: Envelope) -> Envelope | Rejected:
        """What of `env` to believe. Filter single entries or claims by returning a copy without
        them (count each through `ctx.drop`); reject the whole envelope with `Rejected`."""
        return env

    def seal_entry(self, entry: Entry) -> Entry:
        """A local write is about to be stored: return it signed (or unchanged)."""
        return entry

    def seal_claims(self, claims: list[MemberUpdate]) -> list[MemberUpdate]:
        """Membership claims about to leave this node: attach signatures, drop unprovable ones."""
        return claims


#: the five pluggable concerns, in the order configs and `gossipctl plugins` list them
CONCERNS = ("peer_selection", "dissemination", "failure_detection", "conflict_resolution", "security")


def __getattr__(name: str) -> Any:
    """`ConflictResolver` lives with the rest of the resolver protocol in core/resolution.py."""
    if name == "ConflictResolver":
        from .resolution import ConflictResolver
        return ConflictResolver
    raise AttributeError(name)

"""Failure detectors.

`heartbeat` is the gossip-style detector of van Renesse et al. (1998): every `interval_ms`
a node raises its own heartbeat counter; the counter spreads piggybacked on gossip as a
membership refresh. A member whose counter has not advanced (and from which nothing was
heard directly) for `suspect_after_ms` is suspected; after `dead_after_ms` it is declared
dead. A wrongly suspected member refutes by raising its incarnation.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import Context, FailureDetector, NoOptions
from gossipmq.core.timers import Timer


class HeartbeatOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval_ms: Annotated[int, msgspec.Meta(ge=10)] = 500        # own heartbeat period
    suspect_after_ms: Annotated[int, msgspec.Meta(ge=10)] = 3000  # silence before suspicion
    dead_after_ms: Annotated[int, msgspec.Meta(ge=10)] = 6000     # silence before death

    def __post_init__(self) -> None:
        if self.dead_after_ms <= self.suspect_after_ms:
            raise ValueError("dead_after_ms must be greater than suspect_after_ms")
        if self.suspect_after_ms <= self.interval_ms:
            raise ValueError("suspect_after_ms must be greater than interval_ms")


class Heartbeat(FailureDetector):
    """Gossip-style heartbeats: suspect after `suspect_after_ms` of silence, dead after `dead_after_ms`."""

    def __init__(self, options: HeartbeatOptions) -> None:
        self.interval = options.interval_ms / 1000
        self.suspect_after = options.suspect_after_ms / 1000
        self.dead_after = options.dead_after_ms / 1000

    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "tick", ctx.round_delay(self.interval, first=True))

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        ctx.bump_heartbeat()
        now = ctx.now
        expired = []
        for member_id in ctx.members.heard_order:  # oldest evidence first: stop at the first fresh one
            member = ctx.members.get(member_id)
            if member is None:
                continue
            silence = now - member.heard_at
            if silence < self.suspect_after:
                break
            expired.append((member, silence))
        for member, silence in expired:
            if member.status == "alive":
                ctx.suspect(member.id, f"no heartbeat for {silence:.1f}s")
            elif member.status == "suspect" and silence >= self.dead_after:
                ctx.declare_dead(member.id, f"no heartbeat for {silence:.1f}s")
        ctx.schedule(self.concern, "tick", ctx.round_delay(self.interval))


class Static(FailureDetector):
    """No detection: membership changes only by join and leave (simulator, fixed clusters)."""

    # The heartbeat detector gossips every member's counter: O(n) traffic per round across the
    # cluster, which dominates a 10,000-node simulation. This one sends and suspects nothing.

    def __init__(self, options: NoOptions) -> None:
        self.options = options


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("failure_detection", "heartbeat", Heartbeat, HeartbeatOptions)
    registry.register("failure_detection", "static", Static, NoOptions)

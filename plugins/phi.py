"""`phi`: the phi accrual failure detector (Hayashibara et al. 2004; Cassandra, Akka, chitchat).

Every `interval_ms` a node raises its own heartbeat counter, which spreads piggybacked on
gossip. Each node records, per member, the times at which that member's heartbeat was seen
to advance and keeps the last `window` inter-arrival times. Its suspicion level is

    phi = -log10(1 - F(now - last_arrival))

with F the normal CDF of the window (mean raised by `acceptable_pause_ms`, deviation at least
`min_std_dev_ms`); see core/accrual.py. phi above `threshold` makes the member suspect; a
suspect whose phi is still above the threshold `dead_after_ms` later is declared dead. A
wrongly suspected member refutes by raising its incarnation, as with any detector.

phi adapts to the network: on a jittery path heartbeats arrive irregularly, the deviation
grows and the same silence yields a lower phi. `threshold` trades detection time for false
positives (benchmarks/b7_phi_curve.py draws the curve): 1 means ~10 % odds the member was
fine, 8 (Cassandra's and Akka's default) 1e-8 under the normal model.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from gossipmq.core.accrual import ArrivalWindow
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import MemberUpdate
from gossipmq.core.strategies import Context, FailureDetector
from gossipmq.core.timers import Timer


class PhiOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 500       # own heartbeat period (and check period)
    threshold: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 8.0        # phi above this -> suspect
    window: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 100             # inter-arrival samples kept
    min_std_dev_ms: Annotated[int, msgspec.Meta(ge=1)] = 100                 # floor of the deviation
    acceptable_pause_ms: Annotated[int, msgspec.Meta(ge=0)] = 500            # added to the mean (relay jitter, GC)
    dead_after_ms: Annotated[int, msgspec.Meta(ge=0)] = 2000                 # suspect this long (phi high) -> dead


class Phi(FailureDetector):
    """Phi accrual on heartbeat inter-arrival times: suspect when phi > threshold."""

    def __init__(self, options: PhiOptions) -> None:
        self.options = options
        self.interval = options.interval_ms / 1000
        self.threshold = options.threshold
        self.min_std_dev = options.min_std_dev_ms / 1000
        self.pause = options.acceptable_pause_ms / 1000
        self.dead_after = options.dead_after_ms / 1000
        self.windows: dict[str, ArrivalWindow] = {}
        self.last_hb: dict[str, tuple[int, int]] = {}   # member -> (incarnation, heartbeat) last seen

    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "tick", ctx.round_delay(self.interval, first=True))

    def phi(self, member_id: str, now: float) -> float:
        """Current suspicion level of a member (0 when we have no history of it)."""
        window = self.windows.get(member_id)
        if window is None:
            return 0.0
        return window.phi(now, min_std_dev=self.min_std_dev, acceptable_pause=self.pause)

    def on_claim(self, ctx: Context, claim: MemberUpdate, changed: bool) -> None:
        if claim.id == ctx.node_id or not changed:
            return
        member = ctx.members.get(claim.id)
        if member is None or member.status in ("dead", "left"):
            self.windows.pop(claim.id, None)
            self.last_hb.pop(claim.id, None)
            return
        if member.status != "alive":
            return
        mark = (member.inc, member.hb)
        window = self.windows.get(member.id)
        if window is None:
            self.windows[member.id] = ArrivalWindow(self.options.window, self.interval, ctx.now)
        elif mark > self.last_hb.get(member.id, (-1, -1)):
            window.arrival(ctx.now)
        self.last_hb[member.id] = mark

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        ctx.bump_heartbeat()
        now = ctx.now
        for member_id in list(ctx.members.reachable_ids()):
            member = ctx.members.get(member_id)
            if member is None:
                continue
            window = self.windows.get(member_id)
            if window is None:  # known without a heartbeat seen yet: start counting now
                self.windows[member_id] = ArrivalWindow(self.options.window, self.interval, now)
                self.last_hb[member_id] = (member.inc, member.hb)
                continue
            level = window.phi(now, min_std_dev=self.min_std_dev, acceptable_pause=self.pause)
            if level <= self.threshold:
                continue
            if member.status == "alive":
                ctx.suspect(member_id, f"phi {level:.1f} > {self.threshold:g} "
                                       f"({now - window.last:.1f}s since the last heartbeat)")
            elif now - member.since >= self.dead_after:
                ctx.declare_dead(member_id, f"phi {min(level, 1e9):.1f} for {now - member.since:.1f}s as suspect")
        ctx.schedule(self.concern, "tick", ctx.round_delay(self.interval))


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("failure_detection", "phi", Phi, PhiOptions)

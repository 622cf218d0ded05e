"""Dissemination strategies: push, pull and push-pull (hybrid) reconciliation rounds.

Every `interval_ms` a node opens a digest exchange (syn) with `fanout` peers chosen by the
peer selector. Payload only ever goes where the digest shows it is missing:

* push      - we offer our digest; a peer that lacks something answers with its digest,
              and we send the delta (informed nodes infect others);
* pull      - we send our digest; the peer answers with what we lack (uninformed nodes ask);
* hybrid    - both in one exchange (chitchat's syn / syn-ack / ack).
"""
from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import Context, Dissemination


class RoundOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fanout: Annotated[int, msgspec.Meta(ge=1, le=64)] = 3         # peers contacted per round
    interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 200  # time between rounds


class RoundBased(Dissemination):
    mode: ClassVar[str] = "push-pull"

    def __init__(self, options: RoundOptions) -> None:
        self.fanout = options.fanout
        self.interval = options.interval_ms / 1000

    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval, first=True))

    def on_timer(self, ctx: Context, name: str) -> None:
        peers = ctx.select_peers(self.fanout)
        for peer in peers:
            ctx.start_sync(peer, self.mode)
        ctx.round_completed({"contacts": len(peers), "mode": self.mode})
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval))


class Push(RoundBased):
    """Push: offer our digest to `fanout` peers per round; send deltas to those that lack them."""

    mode = "push"


class Pull(RoundBased):
    """Pull: ask `fanout` peers per round for what our digest shows we lack."""

    mode = "pull"


class Hybrid(RoundBased):
    """Push-pull: exchange digests and deltas both ways with `fanout` peers per round."""

    mode = "push-pull"


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("dissemination", "push", Push, RoundOptions)
    registry.register("dissemination", "pull", Pull, RoundOptions)
    registry.register("dissemination", "hybrid", Hybrid, RoundOptions)

"""Dissemination strategies: push, pull and push-pull (hybrid) reconciliation rounds.

Every `interval_ms` a node opens a digest exchange (syn) with `fanout` peers chosen by the
peer selector. Payload only ever goes where the digest shows it is missing:

* push      - we offer our digest; a peer that lacks something answers with its digest,
              and we send the delta (informed nodes infect others);
* pull      - we send our digest; the peer answers with what we lack (uninformed nodes ask);
* hybrid    - both in one exchange (chitchat's syn / syn-ack / ack); with `pull_peers = k`
              it pulls from only k of a round's peers and pushes to the rest, so fewer peers
              answer the same digest with the same news (fewer copies, a slower tail).

Quiet rounds (push and push-pull). While the last reports this node heard (`evidence`: 2 x
`fanout` in push-pull, 3 x ceil(ln n) in push) carry its own store checksum - no news in flight
that it knows of - and no membership update waits to ride along, a round opens one exchange per
`idle_resync_ms` instead of `fanout`: the others would carry two digests and nothing else. The one
keeps the digests that tombstone GC and context compaction read moving. A report is any message
received and any exchange this node opens (a peer with nothing to trade does not answer, so
silence is agreement until it answers otherwise): evidence ages by what is heard since, not by who
said it, so at 10^4 nodes, where a node hears from a given peer rarely, push-pull rounds fall quiet
two rounds after the last news. The first message from a node with news (every envelope carries
its checksum) ends the quiet: the rounds are full again until the last reports agree. Pull rounds
are never quiet: the uninformed side opens them, and it cannot know who has news before they speak.
"""
from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import Context, Dissemination, RoundShape
from gossipmq.core.timers import Timer

Fanout = Annotated[int, msgspec.Meta(ge=1, le=64)] | str   # a peer count or "auto" (see check_fanout)


def check_fanout(fanout: int | str) -> None:
    """Options' __post_init__ helper: the only word allowed is "auto". The message names the
    key in msgspec's own "- at `$.key`" form, so config errors still point at it."""
    if isinstance(fanout, str) and fanout != "auto":
        raise ValueError(f'Expected `int`, got `str` (a peer count, or "auto"; not {fanout!r}) - at `$.fanout`')


def resolve_fanout(fanout: int | str, c: int, n: int) -> int:
    """A fixed fanout, or for "auto" ceil(ln n) + c for n live members (self included):
    with that many contacts per round an epidemic reaches everyone w.h.p. (Kermarrec et al.)."""
    if fanout == "auto":
        return max(1, math.ceil(math.log(max(n, 2))) + c)
    return int(fanout)


class RoundOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fanout: Fanout = 3                                            # peers per round, or "auto"
    fanout_c: Annotated[int, msgspec.Meta(ge=0, le=16)] = 1       # the c in "auto" = ceil(ln n) + c
    interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 200  # time between rounds
    #: with peers reporting our checksum, at most one exchange per this many ms (0: every pick)
    idle_resync_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 1000

    def __post_init__(self) -> None:
        check_fanout(self.fanout)


class HybridOptions(RoundOptions, forbid_unknown_fields=True, kw_only=True):
    #: of a round's peers, pull from this many and only push to the rest (0: pull from all).
    #: 1 sends each write about a third fewer times at fanout 3 (B20: copies per write at a
    #: receiver 1.47 -> 1.04) for about one more round until every node has it
    pull_peers: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0


class RoundBased(Dissemination):
    mode: ClassVar[str] = "push-pull"

    def __init__(self, options: RoundOptions) -> None:
        self.fanout = options.fanout
        self.fanout_c = options.fanout_c
        self.interval = options.interval_ms / 1000
        self.idle_resync = options.idle_resync_ms / 1000
        #: only where the informed side opens exchanges: a pulling node that skipped a peer it
        #: wrongly believes equal would wait for that peer to speak first
        self.quiet = self.idle_resync > 0 and self.mode != "pull"
        self._next_resync = 0.0   # when an agreeing peer may next get an exchange
        self.pull_peers = 0        # hybrid: pull from the first this many peers of a round (0: all)

    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval, first=True))

    def evidence(self, fanout: int, n: int) -> int:
        """Quiet rounds: how many reports in a row must agree before a round falls quiet. Two
        rounds' worth of this node's own exchanges: in push-pull the one exchange a quiet node
        still opens pulls what it lacks, so a node that missed the news fetches it itself."""
        return 2 * fanout

    def round_shape(self, n: int) -> RoundShape:
        return RoundShape(self.mode, resolve_fanout(self.fanout, self.fanout_c, n), self.interval)

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        n = len(ctx.members.reachable_ids()) + 1
        fanout = resolve_fanout(self.fanout, self.fanout_c, n)
        # no news in flight that this node heard of lately, and no membership update to carry:
        # one exchange per idle_resync (with the peer the selector picks first), none between
        if self.quiet and not len(ctx.broadcasts) and ctx.peers_agree(self.evidence(fanout, n)):
            peers = ctx.select_peers(1) if ctx.now >= self._next_resync else []
            if peers:   # a round due exactly one interval later may come a float's hair early
                self._next_resync = ctx.now + self.idle_resync - 1e-6
            skipped = min(fanout, n - 1) - len(peers)
        else:
            peers, skipped = ctx.select_peers(fanout), 0
        for i, peer in enumerate(peers):
            push_only = self.pull_peers and i >= self.pull_peers
            ctx.start_sync(peer, "push" if push_only else self.mode)
        if skipped > 0:
            ctx.count("syncs_skipped_agreed", skipped)
        ctx.round_completed({"contacts": len(peers), "mode": self.mode})
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval))


class Push(RoundBased):
    """Push: offer our digest to `fanout` peers per round; send deltas to those that lack them."""

    mode = "push"

    def evidence(self, fanout: int, n: int) -> int:
        """Only informed nodes deliver in push (a quiet node's own exchange offers a digest that
        nobody needs), so they stay interested until the residue they would leave is below one
        node: about ln n fruitless contacts each (Demers et al.'s counter), at two to three
        reports a contact (its own and those it receives). Calibrated at n = 1,000: the rounds
        until every node has a write match those of the rule before (tests/test_simulation.py)."""
        return 3 * math.ceil(math.log(max(n, 2)))


class Pull(RoundBased):
    """Pull: ask `fanout` peers per round for what our digest shows we lack."""

    mode = "pull"


class Hybrid(RoundBased):
    """Push-pull: exchange digests and deltas both ways with `fanout` peers per round (or pull
    from `pull_peers` of them and push to the rest)."""

    mode = "push-pull"

    def __init__(self, options: HybridOptions) -> None:
        super().__init__(options)
        self.pull_peers = options.pull_peers


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("dissemination", "push", Push, RoundOptions)
    registry.register("dissemination", "pull", Pull, RoundOptions)
    registry.register("dissemination", "hybrid", Hybrid, HybridOptions)

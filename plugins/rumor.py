"""Rumor mongering (Demers et al. 1987) with memberlist's transmit-limited queue.

Fresh updates - local writes and remote ones that changed our store - are *hot*. Each sits in
a `BroadcastQueue` keyed by its key, so a newer version of a key replaces (invalidates) a
queued older one. Hot entries travel two ways:

* every `interval_ms` the node sends a `rumor` message to `fanout` random peers, carrying the
  entries that were sent fewest times so far (newest first among equals), within the byte
  budgets; with no hot rumor it sends only while membership updates wait to ride along
  (heartbeats), and is silent otherwise;
* on every other outgoing message (SWIM pings, anti-entropy, joins, ...) through the
  kernel's `Dissemination.rumors()` piggyback hook.

When does a node lose interest in a rumor? With L = retransmit_mult * ceil(log10(n + 1))
(memberlist's rule; `stop_after` overrides L):

==========  ===========================================================================
blind       every transmission counts: `counter` drops it after L sends, `coin` drops it
            after each send with probability 1/L
feedback    only a transmission to a peer that already had it counts (the peer answers
            `rumor_ack`): `counter` drops it after L such replies, `coin` with probability
            1/L on each
==========  ===========================================================================

Rumor mongering alone may leave a small residue of nodes uninformed; pair it with Merkle
anti-entropy (`[anti_entropy] interval_ms`) to repair it, as configs/rumor.toml does.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gossipmq.core.broadcast import BroadcastQueue, retransmit_limit
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.limits import entry_size
from gossipmq.core.messages import Entry, Envelope
from gossipmq.core.strategies import Context, Dissemination, RoundShape
from gossipmq.core.timers import Timer

from .dissemination import Fanout, check_fanout, resolve_fanout

NEVER = 1 << 30   # a transmit limit that is never reached (feedback and coin remove items themselves)


class RumorOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fanout: Fanout = 3                                              # peers per round, or "auto"
    fanout_c: Annotated[int, msgspec.Meta(ge=0, le=16)] = 1         # the c in "auto" = ceil(ln n) + c
    interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 200   # time between rumor rounds
    retransmit_mult: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4  # L = mult * ceil(log10(n + 1))
    stop_after: Annotated[int, msgspec.Meta(ge=1)] | None = None    # fixed L instead (Demers' k)
    feedback: bool = False            # count only sends to peers that already had it (vs blind)
    stop: Literal["counter", "coin"] = "counter"   # lose interest after L counts, or w.p. 1/L each
    max_rumors: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256  # entries per message

    def __post_init__(self) -> None:
        check_fanout(self.fanout)


class Rumors(msgspec.Struct, frozen=True):
    """A rumor round's message: hot entries."""

    entries: list[Entry]


class RumorAck(msgspec.Struct, frozen=True):
    """Feedback: the (key, origin, counter) of rumors the receiver already had."""

    known: list[tuple[str, str, int]]


class Rumor(Dissemination):
    """Rumor mongering: hot updates pushed fanout-wide and piggybacked, transmit-limited."""

    message_types = {"rumor": Rumors, "rumor_ack": RumorAck}

    def __init__(self, options: RumorOptions) -> None:
        self.options = options
        self.interval = options.interval_ms / 1000
        self.queue: BroadcastQueue[Entry] = BroadcastQueue()
        self._sizes: dict[str, int] = {}     # key -> encoded size of its queued entry
        self._useless: dict[str, int] = {}   # key -> redundant deliveries reported (feedback)
        self._in_round = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval, first=True))

    def on_local_write(self, ctx: Context, entry: Entry) -> None:
        self._heat(entry)

    def on_applied(self, ctx: Context, entry: Entry) -> None:
        self._heat(entry)

    def round_shape(self, n: int) -> RoundShape:
        return RoundShape("rumor", resolve_fanout(self.options.fanout, self.options.fanout_c, n), self.interval)

    def limit(self, ctx: Context) -> int:
        """L: transmissions (blind) or redundant deliveries (feedback) before a rumor cools."""
        if self.options.stop_after is not None:
            return self.options.stop_after
        return retransmit_limit(self.options.retransmit_mult, len(ctx.members.reachable_ids()) + 1)

    # -- sending -----------------------------------------------------------------------------
    def on_timer(self, ctx: Context, timer: Timer) -> None:
        ctx.schedule(self.concern, "round", ctx.round_delay(self.interval))
        # Membership updates (heartbeats, joins, suspicions) ride on whatever a node sends; with
        # no hot rumor a round still goes out while the kernel has some queued, so a heartbeat
        # failure detector keeps hearing from everyone. Otherwise an idle node stays silent.
        hot = len(self.queue) > 0
        peers: list[str] = []
        if hot or len(ctx.broadcasts):
            n = len(ctx.members.reachable_ids()) + 1
            peers = ctx.select_peers(resolve_fanout(self.options.fanout, self.options.fanout_c, n))
        budget = ctx.gossip.max_message_bytes
        self._in_round = True
        try:
            for peer in peers:
                ctx.send(peer, "rumor", Rumors(self._take(ctx, budget) if hot else []))
        finally:
            self._in_round = False
        ctx.round_completed({"contacts": len(peers), "mode": "rumor", "hot": len(self.queue)})

    def rumors(self, ctx: Context, to: str, budget: int) -> list[Entry]:
        if self._in_round or not len(self.queue):
            return []   # a rumor round carries its entries in its body
        return self._take(ctx, budget)

    def _take(self, ctx: Context, budget: int) -> list[Entry]:
        """Fewest-sent hot entries within `budget` and the per-second allowance; each counts
        one transmit. What the allowance cannot carry stays queued and is counted as deferred."""
        allowance = ctx.payload_allowance()
        room = min(budget, allowance)
        used = 0
        sizes = self._sizes

        def fits(entry: Entry) -> bool:
            nonlocal used
            size = sizes.get(entry.key) or entry_size(entry)
            if used + size > room:
                return False
            used += size
            return True

        blind_counter = not self.options.feedback and self.options.stop == "counter"
        limit = self.limit(ctx) if blind_counter else NEVER
        before = self.queue.exhausted
        taken = self.queue.take(self.options.max_rumors, limit, fits)
        if self.queue.exhausted > before:
            ctx.count("rumors_cooled", self.queue.exhausted - before)
        if room < budget and len(self.queue) > len(taken):
            # The per-second allowance, not the message, was the limit: count what it held back.
            sent = {e.key for e in taken}
            held = sum(size for key, size in sizes.items() if key not in sent and self.queue.get(key) is not None)
            if held:
                ctx.count("deferred_bytes", min(held, budget - used))
                ctx.count("rumor_deferred")
        ctx.spend_payload(used)
        if not self.options.feedback and self.options.stop == "coin":
            chance = 1 / self.limit(ctx)
            for entry in taken:
                if ctx.rng.random() < chance:
                    self._cool(ctx, entry.key)
        ctx.count("rumors_sent", len(taken))
        self._forget_cooled()
        return taken

    # -- receiving ---------------------------------------------------------------------------
    def on_message(self, ctx: Context, env: Envelope) -> None:
        if env.type == "rumor":
            known = [(e.key, e.origin, e.counter) for e in env.body.entries if not ctx.apply_entry(e)]
            if known and self.options.feedback:
                ctx.send_to_address(env.addr, "rumor_ack", RumorAck(known))
        elif env.type == "rumor_ack":
            self._on_feedback(ctx, env.body)

    def _on_feedback(self, ctx: Context, ack: RumorAck) -> None:
        limit = self.limit(ctx)
        for key, origin, counter in ack.known:
            queued = self.queue.get(key)
            if queued is None or (queued.origin, queued.counter) != (origin, counter):
                continue   # that version is no longer hot here
            if self.options.stop == "coin":
                if ctx.rng.random() < 1 / limit:
                    self._cool(ctx, key)
                continue
            self._useless[key] = self._useless.get(key, 0) + 1
            if self._useless[key] >= limit:
                self._cool(ctx, key)

    # -- internals ---------------------------------------------------------------------------
    def _heat(self, entry: Entry) -> None:
        self.queue.push(entry.key, entry)
        self._sizes[entry.key] = entry_size(entry)
        self._useless.pop(entry.key, None)

    def _cool(self, ctx: Context, key: str) -> None:
        if self.queue.get(key) is not None:
            self.queue.discard(key)
            ctx.count("rumors_cooled")
        self._sizes.pop(key, None)
        self._useless.pop(key, None)

    def _forget_cooled(self) -> None:
        """Drop size/feedback bookkeeping of rumors the queue retired by itself."""
        if len(self._sizes) > 2 * len(self.queue) + 64:
            live = {name for name, _, _ in self.queue.items()}
            self._sizes = {k: v for k, v in self._sizes.items() if k in live}
            self._useless = {k: v for k, v in self._useless.items() if k in live}


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("dissemination", "rumor", Rumor, RumorOptions)

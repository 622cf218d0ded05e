"""`swim`: SWIM failure detection (Das, Gupta, Motivala 2002) with Lifeguard (Dadgar et al. 2018).

Every probe interval a node probes one member, walking a shuffled list of the members
(randomized round-robin: every member is probed once per pass, the list is reshuffled for
the next pass and newcomers are inserted at random places). A probe is

1. a direct ``ping``; an ``ping_ack`` within `probe_timeout_ms` ends it;
2. otherwise ``ping_req`` to `indirect_checks` other members, who ping the target for us and
   relay its ack (Lifeguard: or send a ``ping_nack`` when they got none in time);
3. no ack by the end of the probe interval: the target becomes *suspect*.

Suspect, alive and dead claims spread piggybacked on every message through the kernel's
transmit-limited broadcast queue (infection style); a wrongly suspected member refutes by
raising its incarnation (kernel), and the kernel's buddy system piggybacks the suspicion on
every message sent to the suspect so it learns at once. Every member that learns of a
suspicion starts its own suspicion timer; when it expires the member is declared dead.

Lifeguard (all on with ``lifeguard = true``):
* local health (core/awareness.py): missed nacks and refutations raise a score that stretches
  this node's own probe interval and timeout up to `awareness_max_mult` times;
* dynamic suspicion (core/suspicion.py): the timeout starts at `suspicion_max_mult` times the
  minimum ``suspicion_mult * max(1, log10(n)) * probe_interval`` and shrinks towards it as
  independent members confirm the suspicion (each confirmation is re-gossiped);
* nacks from indirect probers tell a node whether the relays, at least, can hear it.
Network coordinates (``coordinates = true``, the default, as Serf): every ping and ack carries
the sender's Vivaldi coordinate (core/vivaldi.py, ~200 bytes), and the prober feeds the round
trip of each *direct* ack with the acker's coordinate into its own (``ctx.coordinates``); a
relayed ack times two paths and is not used. `gossipctl rtt`, the `nearest` peer selector and
Plumtree's latency optimisation read the estimates.

With ``lifeguard = false`` the score stays 0, no nacks are asked for and every suspicion
times out after the minimum: plain SWIM, for comparison (benchmarks/b6_false_positives.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec

from gossipmq.core.awareness import Awareness
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.membership import REACHABLE
from gossipmq.core.messages import Count, Envelope, MemberUpdate
from gossipmq.core.strategies import Context, FailureDetector
from gossipmq.core.suspicion import Suspicion, suspicion_timeout
from gossipmq.core.timers import Timer
from gossipmq.core.vivaldi import Coordinate

#: share of the remaining probe time a relay waits before it nacks, so the nack still
#: arrives before the requester's deadline (two network hops must fit in the rest)
RELAY_SHARE = 0.8


class SwimOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    probe_interval_ms: Annotated[int, msgspec.Meta(ge=10, le=600_000)] = 1000  # one probe per interval
    probe_timeout_ms: Annotated[int, msgspec.Meta(ge=5, le=600_000)] = 500     # direct ack wait (~ p99 RTT)
    indirect_checks: Annotated[int, msgspec.Meta(ge=0, le=16)] = 3             # relays asked on a missed ack
    suspicion_mult: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4             # min suspicion = mult*log10(n)*interval
    suspicion_max_mult: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6         # unconfirmed suspicion = max_mult*min
    awareness_max_mult: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8          # health stretches probing up to this
    lifeguard: bool = True                                                     # false = plain SWIM
    coordinates: bool = True    # pings and acks carry Vivaldi coordinates; direct acks time the RTT (Serf)

    def __post_init__(self) -> None:
        if self.probe_timeout_ms >= self.probe_interval_ms:
            raise ValueError("probe_timeout_ms must be smaller than probe_interval_ms")


# ---- messages (strategy-owned types) --------------------------------------------------------
class Ping(msgspec.Struct, frozen=True):
    """Are you alive? `target` is the member id meant (a new occupant of the address stays quiet)."""

    seq: Count
    target: str = ""
    coord: Coordinate | None = None   # the prober's network coordinate


class PingReq(msgspec.Struct, frozen=True):
    """Please ping `target` for me and relay its ack (or nack after `timeout_ms`)."""

    seq: Count
    target: str
    target_addr: str
    timeout_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)]
    nack: bool = True


class PingAck(msgspec.Struct, frozen=True):
    seq: Count
    coord: Coordinate | None = None   # the acker's network coordinate (the prober times the round trip)


class PingNack(msgspec.Struct, frozen=True):
    """Lifeguard: the relay got no ack from the target in time (but it heard us)."""

    seq: Count


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    inc: int
    deadline: float
    sent_at: float = 0.0
    acked: bool = False
    direct_ack: bool = False
    indirect: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    requester_addr: str
    requester_seq: int
    nack: bool


class Swim(FailureDetector):
    """SWIM probing (direct, then indirect via k relays) with Lifeguard suspicion and local health."""

    message_types: ClassVar = {"ping": Ping, "ping_req": PingReq, "ping_ack": PingAck, "ping_nack": PingNack}

    def __init__(self, options: SwimOptions) -> None:
        self.options = options
        self.interval = options.probe_interval_ms / 1000
        self.timeout = options.probe_timeout_ms / 1000
        self.lifeguard = options.lifeguard
        self.awareness = Awareness(options.awareness_max_mult if options.lifeguard else 1)
        self.order: list[str] = []
        self.in_order: set[str] = set()
        self.pos = 0
        self.seq = 0
        self.probe: _Probe | None = None
        self.relays: dict[int, _Relay] = {}
        self.suspicions: dict[str, Suspicion] = {}

    # ---- lifecycle and timers -------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        ctx.schedule(self.concern, "probe", ctx.round_delay(self.interval, first=True))

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        name = timer.name
        if name == "probe":
            self._probe_next(ctx)
        elif name == "probe_timeout":
            self._on_probe_timeout(ctx, timer.arg)  # type: ignore[arg-type]
        elif name == "probe_deadline":
            self._on_probe_deadline(ctx)
        elif name == "relay":
            self._on_relay_timeout(ctx, timer.arg)  # type: ignore[arg-type]
        elif name == "suspicion":
            self._on_suspicion_timeout(ctx, timer.arg)  # type: ignore[arg-type]

    # ---- probing ----------------------------------------------------------------------------
    def _next_target(self, ctx: Context) -> str | None:
        """Randomized round-robin over reachable members: walk, reshuffle at the end."""
        for _ in range(2):
            while self.pos < len(self.order):
                member_id = self.order[self.pos]
                self.pos += 1
                member = ctx.members.get(member_id)
                if member is not None and member.status in REACHABLE:
                    return member_id
            self.order = list(ctx.members.reachable_ids())
            ctx.rng.shuffle(self.order)
            self.in_order = set(self.order)
            self.pos = 0
            if not self.order:
                return None
        return None

    def _probe_next(self, ctx: Context) -> None:
        interval = self.awareness.scale(self.interval)
        if self.awareness.score:
            ctx.count("swim.degraded_probes")
        target = self._next_target(ctx)
        if target is None:
            self.probe = None
            ctx.schedule(self.concern, "probe", interval)
            return
        member = ctx.members.get(target)
        assert member is not None
        self.seq += 1
        self.probe = _Probe(self.seq, target, member.inc, ctx.now + interval, sent_at=ctx.now)
        ctx.count("swim.probes")
        ctx.send(target, "ping", Ping(self.seq, target, self._coord(ctx)))
        ctx.schedule(self.concern, "probe_timeout", min(self.awareness.scale(self.timeout), interval), self.seq)
        ctx.schedule(self.concern, "probe_deadline", interval)

    def _on_probe_timeout(self, ctx: Context, seq: int) -> None:
        probe = self.probe
        if probe is None or probe.seq != seq or probe.acked or probe.indirect:
            return   # a stale timer: its probe ended already
        probe.indirect = True
        member = ctx.members.get(probe.target)
        if member is None or member.status not in REACHABLE:
            return
        k = self.options.indirect_checks
        relays = [m for m in ctx.select_peers(2 * k, exclude={probe.target})
                  if (r := ctx.members.get(m)) is not None and r.status == "alive"][:k]
        wait_ms = max(1, int((probe.deadline - ctx.now) * RELAY_SHARE * 1000))
        request = PingReq(probe.seq, probe.target, member.addr, wait_ms, nack=self.lifeguard)
        for relay in relays:
            ctx.send(relay, "ping_req", request)
        ctx.count("swim.indirect_probes")
        probe.expected_nacks = len(relays) if self.lifeguard else 0

    def _on_probe_deadline(self, ctx: Context) -> None:
        probe, self.probe = self.probe, None
        if probe is not None:
            if ctx.now - probe.deadline > self.timeout:
                # This timer ran late: we were not running (paused, starved), and the ack may be
                # waiting unread in our inbox. Our silence proves nothing about the target.
                ctx.count("swim.late_probes")
                if self.lifeguard:
                    self.awareness.apply(1)
            else:
                self._conclude(ctx, probe)
        self._probe_next(ctx)

    def _conclude(self, ctx: Context, probe: _Probe) -> None:
        if probe.acked:
            if probe.direct_ack and self.lifeguard:
                self.awareness.apply(-1)
            return
        if self.lifeguard:
            # Relays that did not even nack suggest the problem is on our side (memberlist).
            missing = probe.expected_nacks - probe.nacks
            self.awareness.apply(missing if probe.expected_nacks else 1)
        member = ctx.members.get(probe.target)
        if member is None or member.inc != probe.inc or member.status not in REACHABLE:
            return  # it refuted, left or died meanwhile: our evidence is about an older life
        ctx.count("swim.failed_probes")
        reason = f"no ack to direct or {probe.expected_nacks or self.options.indirect_checks} indirect probes"
        if member.status == "alive":
            ctx.suspect(member.id, reason)
            self._start_suspicion(ctx, member.id, member.inc, ctx.node_id)
        else:  # already suspect: our failed probe is an independent confirmation
            claim = MemberUpdate(member.id, member.addr, member.inc, "suspect", member.hb, member.tags,
                                 ctx.node_id)
            self._confirm(ctx, claim)

    # ---- messages -----------------------------------------------------------------------------
    def on_message(self, ctx: Context, env: Envelope) -> None:
        body = env.body
        if env.type == "ping":
            if body.target and body.target != ctx.node_id:
                ctx.count("swim.misdirected_pings")  # the address now belongs to someone else
                return
            if self.options.coordinates:
                ctx.coordinates.learn(env.src, body.coord)
            ctx.send_to_address(env.addr, "ping_ack", PingAck(body.seq, self._coord(ctx)))
        elif env.type == "ping_req":
            self.seq += 1
            self.relays[self.seq] = _Relay(env.addr, body.seq, body.nack)
            if body.target in ctx.members:  # known: ctx.send adds the buddy-system piggyback
                ctx.send(body.target, "ping", Ping(self.seq, body.target))
            else:
                ctx.send_to_address(body.target_addr, "ping", Ping(self.seq, body.target))
            ctx.schedule(self.concern, "relay", body.timeout_ms / 1000, self.seq)
        elif env.type == "ping_ack":
            relay = self.relays.pop(body.seq, None)
            if relay is not None:
                ctx.send_to_address(relay.requester_addr, "ping_ack", PingAck(relay.requester_seq))
                return
            probe = self.probe
            if probe is not None and body.seq == probe.seq and not probe.acked:
                probe.acked = True
                probe.direct_ack = env.src == probe.target and not probe.indirect
                if env.src == probe.target and self.options.coordinates and body.coord is not None:
                    # A direct answer to our own ping: its round trip is a Vivaldi sample (Serf).
                    if ctx.coordinates.observe(env.src, body.coord, ctx.now - probe.sent_at) is None:
                        ctx.count("swim.rtt_samples")
        elif env.type == "ping_nack":
            if self.probe is not None and body.seq == self.probe.seq:
                self.probe.nacks += 1

    def _coord(self, ctx: Context) -> Coordinate | None:
        return ctx.coordinates.mine if self.options.coordinates else None

    def _on_relay_timeout(self, ctx: Context, seq: int) -> None:
        relay = self.relays.pop(seq, None)
        if relay is not None and relay.nack:
            ctx.send_to_address(relay.requester_addr, "ping_nack", PingNack(relay.requester_seq))

    # ---- suspicion ------------------------------------------------------------------------------
    def on_claim(self, ctx: Context, claim: MemberUpdate, changed: bool) -> None:
        if claim.id == ctx.node_id:
            if changed and self.lifeguard:
                self.awareness.apply(1)  # we had to refute: maybe we are the slow one
            return
        member = ctx.members.get(claim.id)
        if member is None:
            self.suspicions.pop(claim.id, None)
            return
        if changed and member.status in REACHABLE and member.id not in self.in_order:
            # A newcomer (or a returning member) joins the walk at a random place still ahead.
            self.order.insert(ctx.rng.randint(self.pos, len(self.order)), member.id)
            self.in_order.add(member.id)
        if member.status != "suspect":
            self.suspicions.pop(member.id, None)
            return
        current = self.suspicions.get(member.id)
        if current is None or current.inc != member.inc:
            if claim.status == "suspect" and claim.inc == member.inc:
                self._start_suspicion(ctx, member.id, member.inc, claim.by)
        elif claim.status == "suspect" and claim.inc == member.inc:
            self._confirm(ctx, claim)

    def _start_suspicion(self, ctx: Context, member_id: str, inc: int, suspector: str) -> None:
        n = len(ctx.members.reachable_ids()) + 1
        min_s = suspicion_timeout(self.options.suspicion_mult, n, self.interval)
        if self.lifeguard:
            k = self.options.suspicion_mult - 2
            if n - 2 < k:
                k = 0  # too few members to expect confirmations
            max_s = self.options.suspicion_max_mult * min_s
        else:
            k, max_s = 0, min_s
        suspicion = Suspicion(member_id, inc, suspector or "?", k=k, min_s=min_s, max_s=max_s, start=ctx.now)
        self.suspicions[member_id] = suspicion
        ctx.schedule(self.concern, "suspicion", suspicion.deadline - ctx.now, member_id)

    def _confirm(self, ctx: Context, claim: MemberUpdate) -> None:
        suspicion = self.suspicions.get(claim.id)
        if suspicion is None or suspicion.inc != claim.inc:
            return
        if suspicion.confirm(claim.by):
            ctx.count("swim.confirmations")
            ctx.gossip_claim(claim)  # let others count this independent suspicion too
            ctx.schedule(self.concern, "suspicion", max(0.0, suspicion.deadline - ctx.now), claim.id)

    def _on_suspicion_timeout(self, ctx: Context, member_id: str) -> None:
        suspicion = self.suspicions.get(member_id)
        if suspicion is None or ctx.now + 1e-9 < suspicion.deadline:
            return
        if ctx.now - suspicion.deadline > self.timeout:
            # Late by more than a probe timeout: we were not running, and a refutation may be
            # waiting unread. Read the inbox first (one more probe timeout), then decide.
            suspicion.start += ctx.now - suspicion.deadline + self.timeout
            ctx.schedule(self.concern, "suspicion", self.timeout, member_id)
            return
        del self.suspicions[member_id]
        member = ctx.members.get(member_id)
        if member is None or member.status != "suspect" or member.inc != suspicion.inc:
            return
        ctx.declare_dead(member_id, f"suspect for {ctx.now - suspicion.start:.1f}s "
                                    f"({suspicion.n} independent confirmations)")

    # ---- inspection ---------------------------------------------------------------------------
    @property
    def health_score(self) -> int:
        return self.awareness.score


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("failure_detection", "swim", Swim, SwimOptions)

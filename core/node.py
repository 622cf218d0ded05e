"""The sans-I/O node kernel: inputs in, effects out.

A `Node` is a deterministic state machine: fed inputs (a received envelope, a fired timer, a local write, leave or
join) each with the time `now` (seconds), it returns effects (effects.py). It never touches a socket, a thread, an
event loop, the wall clock or global randomness: the ZeroMQ runtime, the in-memory runtime and the simulator run it.

This module owns the inputs, the dispatch tables and the outbox. The mechanics live in parts
with their own state: `Cluster` (cluster.py: membership - joins, claims, refutation, reaping),
`Replication` (replication.py: writes, the digest/delta protocol, confirmations, GC) and
`Convergence` (convergence.py). Policy - whom to talk to, when, in which mode, when to suspect -
belongs to the five strategies, which see the node only through a `StrategyContext` (context.py).
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

import msgspec

from .addresses import split_seed
from .anti_entropy import AntiEntropy
from .cluster import Cluster
from .config import AntiEntropySection, Config, GossipSection, MembershipSection, StorageSection
from .context import StrategyContext
from .convergence import Convergence
from .coordinates import Coordinates
from .effects import Dropped, Effect, Event, Schedule, Send
from .limits import LimitsSection
from .membership import MemberTable
from .messages import KERNEL_BODIES, Entry, Envelope, MemberUpdate
from .registry import StrategyRegistry, create_strategies
from .replication import COUNTER_SHIFT, Replication
from .resolution import ConflictResolver, Op, Read, context_of, router_of
from .strategies import (
    Dissemination,
    FailureDetector,
    PeerSelector,
    Rejected,
    SecurityProvider,
    Strategy,
)
from .timers import KERNEL, Timer

__all__ = ["COUNTER_SHIFT", "Node"]


class Node:
    def __init__(self, node_id: str, address: str, *, strategies: Mapping[str, Strategy],
                 gossip: GossipSection | None = None, seeds: Sequence[str] = (), tags: Mapping[str, str] | None = None,
                 incarnation: int = 1, rng_seed: int | None = None, aligned_rounds: bool = False,
                 anti_entropy: AntiEntropySection | None = None, limits: LimitsSection | None = None,
                 storage: StorageSection | None = None, cluster: str = "", members: MemberTable | None = None,
                 membership: MembershipSection | None = None) -> None:
        """Prefer `Node.from_config`. `members`: a member table to use (the simulator shares one)."""
        self.node_id = node_id
        self.address = address
        self.cluster_name = cluster
        self.gossip = gossip or GossipSection()
        self.limits = limits or LimitsSection()
        self.storage = storage or StorageSection()
        self.anti_entropy_options = anti_entropy or AntiEntropySection()
        self.membership = membership or MembershipSection()
        self.inc = incarnation
        self.hb = 0
        self.status = "alive"
        self.tags = dict(tags or {})
        self.rng = random.Random(rng_seed if rng_seed is not None else f"{node_id}/{incarnation}")
        self.aligned_rounds = aligned_rounds
        self.now = 0.0
        self.stats: Counter[str] = Counter()
        self.round = 0
        self._effects: list[Effect] = []
        self._members_version = -1
        self.peer_selector: PeerSelector = strategies["peer_selection"]  # type: ignore[assignment]
        self.dissemination: Dissemination = strategies["dissemination"]  # type: ignore[assignment]
        self.failure_detector: FailureDetector = strategies["failure_detection"]  # type: ignore[assignment]
        self.resolver: ConflictResolver = strategies["conflict_resolution"]  # type: ignore[assignment]
        self.security: SecurityProvider = strategies["security"]  # type: ignore[assignment]
        # kernel-owned anti-entropy: every node answers Merkle exchanges (starts them if interval_ms > 0)
        self.strategies: dict[str, Strategy] = {**strategies,
                                                AntiEntropy.concern: AntiEntropy(self.anti_entropy_options)}
        #: concern -> the name the config chose it by (class names for nodes built by hand)
        self.strategy_names = {concern: type(s).__name__ for concern, s in strategies.items()}
        # [[conflict_resolution.rules]] route keys to resolvers by prefix (one resolver: no rules)
        self.router = router_of(self.resolver)
        self.coordinates = Coordinates(node_id)   # Vivaldi: ours and the ones we heard
        self.cluster = Cluster(self, seeds, members)
        self.members = self.cluster.members
        self.replication = Replication(self, incarnation)
        self.store = self.replication.store
        self.convergence = Convergence(self)
        self.ctx = StrategyContext(self)
        # the dispatch tables: kernel parts first; the overlay's and strategies' own types after
        self.bodies: dict[str, type[msgspec.Struct]] = dict(KERNEL_BODIES)
        self._handlers = {**self.cluster.handlers(), **self.replication.handlers()}
        self._kernel_timers = {**self.cluster.timers(), **self.replication.timers(),
                               "convergence": self.convergence.on_timer}
        overlay = self.cluster.overlay
        extensions = [(f"the {overlay.name} overlay", overlay.message_types, overlay.on_message)]
        extensions += [(type(s).__name__, s.message_types, partial(s.on_message, self.ctx))
                       for s in self.strategies.values()]
        for owner, types, handler in extensions:
            for type_name, body in types.items():
                if type_name in self.bodies:
                    raise ValueError(f"message type {type_name!r} of {owner} is already taken")
                self.bodies[type_name] = body
                self._handlers[type_name] = handler

    @classmethod
    def from_config(cls, config: Config, registry: StrategyRegistry, *, incarnation: int,
                    rng_seed: int | None = None, aligned_rounds: bool = False,
                    members: MemberTable | None = None) -> Node:
        """The one way to build a Node from a Config; `rng_seed` overrides [gossip] rng_seed."""
        identity = config.identity()
        node = cls(identity.node_id, identity.advertise, strategies=create_strategies(registry, config.strategies),
                   gossip=config.gossip, seeds=[split_seed(s)[0] for s in config.node.seeds], tags=config.node.tags,
                   incarnation=incarnation, rng_seed=rng_seed if rng_seed is not None else config.gossip.rng_seed,
                   aligned_rounds=aligned_rounds, anti_entropy=config.anti_entropy, limits=config.limits,
                   storage=config.storage, cluster=config.node.cluster, members=members,
                   membership=config.membership)
        node.strategy_names = {concern: choice.name for concern, choice in config.strategies.items()}
        return node

    # -- inputs --------------------------------------------------------------------------------
    def start(self, now: float) -> list[Effect]:
        self.now = now
        for strategy in self.strategies.values():   # first: security signs the joins that follow
            strategy.start(self.ctx)
        self.cluster.start()
        self.replication.start()
        self.convergence.start()
        return self._drain()

    def handle_timer(self, now: float, timer: Timer) -> list[Effect]:
        self.now = now
        if self.status != "left":
            if timer.owner == KERNEL:
                self._kernel_timers[timer.name]()
            else:
                self.strategies[timer.owner].on_timer(self.ctx, timer)
        return self._drain()

    def handle_message(self, now: float, env: Envelope, peer: str | None = None) -> list[Effect]:
        """`peer`: the member id the transport authenticated the sender as (CURVE), if any."""
        self.now = now
        self.stats[f"in.{env.type}"] += 1
        rejected = self.cluster.reject(env, peer)
        if rejected is not None:
            self.drop(*rejected)
            return self._drain()
        admitted = self.security.admit(env)
        if isinstance(admitted, Rejected):
            self.drop(admitted.cause, f"{env.type} from {env.src}: {admitted.detail}")
            return self._drain()
        env = admitted
        cluster = self.cluster
        cluster.hear_from(env)
        for claim in env.members:
            cluster.apply_claim(claim)
        for entry in env.rumors:
            self.replication.apply_entry(entry)
        if env.sum:
            self.convergence.heard(env.src, env.sum)
        self._handlers[env.type](env)
        return self._drain()

    def mutate(self, now: float, key: str, op: Op) -> tuple[Entry, list[Effect]]:
        """Apply one operation (put, delete, incr, sadd, srem) to `key` here; it spreads from
        here. The key's resolver builds the new version from the versions held here.
        ValueError (nothing changed) when the limits or the resolver refuse it."""
        self.now = now
        entry = self.replication.write(key, op)
        return entry, self._drain()

    def put(self, now: float, key: str, value: Any, context: Mapping[str, int] | str | None = None,
            field: str | None = None) -> tuple[Entry, list[Effect]]:
        """`mutate` with a put. `context` (a read's causal context, multi-value/mvreg keys)
        says which siblings this write replaces; without it, everything this replica holds."""
        return self.mutate(now, key, Op("put", value, context_of(context), field))

    def delete(self, now: float, key: str, context: Mapping[str, int] | str | None = None,
               field: str | None = None) -> tuple[Entry | None, list[Effect]]:
        """Tombstone `key` (or an OR-Map field); (None, []) when there is no live value to delete."""
        if not self.store.is_live(key):
            return None, []
        return self.mutate(now, key, Op("delete", None, context_of(context), field))

    def leave(self, now: float) -> list[Effect]:
        """Graceful departure: tell up to `leave_fanout` members directly, then stop gossiping."""
        self.now = now
        if self.status != "left":
            self.cluster.leave()
        return self._drain()

    def join(self, now: float, addresses: Sequence[str]) -> list[Effect]:
        """Contact these addresses now (`gossipctl join`): their answer merges in as a seed's would."""
        self.now = now
        self.cluster.join(addresses)
        return self._drain()

    def set_tags(self, now: float, tags: Mapping[str, str]) -> list[Effect]:
        """New tags at runtime: a new incarnation carries them. ValueError beyond the tags budget."""
        self.now = now
        self.cluster.set_tags(tags)
        return self._drain()

    def force_leave(self, now: float, member_id: str) -> list[Effect]:
        """Mark a failed member left now (Serf's force-leave); ValueError for an alive or unknown one."""
        self.now = now
        self.cluster.force_leave(member_id)
        return self._drain()

    def replicate(self, now: float, entries: Sequence[Entry], ids: Collection[str], token: int | None = None
                  ) -> tuple[int, list[Effect]]:
        """Send `entries` to these members; each holding them emits `Confirmed`. `token`: a resend."""
        self.now = now
        token = self.replication.replicate(entries, ids, token)
        return token, self._drain()

    def unreachable(self, now: float, address: str) -> list[Effect]:
        """The runtime lost or could not open a link to `address`: the overlay decides (HyParView
        replaces such a neighbour; the full mesh waits for the failure detector)."""
        self.now = now
        if self.status != "left":
            self.cluster.unreachable(address)
        return self._drain()

    def record_drop(self, now: float, cause: str, detail: str) -> list[Effect]:
        """Count a frame the runtime could not decode."""
        self.now = now
        self.drop(cause, detail)
        return self._drain()

    # -- queries -------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The newest stored version of `key` unless deleted (lww keys: the value); see `read`."""
        entry = self.store.get(key)
        return None if entry is None or entry.deleted else entry

    def read(self, key: str) -> Read | None:
        """The resolved view of `key`: value(s), causal context, origin of each; None if unknown."""
        versions = self.store.versions(key)
        if not versions:
            return None
        return self.router.for_key(key).read(key, versions)

    @property
    def origin(self) -> str:
        """The origin of this node's dots: its id and the life of its replica."""
        return self.replication.origin

    def self_update(self) -> MemberUpdate:
        return MemberUpdate(self.node_id, self.address, self.inc, self.status, self.hb, self.tags)  # type: ignore[arg-type]

    # -- outbox (strategies reach these through their strategycontext) -------------------------
    def send(self, member_id: str, type: str, body: msgspec.Struct) -> None:
        member = self.members.get(member_id)
        if member is not None:
            # Lifeguard's buddy system: a suspect learns it from whoever contacts it, so it refutes at once.
            about = member.as_update() if member.status == "suspect" else None
            self.send_to_address(member.addr, type, body, about=about)

    def send_to_address(self, address: str, type: str, body: msgspec.Struct,
                        about: MemberUpdate | None = None) -> None:
        members = self.cluster.piggyback(self.gossip.members_per_message - (about is not None))
        if about is not None:
            members = [about, *members]
        members = self.security.seal_claims(members)
        rumors = self.dissemination.rumors(self.ctx, address, self.gossip.max_message_bytes // 2)
        env = Envelope(type=type, src=self.node_id, addr=self.address, inc=self.inc, body=body,
                       members=members, rumors=rumors, sum=self.store.checksum(), cluster=self.cluster_name)
        self.stats[f"out.{type}"] += 1
        self._effects.append(Send(address, env))

    def schedule(self, owner: str, name: str, delay: float, arg: Any = None) -> None:
        self._effects.append(Schedule(Timer(owner, name, arg), self.now + max(0.0, delay)))

    def emit(self, event: Event) -> None:
        """Hand an event to the runtime's observers (hooks, logs, subscriptions)."""
        self._effects.append(event)

    def drop(self, cause: str, detail: str) -> None:
        """Count and report one rejected piece of input (strategies use this too)."""
        self.stats[f"dropped.{cause}"] += 1
        self._effects.append(Dropped(cause, detail))

    # -- internals -----------------------------------------------------------------------------
    def _drain(self) -> list[Effect]:
        version = self.members.version
        if version != self._members_version:   # the reachable set changed during this input
            self._members_version = version
            self.dissemination.on_members_changed(self.ctx)
        self.convergence.after_input()
        out, self._effects = self._effects, []
        return out


"""The sans-I/O node kernel.

A `Node` is a deterministic state machine. It is fed inputs - a received envelope, a fired
timer, a local put/delete/leave - each with the current time `now` (seconds), and returns a
list of effects (see effects.py). It never touches a socket, a thread, an event loop, the
wall clock or global randomness, so the ZeroMQ runtime, the in-memory test runtime and the
simulator all run exactly this code.

The kernel owns the mechanics every node must share whatever it is configured with:
membership claims and their precedence, joins, leaves and reaping, the digest/delta
reconciliation protocol (syn / syn_ack / ack), piggybacking and the store. Policy - whom to
talk to, when, in which mode, when to suspect - belongs to the five strategies.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec

from .anti_entropy import AntiEntropy
from .broadcast import BroadcastQueue, retransmit_limit
from .budget import ByteBudget
from .clock import HybridLogicalClock
from .config import AntiEntropySection, Config, GossipSection, StorageSection
from .effects import Confirmed, Dropped, Effect, KeyChanged, MemberChanged, Notice, RoundCompleted, Schedule, Send
from .gc import TombstoneCollector
from .lag import LagWindow
from .limits import LimitsSection, value_problem, value_size
from .membership import MAX_TAGS_BYTES, REACHABLE, Change, Member, MemberTable, tags_size
from .merkle import MerkleTree
from .messages import (KERNEL_BODIES, Ack, Entry, Envelope, Join, JoinAck, Leave, MemberUpdate, Replicate,
                       ReplicateAck, Syn, SynAck)
from .resolution import Op, Read, WriteContext, decode_context, router_of
from .registry import StrategyRegistry, create_strategies
from .signing import split_seed
from .store import Store, entry_size
from .strategies import ConflictResolver, Dissemination, FailureDetector, PeerSelector, SecurityProvider, Strategy

#: a life's first write counter is start_incarnation << COUNTER_SHIFT, so a restarted node
#: never reuses a dot of its previous life even without durable storage.
COUNTER_SHIFT = 20
REASONS = {"suspect": "suspected", "dead": "failed", "left": "left"}


class Node:
    def __init__(self, node_id: str, address: str, *, strategies: Mapping[str, Strategy],
                 gossip: GossipSection | None = None, seeds: Sequence[str] = (),
                 tags: Mapping[str, str] | None = None, incarnation: int = 1,
                 rng_seed: int | None = None, aligned_rounds: bool = False,
                 anti_entropy: AntiEntropySection | None = None, limits: LimitsSection | None = None,
                 storage: StorageSection | None = None, cluster: str = "") -> None:
        self.node_id = node_id
        self.address = address
        self.cluster = cluster
        self.gossip = gossip or GossipSection()
        self.limits = limits or LimitsSection()
        self.inc = incarnation
        self.hb = 0
        self.status = "alive"
        self.tags = dict(tags or {})
        seed = rng_seed if rng_seed is not None else f"{node_id}/{incarnation}"
        self.rng = random.Random(seed)
        self.aligned_rounds = aligned_rounds
        self.now = 0.0
        self.peer_selector: PeerSelector = strategies["peer_selection"]  # type: ignore[assignment]
        self.dissemination: Dissemination = strategies["dissemination"]  # type: ignore[assignment]
        self.failure_detector: FailureDetector = strategies["failure_detection"]  # type: ignore[assignment]
        self.resolver: ConflictResolver = strategies["conflict_resolution"]  # type: ignore[assignment]
        self.security: SecurityProvider = strategies["security"]  # type: ignore[assignment]
        # Anti-entropy is kernel-owned: every node answers Merkle exchanges, and starts them
        # itself only when [anti_entropy] interval_ms > 0.
        anti_entropy = anti_entropy or AntiEntropySection()
        strategies = {**strategies, AntiEntropy.concern: AntiEntropy(anti_entropy)}
        self.strategies = dict(strategies)
        #: concern -> the name the config chose it by (class names for nodes built by hand)
        self.strategy_names = {concern: type(s).__name__ for concern, s in self.strategies.items()
                               if concern != AntiEntropy.concern}
        self.members = MemberTable()
        # [[conflict_resolution.rules]] route keys to resolvers by prefix (one resolver: no rules)
        self.router = router_of(self.resolver)
        self.store = Store(self.router, seal=self.security.seal_entry)
        self.store.merkle = MerkleTree(anti_entropy.branching, anti_entropy.depth)
        self.budget = ByteBudget(self.gossip.max_bytes_per_second)
        self.lag = LagWindow()
        self.hlc = HybridLogicalClock()
        self.counter = incarnation << COUNTER_SHIFT
        #: first incarnation of this replica's state: names its CRDT counter slot ("id/life");
        #: durable storage restores it, so a restarted node keeps counting in the same slot
        self.life = incarnation
        self.storage = storage or StorageSection()
        self.gc = TombstoneCollector(self.storage.tombstone_ttl_ms / 1000,
                                     guard=min(60.0, self.storage.tombstone_ttl_ms / 1000))
        self.peer_digests: dict[str, dict[str, int]] = {}   # last digest each peer sent in a syn
        self.broadcasts: BroadcastQueue[MemberUpdate] = BroadcastQueue()
        self.bodies: dict[str, type[msgspec.Struct]] = dict(KERNEL_BODIES)
        self._handlers: dict[str, Strategy] = {}
        for strategy in strategies.values():
            for type_name, body in strategy.message_types.items():
                if type_name in self.bodies:
                    raise ValueError(f"message type {type_name!r} of {type(strategy).__name__} is already taken")
                self.bodies[type_name] = body
                self._handlers[type_name] = strategy
        self.seeds = [s for s in seeds if s != address]
        self.joined = not self.seeds
        self.stats: Counter[str] = Counter()
        self.round = 0
        self.peer_sums: dict[str, str] = {}
        self.converged_since: float | None = None
        self._departed: dict[str, float] = {}   # dead/left member -> since
        self._join_attempts = 0
        self._replicate_token = 0
        self._started_at = 0.0
        self._effects: list[Effect] = []

    @classmethod
    def from_config(cls, config: Config, registry: StrategyRegistry, *, incarnation: int,
                    rng_seed: int | None = None, aligned_rounds: bool = False) -> Node:
        """The one way to build a Node from a Config: every table reaches the kernel.
        `rng_seed` overrides [gossip] rng_seed (tests and the simulator seed each node)."""
        identity = config.identity()
        node = cls(identity.node_id, identity.advertise, strategies=create_strategies(registry, config.strategies),
                   gossip=config.gossip, seeds=[split_seed(s)[0] for s in config.node.seeds], tags=config.node.tags,
                   incarnation=incarnation, rng_seed=rng_seed if rng_seed is not None else config.gossip.rng_seed,
                   aligned_rounds=aligned_rounds, anti_entropy=config.anti_entropy, limits=config.limits,
                   storage=config.storage, cluster=config.node.cluster)
        node.strategy_names = {concern: choice.name for concern, choice in config.strategies.items()}
        return node

    # ======================================================================================
    # Inputs
    # ======================================================================================
    def start(self, now: float) -> list[Effect]:
        self.now = self._started_at = now
        self.broadcasts.push(self.node_id, self.self_update())
        for strategy in self.strategies.values():
            strategy.start(self)
        if self.seeds:
            self._send_joins()
            self.schedule("kernel", "join", self.gossip.join_retry_ms / 1000)
        self.schedule("kernel", "reap", 1.0)
        if self.seeds:
            self.schedule("kernel", "seeds", self.gossip.seed_rejoin_ms / 1000)
        if self.gossip.dead_probe_ms > 0:
            self.schedule("kernel", "dead", self.gossip.dead_probe_ms / 1000)
        if self.storage.gc_interval_ms > 0:
            self.schedule("kernel", "gc", self.storage.gc_interval_ms / 1000)
        return self._drain()

    def handle_timer(self, now: float, timer: str) -> list[Effect]:
        self.now = now
        if self.status == "left":
            return self._drain()
        owner, _, name = timer.partition(":")
        if owner == "kernel":
            {"join": self._on_join_timer, "reap": self._on_reap_timer, "seeds": self._on_seeds_timer,
             "dead": self._on_dead_timer, "gc": self._on_gc_timer}[name]()
        else:
            self.strategies[owner].on_timer(self, name)
        return self._drain()

    def handle_message(self, now: float, env: Envelope, peer: str | None = None) -> list[Effect]:
        """`peer`: the member id the transport authenticated the sender as (CURVE), if any."""
        self.now = now
        self.stats["messages_in"] += 1
        self.stats[f"in.{env.type}"] += 1
        if env.cluster != self.cluster:
            self.record_drop(now, "wrong_cluster", f"{env.type} from {env.src!r} ({env.addr}) belongs to cluster "
                                                   f"{env.cluster!r}, this node to {self.cluster!r}")
            return self._drain()
        if env.src == self.node_id:
            self.record_drop(now, "spoofed_self", f"message of type {env.type} claims to come from this node")
            return self._drain()
        if peer is not None and peer != env.src:
            self.record_drop(now, "spoofed_sender", f"{env.type} claims to come from {env.src!r} "
                                                    f"but its connection is authenticated as {peer!r}")
            return self._drain()
        reason = self.security.verify_envelope(env)
        if reason is not None:
            self.record_drop(now, "security", f"{env.type} from {env.src}: {reason}")
            return self._drain()
        self._hear_from(env)
        for claim in env.members:
            self._apply_claim(claim)
        for entry in env.rumors:
            self._apply_entry(entry)
        if env.sum:
            self.peer_sums[env.src] = env.sum
        handler = getattr(self, f"_on_{env.type}", None)
        if handler is not None:
            handler(env)
        else:
            self._handlers[env.type].on_message(self, env)
        return self._drain()

    def put(self, now: float, key: str, value: Any, context: Mapping[str, int] | str | None = None,
            field: str | None = None) -> tuple[Entry, list[Effect]]:
        """Write `value` under `key` here; it spreads from here. Returns (entry, effects).
        `context` (a read's causal context, multi-value/mvreg keys) says which siblings this
        write replaces; without it, everything this replica holds. ValueError when key or value
        exceed [limits] (peers would drop the write) or the key's resolver refuses."""
        return self.mutate(now, key, Op("put", value, _context(context), field))  # type: ignore[return-value]

    def delete(self, now: float, key: str, context: Mapping[str, int] | str | None = None,
               field: str | None = None) -> tuple[Entry | None, list[Effect]]:
        """Tombstone `key` (or an OR-Map field); (None, []) when there is no live value to delete."""
        if not self.store.is_live(key):
            return None, []
        return self.mutate(now, key, Op("delete", None, _context(context), field))

    def mutate(self, now: float, key: str, op: Op) -> tuple[Entry, list[Effect]]:
        """Apply one operation (put, delete, incr, sadd, srem) to `key` here; the key's
        resolver builds the new version from the versions held here (ValueError if refused)."""
        if len(key.encode()) > self.limits.max_key_bytes:
            raise ValueError(f"key of {len(key.encode())} bytes exceeds [limits] max_key_bytes")
        problem = value_problem(op.value, self.limits.max_value_depth)
        if problem is not None:
            raise ValueError(f"the value holds {problem}")
        if value_size(op.value) > self.limits.max_value_bytes:
            raise ValueError(f"value of {value_size(op.value)} bytes exceeds [limits] max_value_bytes")
        return self._write(now, key, op)

    def leave(self, now: float) -> list[Effect]:
        """Graceful departure: tell up to `leave_fanout` members directly, then stop gossiping."""
        self.now = now
        if self.status == "left":
            return []
        self.status = "left"
        self.broadcasts.push(self.node_id, self.self_update())
        targets = list(self.members.reachable_ids())
        if len(targets) > self.gossip.leave_fanout:
            targets = self.rng.sample(targets, self.gossip.leave_fanout)
        for member_id in targets:
            self.send(member_id, "leave", Leave())
        return self._drain()

    def replicate(self, now: float, entries: Sequence[Entry], member_ids: Collection[str]) -> tuple[int, list[Effect]]:
        """Send `entries` straight to these members; each answers with a `Confirmed(token, member)`
        event once it holds them (write acknowledgement levels, hand-off before leaving)."""
        self.now = now
        self._replicate_token += 1
        for member_id in member_ids:
            self.send(member_id, "replicate", Replicate(self._replicate_token, list(entries)))
        return self._replicate_token, self._drain()

    def own_entries_missing(self, member_id: str, limit_bytes: int) -> list[Entry]:
        """Our own writes `member_id`'s last digest does not show (all when it never sent one),
        oldest first, within `limit_bytes`: what a leaving node hands off."""
        mark = self.peer_digests.get(member_id, {}).get(self.node_id, 0)
        out, used = [], 0
        for entry in self.store.entries_above(self.node_id, mark):
            used += entry_size(entry)
            if out and used > limit_bytes:
                break
            out.append(entry)
        return out

    def join(self, now: float, addresses: Sequence[str]) -> list[Effect]:
        """Contact these addresses now (`gossipctl join`): each gets a join; the answer merges
        its member table into ours, as a seed's would."""
        self.now = now
        for address in addresses:
            if address != self.address:
                self.send_to_address(address, "join", Join())
        return self._drain()

    def set_tags(self, now: float, tags: Mapping[str, str]) -> list[Effect]:
        """Replace this node's tags at runtime. Tags are fixed per incarnation, so the node
        raises its incarnation and the new claim spreads (peers see a member-updated event).
        ValueError when they exceed the tags budget."""
        if tags_size(dict(tags)) > MAX_TAGS_BYTES:
            raise ValueError(f"tags take {tags_size(dict(tags))} bytes; at most {MAX_TAGS_BYTES} (keys plus values)")
        self.now = now
        self.tags.clear()
        self.tags.update(tags)
        self.inc += 1
        self.broadcasts.push(self.node_id, self.self_update())
        return self._drain()

    def force_leave(self, now: float, member_id: str) -> list[Effect]:
        """Mark a failed member as left now (Serf's force-leave): it stops counting as failed and
        is reaped like a member that left. ValueError for an unknown or reachable member."""
        member = self.members.get(member_id)
        if member is None:
            raise ValueError(f"no member {member_id!r} is known here")
        if member.status == "alive":
            raise ValueError(f"member {member_id!r} is alive; only a failed (dead or suspect) member can be forced "
                             f"to leave")
        self.now = now
        if member.status != "left":
            self._set_status(member_id, "left", "forced to leave by an operator")
        return self._drain()

    def record_drop(self, now: float, cause: str, detail: str) -> list[Effect]:
        """Count a rejected input (the runtime calls this for frames it could not decode)."""
        self.now = now
        self.drop(cause, detail)
        return self._drain()

    def drop(self, cause: str, detail: str) -> None:
        """Count and report one rejected piece of input during a handler (strategies use this)."""
        self.stats["dropped"] += 1
        self.stats[f"dropped.{cause}"] += 1
        self._effects.append(Dropped(cause, detail))

    # ======================================================================================
    # Queries
    # ======================================================================================
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

    def restore(self, entries: Sequence[Entry], watermarks: Mapping[str, int], *, counter: int, hlc: int,
                life: int) -> None:
        """Load a persisted replica (transports/storage.py) before `start`: its versions,
        watermarks, write counter (never reused: we continue above it), HLC and counter slot."""
        self.store.load(entries, watermarks)
        self.counter = max(self.counter, counter)
        self.hlc.last = max(self.hlc.last, hlc)
        self.life = life
        for key in list(self.store.entries):
            if self._dead_versions(key):
                self.gc.touch(key, self.now, dead=True)

    def origin_node(self, origin: str) -> str:
        """The member id whose write carries dot origin `origin`."""
        return origin

    def self_update(self) -> MemberUpdate:
        return MemberUpdate(self.node_id, self.address, self.inc, self.status, self.hb, self.tags)  # type: ignore[arg-type]

    def agrees(self) -> bool:
        """Do all reachable members last report our checksum (Merkle root)? O(n), read-only."""
        mine = self.store.checksum()
        return all(self.peer_sums.get(m) == mine for m in self.members.reachable_ids())

    def check_convergence(self, now: float) -> bool:
        """`agrees()`, tracking since when (`converged_since`)."""
        agreed = self.agrees()
        if not agreed:
            self.converged_since = None
        elif self.converged_since is None:
            self.converged_since = now
        return agreed

    # ======================================================================================
    # Context API for strategies (see strategies.Context)
    # ======================================================================================
    def send(self, member_id: str, type: str, body: msgspec.Struct) -> None:
        member = self.members.get(member_id)
        if member is not None:
            # Lifeguard's buddy system: a suspect learns it from whoever contacts it, so it refutes at once.
            about = member.as_update() if member.status == "suspect" else None
            self.send_to_address(member.addr, type, body, about=about)

    def send_to_address(self, address: str, type: str, body: msgspec.Struct,
                        about: MemberUpdate | None = None) -> None:
        limit = retransmit_limit(self.gossip.retransmit_mult, len(self.members.reachable_ids()) + 1)
        members = self.broadcasts.take(self.gossip.members_per_message - (about is not None), limit)
        if about is not None:
            members = [about, *members]
        members = self.security.seal_claims(members)
        rumors = self.dissemination.rumors(self, address, self.gossip.max_message_bytes // 2)
        env = Envelope(type=type, src=self.node_id, addr=self.address, inc=self.inc, body=body,
                       members=members, rumors=rumors, sum=self.store.checksum(), cluster=self.cluster)
        self.stats["messages_out"] += 1
        self.stats[f"out.{type}"] += 1
        self._effects.append(Send(address, env))

    def schedule(self, owner: str, name: str, delay: float) -> None:
        self._effects.append(Schedule(f"{owner}:{name}", self.now + max(0.0, delay)))

    def round_delay(self, interval: float, first: bool = False) -> float:
        """Delay to a strategy's next periodic round. Aligned (simulator: synchronous rounds,
        as in the theory) or, for real nodes, with a random first phase so nodes spread out."""
        if self.aligned_rounds:
            return interval
        return interval * self.rng.random() if first else interval

    def select_peers(self, k: int, exclude: Collection[str] = ()) -> list[str]:
        return self.peer_selector.select(self, k, exclude)

    def start_sync(self, member_id: str, mode: str) -> None:
        self.send(member_id, "syn", Syn(mode, self.store.digest()))  # type: ignore[arg-type]

    def bump_heartbeat(self) -> None:
        self.hb += 1
        self.broadcasts.push(self.node_id, self.self_update())

    def suspect(self, member_id: str, reason: str) -> None:
        self._set_status(member_id, "suspect", reason)

    def declare_dead(self, member_id: str, reason: str) -> None:
        self._set_status(member_id, "dead", reason)

    def gossip_claim(self, claim: MemberUpdate) -> None:
        """Spread `claim` piggybacked as it is (SWIM re-gossips independent suspicions)."""
        self.broadcasts.push(claim.id, claim)

    def round_completed(self, stats: Mapping[str, Any]) -> None:
        self.round += 1
        stats = dict(stats)
        if self.lag.fresh:   # propagation lag rides on the round event when there is news
            stats.update(self.lag.summary(self.now))
        self._effects.append(RoundCompleted(self.round, stats))

    def apply_entry(self, entry: Entry) -> bool:
        """Merge one received entry (events, lag and dissemination hooks included).
        True when it changed the store, False when it was redundant or lost to ours."""
        return self._apply_entry(entry)

    def payload_allowance(self) -> int:
        """Payload bytes the per-second budget allows right now (huge when uncapped)."""
        return self.budget.available(self.now)

    def spend_payload(self, n: int) -> None:
        self.budget.spend(n)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] += n

    # ======================================================================================
    # Kernel message handlers
    # ======================================================================================
    def _on_join(self, env: Envelope) -> None:
        table = [self.self_update()]
        table += [m.as_update() for m in self.members.all() if m.status in REACHABLE and m.id != env.src]
        self.send_to_address(env.addr, "join_ack", JoinAck(self.security.seal_claims(table[:1000])))

    def _on_join_ack(self, env: Envelope) -> None:
        for claim in env.body.members:
            self._apply_claim(claim)
        if not self.joined:
            self.joined = True
            self._effects.append(Notice("joined", f"joined through {env.src} ({env.addr})"))
        self.start_sync(env.src, "push-pull")  # catch up at once, whatever the mode

    def _on_leave(self, env: Envelope) -> None:
        member = self.members.get(env.src)
        tags = member.tags if member else {}
        self._apply_claim(MemberUpdate(env.src, env.addr, env.inc, "left", 0, tags))

    def _on_syn(self, env: Envelope) -> None:
        syn: Syn = env.body
        self.peer_digests[env.src] = syn.digest   # for causal stability (tombstone GC, compaction)
        digest = self.store.digest()
        want = syn.mode != "pull" and any(mark > digest.get(o, 0) for o, mark in syn.digest.items())
        entries: list[Entry] = []
        coverage: dict[str, int] = {}
        if syn.mode != "push" and self.store.lags(syn.digest):
            entries, coverage = self._delta(syn.digest)
        if want or entries or coverage:
            self.send_to_address(env.addr, "syn_ack", SynAck(digest if want else None, entries, coverage))

    def _on_syn_ack(self, env: Envelope) -> None:
        body: SynAck = env.body
        if body.digest is not None:
            self.peer_digests[env.src] = body.digest
        self._apply_delta(body.entries, body.coverage)
        if body.digest is not None and self.store.lags(body.digest):
            entries, coverage = self._delta(body.digest)
            self.send_to_address(env.addr, "ack", Ack(entries, coverage))

    def _on_ack(self, env: Envelope) -> None:
        self._apply_delta(env.body.entries, env.body.coverage)

    def _on_replicate(self, env: Envelope) -> None:
        body: Replicate = env.body
        for entry in body.entries:
            self._apply_entry(entry)
        if all(self.store.holds(entry) for entry in body.entries):
            self.send_to_address(env.addr, "replicate_ack", ReplicateAck(body.token))

    def _on_replicate_ack(self, env: Envelope) -> None:
        self._effects.append(Confirmed(env.body.token, env.src))

    # ======================================================================================
    # Internals
    # ======================================================================================
    def _drain(self) -> list[Effect]:
        out, self._effects = self._effects, []
        return out

    def _write(self, now: float, key: str, op: Op) -> tuple[Entry, list[Effect]]:
        self.now = now
        resolver = self.router.for_key(key)
        resolver.check_op(op)
        counter, hlc = self.counter + 1, self.hlc.tick(now)
        wc = WriteContext(self.node_id, counter, hlc, f"{self.node_id}/{self.life}", self._compact)
        before = self.store.versions(key)
        value, deleted, vv = resolver.build(key, before, op, wc)  # ValueError: refused
        self.counter = counter   # only now: a refused operation leaves no gap in our dots
        entry = self.store.write(key, value, deleted, self.node_id, counter, hlc, vv=vv, kind=resolver.kind)
        self.stats["writes"] += 1
        self.gc.touch(key, now, bool(self._dead_versions(key)))
        self._effects.append(KeyChanged(key, entry, "local", before))
        self.dissemination.on_local_write(self, entry)
        return entry, self._drain()

    def live_digests(self) -> list[dict[str, int]] | None:
        """Our digest and every reachable member's last one; None while one is unknown."""
        digests = [self.store.watermarks]
        for member_id in self.members.reachable_ids():
            digest = self.peer_digests.get(member_id)
            if digest is None:
                return None
            digests.append(digest)
        return digests

    def _compact(self, vv: dict[str, int]) -> dict[str, int]:
        """Drop from a new lww version's context the origins that departed (not a reachable
        member, not us) and whose dots every live member has seen (docs/conflict-resolution.md)."""
        reachable = set(self.members.reachable_ids())
        gone = [o for o in vv if o != self.node_id and o not in reachable]
        if not gone:
            return vv
        digests = self.live_digests()
        if digests is None:
            return vv
        stable = [o for o in gone if all(d.get(o, 0) >= vv[o] for d in digests)]
        if stable:
            self.stats["context_compacted"] += len(stable)
        return {o: c for o, c in vv.items() if o not in stable}

    def _dead_versions(self, key: str) -> list[Entry]:
        """Versions of `key` whose own state holds nothing (tombstones, emptied states)."""
        resolver = self.router.for_key(key)
        return [v for v in self.store.versions(key) if not resolver.live((v,))]

    def _on_gc_timer(self) -> None:
        """Purge dead versions that are causally stable or older than tombstone_ttl, when the
        key reads the same without them (core/gc.py)."""
        self.gc.expire(self.now)
        for key, reason in self.gc.due(self.now, self._dead_versions, self.live_digests()):
            resolver = self.router.for_key(key)
            purged = 0
            for dead in self._dead_versions(key):
                versions = self.store.versions(key)
                rest = [v for v in versions if v.dot != dead.dot]
                before = resolver.read(key, versions)
                if rest:
                    after = resolver.read(key, rest)
                    if (after.deleted, after.value) != (before.deleted, before.value):
                        continue   # it still hides a concurrent version's value: a later write covers both
                elif not before.deleted:
                    continue
                self.store.drop(dead)
                purged += 1
            self.gc.forget(key, self.now, reason, purged, still_dead=bool(self._dead_versions(key)))
        self.schedule("kernel", "gc", self.storage.gc_interval_ms / 1000)

    def _delta(self, digest: Mapping[str, int]) -> tuple[list[Entry], dict[str, int]]:
        allowance = self.budget.available(self.now)
        budget = min(self.gossip.max_message_bytes, allowance)
        entries, coverage, deferred = self.store.delta_for(digest, budget)
        if not self.budget.unlimited:
            size = sum(entry_size(e) for e in entries)
            if allowance <= 0 and entries:
                # Out of budget: send nothing now (coverage would claim what we withhold).
                deferred += size
                entries, coverage = [], {}
                self.stats["deferred_rate"] += 1
            else:
                self.budget.spend(size)
        if deferred:
            self.stats["deferred_bytes"] += deferred
        self.stats["entries_sent"] += len(entries)
        return entries, coverage

    def _apply_delta(self, entries: Sequence[Entry], coverage: Mapping[str, int]) -> None:
        for entry in entries:
            self._apply_entry(entry)
        self.store.adopt_coverage(coverage)

    def _apply_entry(self, entry: Entry) -> bool:
        self.stats["entries_received"] += 1
        reason = self.router.for_key(entry.key).validate(entry)
        if reason is not None:   # another resolver config, or a malformed state: never merge it
            self.drop("bad_entry", f"{entry.key!r} from {entry.origin}: {reason}")
            return False
        if self.gc.ignores(entry.key, entry.counter <= self.store.watermarks.get(entry.origin, 0)):
            self.stats["entries_purged"] += 1   # a late copy of a key we garbage-collected
            return False
        self.hlc.observe(entry.hlc, self.now)
        before = self.store.versions(entry.key)
        stored = self.store.apply(entry)
        if stored is None:
            self.stats["entries_redundant"] += 1
            return False
        self.stats["entries_applied"] += 1
        self.gc.touch(entry.key, self.now, bool(self._dead_versions(entry.key)))
        if stored.origin != self.node_id:
            self.lag.record(self.now, stored.hlc)
        self._effects.append(KeyChanged(stored.key, stored, "remote", before))
        self.dissemination.on_applied(self, stored)
        return True

    def _hear_from(self, env: Envelope) -> None:
        """The sender itself is evidence: alive at its incarnation, and heard just now."""
        member = self.members.get(env.src)
        if member is None or env.inc > member.inc:
            # Its own piggybacked claim (a join carries it) gives the tags of this life.
            own = next((c for c in env.members if c.id == env.src and c.inc == env.inc), None)
            tags = own.tags if own is not None else (member.tags if member else {})
            hb = member.hb if member and member.inc == env.inc else 0
            self._apply_claim(MemberUpdate(env.src, env.addr, env.inc, "alive", hb, tags))
            member = self.members.get(env.src)
            if member is None:
                return
        if member.status in REACHABLE:
            self.members.mark_heard(member.id, self.now)
            if member.addr != env.addr and env.inc >= member.inc:
                old, member.addr = member.addr, env.addr
                self._member_event(member, member.status, "updated", old_address=old)
        if member.status != "alive" and env.type != "leave":
            # It does not know what we think of it: tell it again, so it can refute.
            self.broadcasts.push(member.id, member.as_update())

    def _apply_claim(self, claim: MemberUpdate) -> None:
        if claim.tags and tags_size(claim.tags) > MAX_TAGS_BYTES:
            self.stats["dropped"] += 1
            self.stats["dropped.tags_oversized"] += 1
            self._effects.append(Dropped("tags_oversized", f"claim about {claim.id} carries "
                                                           f"{tags_size(claim.tags)} bytes of tags"))
            return
        if claim.id == self.node_id:
            self.failure_detector.on_claim(self, claim, self._claim_about_self(claim))
            return
        change = self.members.apply(claim, self.now)
        if change is not None:
            self._after_change(change)
        self.failure_detector.on_claim(self, claim, change is not None)

    def _claim_about_self(self, claim: MemberUpdate) -> bool:
        """Refute a claim that we are suspect/dead (or of a newer life); True when we did."""
        if self.status == "left":
            return False
        if claim.inc > self.inc or (claim.inc == self.inc and claim.status != "alive"):
            self.inc = claim.inc + 1
            self.stats["refutations"] += 1
            self._effects.append(Notice("refuted", f"refuted '{claim.status}' at incarnation {claim.inc}; "
                                                   f"now alive at {self.inc}"))
            self.broadcasts.push(self.node_id, self.self_update())
            return True
        return False

    def _after_change(self, change: Change) -> None:
        member = change.member
        if change.previous is None:
            self._member_event(member, None, "joined")
        elif not change.status_changed and change.updated:
            self._member_event(member, change.previous, "updated", old_address=change.old_address)
        elif change.status_changed:
            if member.status == "alive":
                reason = "rejoined" if change.previous in ("dead", "left") else "alive_again"
            else:
                reason = REASONS[member.status]
            self._member_event(member, change.previous, reason)
        if change.status_changed or change.refreshed:
            self.broadcasts.push(member.id, member.as_update())

    def _set_status(self, member_id: str, status: str, reason: str) -> None:
        previous = self.members.get(member_id)
        prev_status = previous.status if previous else None
        member = self.members.set_status(member_id, status, self.now, by=self.node_id)
        if member is None:
            return
        self.stats[f"declared_{status}"] += 1
        self._member_event(member, prev_status, REASONS[status], detail=reason)
        self.broadcasts.push(member.id, member.as_update())

    def _member_event(self, member: Member, previous: str | None, reason: str, detail: str = "",
                      old_address: str = "") -> None:
        if reason == "updated":
            pass   # the status did not change: nor does the reaping clock
        elif member.status in ("dead", "left"):
            self._departed[member.id] = self.now
        else:
            self._departed.pop(member.id, None)
        view = _member_dict(member)
        if detail:
            view["detail"] = detail
        if old_address:
            view["old_address"] = old_address
        self._effects.append(MemberChanged(view, previous, reason))

    def _send_joins(self) -> None:
        for seed in self.seeds:
            self.send_to_address(seed, "join", Join())

    def _on_join_timer(self) -> None:
        if self.joined:
            return
        elapsed_ms = (self.now - self._started_at) * 1000
        if elapsed_ms >= self.gossip.join_timeout_ms:
            self._effects.append(Notice("join_timeout", f"no seed answered within {self.gossip.join_timeout_ms} ms "
                                                        f"({', '.join(self.seeds)}); running alone, still retrying"))
            self._started_at = self.now  # report again after another timeout, keep trying slowly
        self._join_attempts += 1
        self._send_joins()
        delay = min(self.gossip.join_retry_ms * 2 ** self._join_attempts, self.gossip.join_retry_max_ms)
        self.schedule("kernel", "join", delay / 1000)

    def _on_reap_timer(self) -> None:
        horizon = self.now - self.gossip.reap_after_ms / 1000
        for member_id, since in list(self._departed.items()):
            if since <= horizon:
                member = self.members.remove(member_id, self.now, self.gossip.reap_after_ms / 1000)
                del self._departed[member_id]
                self.peer_sums.pop(member_id, None)
                self.broadcasts.discard(member_id)
                if member is not None:
                    self._effects.append(MemberChanged(_member_dict(member), member.status, "reaped"))
        self.members.forget_graves(self.now)
        self.schedule("kernel", "reap", 1.0)

    def _on_dead_timer(self) -> None:
        """Gossip to the dead (memberlist's GossipToTheDeadTime): until it is reaped, contact one
        failed member now and then, so two sides of a healed partition find each other again."""
        dead = [m for m in self._departed if (member := self.members.get(m)) is not None and member.status == "dead"]
        if dead:
            target = self.members.get(self.rng.choice(dead))
            if target is not None:
                self.send_to_address(target.addr, "join", Join())
        self.schedule("kernel", "dead", self.gossip.dead_probe_ms / 1000)

    def _on_seeds_timer(self) -> None:
        known = {m.addr for m in self.members.all() if m.status in REACHABLE}
        strangers = [s for s in self.seeds if s not in known]
        if strangers:
            self.send_to_address(self.rng.choice(strangers), "join", Join())
        self.schedule("kernel", "seeds", self.gossip.seed_rejoin_ms / 1000)


def _member_dict(member: Member) -> dict[str, Any]:
    return {"id": member.id, "address": member.addr, "status": member.status, "incarnation": member.inc,
            "tags": dict(member.tags), "heartbeat": member.hb}


def _context(context: Mapping[str, int] | str | None) -> dict[str, int] | None:
    """A causal context given as a token (CLI) or a mapping (API)."""
    if context is None or isinstance(context, Mapping):
        return None if context is None else dict(context)
    return decode_context(context)

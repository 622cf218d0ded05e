"""Replication: local writes, the digest/delta protocol (syn / syn_ack / ack), applying what
arrives, write confirmations (replicate / replicate_ack) and tombstone garbage collection.

Dots and lives. Every write gets a dot (origin, counter). The origin is not the bare member id
but one *life* of its replica, ``<node id>/<life>``: a node restarted without durable storage
starts a new life, so its new causal contexts ("I have seen every dot of origin X up to N")
can never cover dots of its previous life that it has not re-learnt - an OR-Set add or a
sibling written before the restart survives the node's first write after it. A node with
durable storage keeps its life (the store restores it). Counters keep growing across lives
(a life starts at ``incarnation << 20``), so (node id, counter) still names one write.

Claims within the evidence. A delta's coverage ("you may adopt watermark N for origin X")
is adopted only as far as this node can justify: dots of X it has received, the causal
contexts of entries it received with it, or X's own word about itself. A forged coverage claim
for someone else's future writes is cut to the evidence and counted (``coverage_refused``)
instead of making the node skip those writes forever. Timestamps are bounded too: an entry whose
HLC is further ahead of our clock than ``[limits] max_clock_skew_ms`` is refused (``clock_skew``),
so one bad peer cannot pin last-writer-wins time in the future.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from .budget import ByteBudget
from .clock import HybridLogicalClock, hlc_physical_ms, vv_join_all
from .effects import Confirmed, KeyChanged
from .gc import TombstoneCollector
from .lag import LagWindow
from .limits import entry_size, value_problem, value_size
from .membership import REACHABLE, Member
from .merkle import MerkleTree
from .messages import Ack, Entry, Envelope, Replicate, ReplicateAck, Syn, SynAck, origin_node, origin_of
from .resolution import Op, WriteContext
from .store import Store
from .timers import KERNEL

if TYPE_CHECKING:
    from .node import Node

#: a life's first write counter is start_incarnation << COUNTER_SHIFT: counters of successive
#: lives never overlap, so (node id, counter) names one write whatever the life
COUNTER_SHIFT = 20


class Replication:
    """The store and the protocols that fill it (see module docstring)."""

    def __init__(self, node: Node, incarnation: int) -> None:
        self.node = node
        anti_entropy, storage = node.anti_entropy_options, node.storage
        self.store = Store(node.router, seal=node.security.seal_entry)
        self.store.merkle = MerkleTree(anti_entropy.branching, anti_entropy.depth, identity=self.store.key_identity)
        self.budget = ByteBudget(node.gossip.max_bytes_per_second)
        self.lag = LagWindow()
        self.hlc = HybridLogicalClock()
        self.counter = incarnation << COUNTER_SHIFT
        #: build KeyChanged events? A runtime whose observers are their only consumer turns this
        #: off while nothing listens (no hook, subscription or debug log): ~2 us less per write
        self.key_events = True
        #: first incarnation of this replica's state: names its dots' origin and its CRDT counter
        #: slot; durable storage restores it, so a restarted durable node keeps its origin
        self.life = incarnation
        self.origin = origin_of(node.node_id, incarnation)
        self.gc = TombstoneCollector(storage.tombstone_ttl_ms / 1000, guard=min(60.0, storage.tombstone_ttl_ms / 1000))
        self.peer_digests: dict[str, dict[str, int]] = {}   # last digest each peer sent in a syn
        #: origin -> highest counter attested by a received dot, causal context or the origin itself
        self.evidence: dict[str, int] = {}
        self.token = 0
        self._gc_armed = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        # a restored replica's dead versions become candidates now: their TTL counts from this
        # start (the time since the delete is not stored), never from the clock's zero
        for key in list(self.store.keys()):
            if self.dead_versions(key):
                self.gc.touch(key, self.node.now, dead=True)
        self._arm_gc()

    def _arm_gc(self) -> None:
        """The GC timer runs only while there is something to collect (a key holding a dead
        version) or a purged key whose late copies are still ignored: an idle node skips it."""
        if not self._gc_armed and (self.gc.candidates or self.gc.purged) and self.node.storage.gc_interval_ms > 0:
            self._gc_armed = True
            self.node.schedule(KERNEL, "gc", self.node.storage.gc_interval_ms / 1000)

    def restore(self, entries: Sequence[Entry], watermarks: Mapping[str, int], *, counter: int, hlc: int,
                life: int) -> list[str]:
        """Load a persisted replica before `start`: its versions, watermarks, write counter (never
        reused: we continue above it), HLC and life. Versions whose value breaks today's limits are
        left out; returns why, one line each."""
        node = self.node
        problems, kept = [], []
        for entry in entries:
            problem = value_problem(entry.value, node.limits.max_value_depth)
            if problem is not None:
                problems.append(f"{entry.key[:64]!r} ({entry.origin}:{entry.counter}) holds {problem}")
            else:
                kept.append(entry)
        self.store.load(kept, watermarks)
        self.counter = max(self.counter, counter)
        self.hlc.last = max(self.hlc.last, hlc)
        self.life = life
        self.origin = origin_of(node.node_id, life)
        return problems

    # -- local writes ---------------------------------------------------------------------------
    def write(self, key: str, op: Op) -> Entry:
        """Apply one local operation (ValueError when the limits or the key's resolver refuse:
        then nothing changed)."""
        node = self.node
        limits = node.limits
        if len(key.encode()) > limits.max_key_bytes:
            raise ValueError(f"key of {len(key.encode())} bytes exceeds [limits] max_key_bytes")
        problem = value_problem(op.value, limits.max_value_depth)
        if problem is not None:
            raise ValueError(f"the value holds {problem}")
        size = value_size(op.value)
        if size > limits.max_value_bytes:
            raise ValueError(f"value of {size} bytes exceeds [limits] max_value_bytes")
        resolver = node.router.for_key(key)
        resolver.check_op(op)
        counter, hlc = self.counter + 1, self.hlc.tick(node.now)
        wc = WriteContext(self.origin, counter, hlc, self.origin, self._compact)
        before = self.store.versions(key)
        value, deleted, vv = resolver.build(key, before, op, wc)  # ValueError: refused
        self.counter = counter   # only now: a refused operation leaves no gap in our dots
        entry = self.store.write(key, value, deleted, self.origin, counter, hlc, vv=vv, kind=resolver.kind)
        node.stats["writes"] += 1
        self.gc.touch(key, node.now, bool(self.dead_versions(key)))
        self._arm_gc()
        if self.key_events:
            node.emit(KeyChanged(key, entry, "local", before))
        node.dissemination.on_local_write(node.ctx, entry)
        return entry

    # -- applying what arrives ------------------------------------------------------------------
    def apply_entry(self, entry: Entry) -> bool:
        """Merge one received entry (events, lag and dissemination hooks included). True when it
        changed the store, False when it was refused, redundant or lost to what we hold."""
        node, store = self.node, self.store
        stats, now, key, origin = node.stats, node.now, entry.key, entry.origin
        stats["entries_received"] += 1
        if store.keeps_dot(entry):   # a crossing copy of a write we keep: it was checked when it came
            self._attest(origin, entry.counter)
            stats["entries_redundant"] += 1
            return False
        resolver = node.router.for_key(key)
        reason = resolver.validate(entry)
        if reason is not None:   # another resolver config, or a malformed state: never merge it
            node.drop("bad_entry", f"{key!r} from {origin}: {reason}")
            return False
        ahead_ms = hlc_physical_ms(entry.hlc) - int(now * 1000)
        if ahead_ms > node.limits.max_clock_skew_ms:
            node.drop("clock_skew", f"{key[:64]!r} from {origin} is timestamped {ahead_ms} ms ahead of "
                                    f"this node's clock ([limits] max_clock_skew_ms)")
            return False
        self._attest(origin, entry.counter)
        if self.gc.ignores(key, entry.counter <= store.watermarks.get(origin, 0)):
            stats["entries_purged"] += 1   # a late copy of a key we garbage-collected
            return False
        self.hlc.observe(entry.hlc, now)
        before = store.versions(key)
        stored = store.apply(entry)
        if stored is None:
            stats["entries_redundant"] += 1
            return False
        stats["entries_applied"] += 1
        self.gc.touch(key, now, bool(self.dead_versions(key)))
        if not self._gc_armed:
            self._arm_gc()
        if origin != self.origin:
            self.lag.record(now, stored.hlc)
        if self.key_events:
            node.emit(KeyChanged(key, stored, "remote", before))
        node.dissemination.on_applied(node.ctx, stored)
        return True

    def apply_delta(self, entries: Sequence[Entry], coverage: Mapping[str, int], sender: str) -> None:
        for entry in entries:
            self.apply_entry(entry)
        if coverage:
            self._adopt_coverage(coverage, entries, sender)

    def _adopt_coverage(self, coverage: Mapping[str, int], entries: Sequence[Entry], sender: str) -> None:
        """Adopt each watermark only as far as the evidence goes (see module docstring)."""
        store = self.store
        context: dict[str, int] | None = None
        adopted: dict[str, int] = {}
        for origin, mark in coverage.items():
            if mark <= store.watermarks.get(origin, 0):
                continue
            if origin_node(origin) != sender:   # a claim about someone else's writes
                if context is None:
                    context = vv_join_all(entry.vv for entry in entries)
                justified = max(self.evidence.get(origin, 0), context.get(origin, 0))
                if mark > justified:
                    self.node.stats["coverage_refused"] += 1
                    mark = justified
            else:
                self._attest(origin, mark)
            adopted[origin] = mark
        store.adopt_coverage(adopted)

    def _attest(self, origin: str, counter: int) -> None:
        if counter > self.evidence.get(origin, 0):
            self.evidence[origin] = counter

    # -- the digest/delta protocol --------------------------------------------------------------
    def handlers(self) -> dict[str, Callable[[Envelope], None]]:
        """Message type -> handler, for the kernel's dispatch table."""
        return {"syn": self.on_syn, "syn_ack": self.on_syn_ack, "ack": self.on_ack,
                "replicate": self.on_replicate, "replicate_ack": self.on_replicate_ack}

    def timers(self) -> dict[str, Callable[[], None]]:
        return {"gc": self.on_gc_timer}

    def start_sync(self, member_id: str, mode: str) -> None:
        self.node.convergence.opened_exchange(self.store.checksum())
        self.node.send(member_id, "syn", Syn(mode, self.store.digest()))  # type: ignore[arg-type]

    def on_syn(self, env: Envelope) -> None:
        syn: Syn = env.body
        self._digest_from(env.src, syn.digest)
        digest = self.store.digest()
        want = syn.mode != "pull" and any(mark > digest.get(o, 0) for o, mark in syn.digest.items())
        entries: list[Entry] = []
        coverage: dict[str, int] = {}
        if syn.mode != "push" and self.store.lags(syn.digest):
            entries, coverage = self._delta(syn.digest)
        if want or entries or coverage:
            self.node.send_to_address(env.addr, "syn_ack", SynAck(digest if want else None, entries, coverage))

    def on_syn_ack(self, env: Envelope) -> None:
        body: SynAck = env.body
        if body.digest is not None:
            self._digest_from(env.src, body.digest)
        self.apply_delta(body.entries, body.coverage, env.src)
        if body.digest is not None and self.store.lags(body.digest):
            entries, coverage = self._delta(body.digest)
            self.node.send_to_address(env.addr, "ack", Ack(entries, coverage))

    def on_ack(self, env: Envelope) -> None:
        self.apply_delta(env.body.entries, env.body.coverage, env.src)

    def _digest_from(self, sender: str, digest: dict[str, int]) -> None:
        """A peer's digest: kept for causal stability, and its word about its own writes."""
        self.peer_digests[sender] = digest
        for origin, mark in digest.items():
            if origin_node(origin) == sender:
                self._attest(origin, mark)

    def _delta(self, digest: Mapping[str, int]) -> tuple[list[Entry], dict[str, int]]:
        node = self.node
        allowance = self.budget.available(node.now)
        budget = min(node.gossip.max_message_bytes, allowance)
        entries, coverage, deferred = self.store.delta_for(digest, budget)
        if not self.budget.unlimited:
            size = sum(entry_size(e) for e in entries)
            if allowance <= 0 and entries:
                # Out of budget: send nothing now (coverage would claim what we withhold).
                deferred += size
                entries, coverage = [], {}
                node.stats["deferred_rate"] += 1
            else:
                self.budget.spend(size)
        if deferred:
            node.stats["deferred_bytes"] += deferred
        node.stats["entries_sent"] += len(entries)
        return entries, coverage

    # -- write confirmations --------------------------------------------------------------------
    def replicate(self, entries: Sequence[Entry], member_ids: Collection[str], token: int | None = None) -> int:
        """Send `entries` straight to these members; each confirms with a `Confirmed` event.
        With `token` this is a resend of that earlier request (a copy or its answer was lost):
        confirmations of either send count once."""
        if token is None:
            self.token += 1
            token = self.token
        for member_id in member_ids:
            self.node.send(member_id, "replicate", Replicate(token, list(entries)))
        return token

    def on_replicate(self, env: Envelope) -> None:
        body: Replicate = env.body
        for entry in body.entries:
            self.apply_entry(entry)
        if all(self.store.holds(entry) for entry in body.entries):
            self.node.send_to_address(env.addr, "replicate_ack", ReplicateAck(body.token))

    def on_replicate_ack(self, env: Envelope) -> None:
        self.node.emit(Confirmed(env.body.token, env.src))

    def own_entries_missing(self, member_id: str, limit_bytes: int) -> list[Entry]:
        """Our own writes `member_id`'s last digest does not show (all when it never sent one),
        oldest first, within `limit_bytes`: what a leaving node hands off."""
        mark = self.peer_digests.get(member_id, {}).get(self.origin, 0)
        out: list[Entry] = []
        used = 0
        for entry in self.store.entries_above(self.origin, mark):
            used += entry_size(entry)
            if out and used > limit_bytes:
                break
            out.append(entry)
        return out

    # -- byte budget (for strategies that send payload) -------------------------------------------
    def payload_allowance(self) -> int:
        """Payload bytes the per-second budget allows right now (huge when uncapped)."""
        return self.budget.available(self.node.now)

    def spend_payload(self, n: int) -> None:
        self.budget.spend(n)

    # -- causal stability: compaction and garbage collection ----------------------------------------
    def holder_digests(self) -> list[dict[str, int]] | None:
        """Our digest and the last one of every member that may still hold versions
        (`MemberTable.holders`: dead ones included, until they return, are force-left or are
        forgotten after ``reap_after_ms``). None while one is unknown."""
        digests = [self.store.watermarks]
        for member in self.node.members.holders():
            digest = self.peer_digests.get(member.id)
            if digest is None:
                return None
            digests.append(digest)
        return digests

    def _compact(self, vv: dict[str, int]) -> dict[str, int]:
        """Drop from a new lww version's context the origins whose node departed (not a reachable
        member, not us) and whose dots every member that may hold versions has seen
        (docs/conflict-resolution.md)."""
        node, members = self.node, self.node.members
        gone = [o for o in vv if o != self.origin and not _reachable(members.get(origin_node(o)))]
        if not gone:
            return vv
        digests = self.holder_digests()
        if digests is None:
            return vv
        stable = [o for o in gone if all(d.get(o, 0) >= vv[o] for d in digests)]
        if stable:
            node.stats["context_compacted"] += len(stable)
        return {o: c for o, c in vv.items() if o not in stable}

    def dead_versions(self, key: str) -> list[Entry]:
        """Versions of `key` whose own state holds nothing (tombstones, emptied states)."""
        versions = self.store.versions(key)
        if len(versions) == 1:   # one version: dead exactly when the key is not live
            return [] if self.store.is_live(key) else list(versions)
        resolver = self.node.router.for_key(key)
        return [v for v in versions if not resolver.live((v,))]

    def on_gc_timer(self) -> None:
        """Purge dead versions that are causally stable or older than tombstone_ttl, when the
        key reads the same without them (core/gc.py)."""
        node = self.node
        self.gc.expire(node.now)
        digests = self.holder_digests()
        if digests is not None and len(digests) == 1:
            digests = None   # no member's word yet (alone, or restarted and not yet rejoined): TTL only
        for key, reason in self.gc.due(node.now, self.dead_versions, digests):
            resolver = node.router.for_key(key)
            purged = 0
            for dead in self.dead_versions(key):
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
            self.gc.forget(key, node.now, reason, purged, still_dead=bool(self.dead_versions(key)))
        self._gc_armed = False
        self._arm_gc()


def _reachable(member: Member | None) -> bool:
    return member is not None and member.status in REACHABLE

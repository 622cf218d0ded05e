"""`StrategyContext`: everything a strategy may see and do - and nothing else.

The kernel hands one context to every strategy (built-in or third-party, so a plugin can do
whatever a built-in does). It is a narrow face over the node: read-only views of the member
table and the store, the seeded RNG, the current time, and the verbs that produce effects
(send, schedule, suspect, ...). docs/plugins.md documents every name here; a test keeps the
two in step. Methods are the node's own bound methods (no extra call per use on hot paths).
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from .effects import RoundCompleted
from .messages import MemberUpdate

if TYPE_CHECKING:
    from .broadcast import BroadcastQueue
    from .config import GossipSection
    from .coordinates import Coordinates
    from .limits import LimitsSection
    from .membership import MemberTable
    from .node import Node
    from .overlay import Overlay
    from .store import Store

#: every public name of StrategyContext, in the order docs/plugins.md lists them
CONTEXT_API = (
    "node_id", "address", "tags", "now", "incarnation", "rng", "members", "overlay", "coordinates", "store",
    "gossip", "limits",
    "broadcasts", "peer_roots", "peers_agree", "stats",
    "send", "send_to_address", "schedule", "round_delay", "select_peers", "start_sync", "bump_heartbeat",
    "suspect", "declare_dead", "gossip_claim", "round_completed", "apply_entry", "payload_allowance",
    "spend_payload", "count", "drop", "self_update",
)


class StrategyContext:
    """What a strategy gets in `start`, `on_timer`, `on_message` and the concern-specific calls."""

    def __init__(self, node: Node) -> None:
        self._node = node
        #: this node's member id and advertised address
        self.node_id: str = node.node_id
        self.address: str = node.address
        #: this node's tags (a strategy may add its own, e.g. security announces its key)
        self.tags: dict[str, str] = node.tags
        #: the node's seeded RNG: use it (never `random`) so runs are reproducible
        self.rng: random.Random = node.rng
        #: the member table (read it; change membership only through suspect/declare_dead/gossip_claim)
        self.members: MemberTable = node.members
        #: the overlay keeping that table (read it): `name`, `partial` (only neighbours in
        #: `members`), `neighbors()`, `size_estimate()` (the cluster size, this node included)
        self.overlay: Overlay = node.cluster.overlay
        #: network coordinates (Vivaldi): `observe(peer, coord, rtt)` for a round trip you timed,
        #: `learn(peer, coord)`, `mine`, `rtt(peer)` (estimated seconds, None if unknown)
        self.coordinates: Coordinates = node.coordinates
        #: the replicated store (read it; change it only through apply_entry)
        self.store: Store = node.store
        #: [gossip] and [limits] settings
        self.gossip: GossipSection = node.gossip
        self.limits: LimitsSection = node.limits
        #: membership updates waiting to ride on outgoing messages
        self.broadcasts: BroadcastQueue[MemberUpdate] = node.cluster.broadcasts
        #: member id -> the store checksum (Merkle root) it last reported
        self.peer_roots: dict[str, str] = node.convergence.peer_sums
        #: the node's counters (what `count` bumps; shown by `gossipctl info` and the metrics)
        self.stats: Counter[str] = node.stats
        # -- verbs: the node's own methods --------------------------------------------------------
        self.send = node.send
        self.send_to_address = node.send_to_address
        self.start_sync = node.replication.start_sync
        self.bump_heartbeat = node.cluster.bump_heartbeat
        self.suspect = node.cluster.suspect
        self.declare_dead = node.cluster.declare_dead
        self.gossip_claim = node.cluster.gossip_claim
        self.apply_entry = node.replication.apply_entry
        self.payload_allowance = node.replication.payload_allowance
        self.spend_payload = node.replication.spend_payload
        self.drop = node.drop
        self.self_update = node.self_update

    @property
    def now(self) -> float:
        """The time of the input being handled (seconds; virtual in the simulator)."""
        return self._node.now

    @property
    def incarnation(self) -> int:
        return self._node.inc

    def schedule(self, owner: str, name: str, delay: float, arg: Hashable = None) -> None:
        """Call ``on_timer(ctx, Timer(owner, name, arg))`` of the strategy of concern `owner`
        after `delay` seconds; scheduling the same timer again replaces the earlier one."""
        self._node.schedule(owner, name, delay, arg)

    def round_delay(self, interval: float, first: bool = False) -> float:
        """Delay to a strategy's next periodic round. Aligned (simulator: synchronous rounds,
        as in the theory) or, for real nodes, with a random first phase so nodes spread out."""
        if self._node.aligned_rounds:
            return interval
        return interval * self._node.rng.random() if first else interval

    def select_peers(self, k: int, exclude: Collection[str] = ()) -> list[str]:
        """Up to `k` peers chosen by the configured peer selector, none of `exclude`."""
        return self._node.peer_selector.select(self, k, exclude)

    def round_completed(self, stats: Mapping[str, Any]) -> None:
        """A dissemination round ended: count it and report it (`RoundCompleted`, with the
        propagation lag when there is news)."""
        node = self._node
        node.round += 1
        stats = dict(stats)
        lag = node.replication.lag
        if lag.fresh:
            stats.update(lag.summary(node.now))
        node.emit(RoundCompleted(node.round, stats))

    def peers_agree(self, last: int | None = None) -> bool:
        """Is no news in flight that this node knows of? With `last`: did the last `last` reports
        heard, from anyone, all carry our store checksum (O(1); fewer heard so far: False)?
        Without: does every reachable member's last report (O(n))?"""
        node = self._node
        if last is None:
            return node.convergence.agrees()
        return node.convergence.last_reports_agree(node.store.checksum(), last)

    def count(self, name: str, n: int = 1) -> None:
        """Bump the counter `name` (shown by `gossipctl info` and exported as a metric)."""
        self._node.stats[name] += n


__all__ = ["CONTEXT_API", "StrategyContext"]

"""Prometheus metrics of one node: ``[metrics] listen = "127.0.0.1:9946"`` serves ``/metrics``.

Why it costs the node nothing between scrapes:

* A custom collector reads what the node counts anyway - the kernel's ``node.stats``, the runtime's
  ``io`` counters and hook errors, the member table, the store - when Prometheus scrapes, and builds the
  families then. Nothing is incremented per message for metrics. The two latency histograms (storage
  commit, event-loop lag) are plain bucket lists (`Histogram`) filled once per commit and twice a second.
* Each node has its own ``CollectorRegistry``: several agents in one process never collide, and the
  process-wide default registry is left alone.
* The HTTP server is a small asyncio server on the node's own event loop, not prometheus_client's
  threaded ``start_http_server``: a scrape then runs between two kernel steps and reads a consistent
  state without locks (a scrape thread iterating ``node.stats`` or the member table while the loop
  changes them would fail with "dictionary changed size during iteration"), there is no thread to
  join, and it stops with the runtime's tasks. The price: a scrape holds the loop while it renders
  (about a millisecond, benchmarks/metrics_cost.py).

Every counter the kernel and the built-in strategies keep is routed to a documented family
(`CATALOGUE`, `PREFIXES`); a name the catalogue does not know - a third-party strategy's
``ctx.count("x")`` - still shows up as ``gossipmq_kernel_events_total{name="x"}``. docs/metrics.md
lists every family; tests/test_metrics.py checks a scrape of a real node against it.

prometheus_client is optional (``pip install 'gossipmq[metrics]'``): it is imported only when a node is
configured with ``[metrics]``, so other nodes neither need it nor pay for loading it.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sys
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gossipmq.core.config import MetricsSection, parse_listen
from gossipmq.core.errors import GossipError
from gossipmq.core.lag import percentile

from .control import package_version

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from .zmq_runtime import ZmqRuntime

INSTALL_HINT = "pip install 'gossipmq[metrics]' (or: pip install prometheus_client)"
#: storage commit latency buckets, seconds (a WAL commit is ~0.1 ms; fsync on a slow disk ~10 ms)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: event-loop lag buckets, seconds
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOP_LAG_PERIOD_S = 0.5          # how often the sampler sleeps and measures how late it wakes
LAG_QUANTILES = (0.5, 0.9, 0.99)
#: the classic text format: every name here is a legacy-valid ASCII name, so the body is the same in
#: format 0.0.4 and 1.0.0, and Prometheus 2 and 3 both accept it
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0          # a client that sends no complete request in this time is cut off
MAX_REQUEST_BYTES = 16 * 1024


class Histogram:
    """Bucket counts filled by plain code (no prometheus_client on the measuring side); a scrape
    turns them into a Prometheus histogram. `observe` is a bisect and three additions."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)   # the last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations <= le) per bound, then ("+Inf", all)."""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((_le(bound), running))
        out.append(("+Inf", self.count))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


# ---- the families ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    name: str                      # exposition name; counters end in _total
    kind: str                      # counter, gauge, histogram, summary
    help: str
    labels: tuple[str, ...] = ()


_FAMILIES = (
    # membership
    Family("gossipmq_members", "gauge", "Members this node knows, by state (this node included).", ("state",)),
    Family("gossipmq_members_declared_total", "counter",
           "Members this node itself declared suspect, dead or left (force-leave).", ("status",)),
    Family("gossipmq_refutations_total", "counter", "Suspicions or deaths about this node that it refuted."),
    Family("gossipmq_incarnation", "gauge", "This node's incarnation (raised by refutations and tag changes)."),
    Family("gossipmq_joined", "gauge", "1 once a seed answered the join (or the node has no seeds)."),
    Family("gossipmq_health_score", "gauge",
           "Lifeguard local health score (0 = healthy; probes stretch by score + 1); 0 without Lifeguard."),
    Family("gossipmq_probes_total", "counter", "SWIM direct probes sent."),
    Family("gossipmq_probes_failed_total", "counter", "SWIM probes that got no ack, direct or indirect."),
    Family("gossipmq_probes_indirect_total", "counter", "SWIM probes that fell back to indirect ping-req."),
    Family("gossipmq_probes_late_total", "counter",
           "SWIM probes whose deadline timer ran late (this node stalled); not held against the target."),
    Family("gossipmq_probes_degraded_total", "counter", "SWIM probes sent while local health was degraded."),
    Family("gossipmq_pings_misdirected_total", "counter", "Pings meant for another member id at this address."),
    Family("gossipmq_suspicion_confirmations_total", "counter",
           "Independent confirmations of a suspicion (Lifeguard shortens the timeout)."),
    Family("gossipmq_claims_unprovable_total", "counter",
           "Membership claims not relayed because their signature was unknown (signing on)."),
    Family("gossipmq_broadcast_queue_depth", "gauge", "Membership updates waiting to be piggybacked."),
    Family("gossipmq_broadcasts_queued_total", "counter", "Membership updates queued for piggybacking."),
    Family("gossipmq_broadcasts_invalidated_total", "counter", "Queued updates replaced by a newer one."),
    Family("gossipmq_broadcasts_retired_total", "counter", "Updates that left the queue after enough transmits."),
    # messages and bytes
    Family("gossipmq_messages_received_total", "counter", "Messages received, by message type.", ("type",)),
    Family("gossipmq_messages_sent_total", "counter", "Messages sent by the kernel, by message type.", ("type",)),
    Family("gossipmq_received_bytes_total", "counter", "Bytes of received frames (before decoding)."),
    Family("gossipmq_sent_bytes_total", "counter", "Bytes of frames handed to ZeroMQ."),
    Family("gossipmq_dropped_total", "counter", "Rejected input, by cause.", ("cause",)),
    Family("gossipmq_send_failures_total", "counter", "Messages that could not be sent, by reason.", ("reason",)),
    Family("gossipmq_partition_blocked_total", "counter",
           "Messages discarded by the `block` control command (test partitions).", ("direction",)),
    Family("gossipmq_peer_sockets", "gauge", "Outgoing DEALER sockets open (one per peer address)."),
    Family("gossipmq_inbox_connection_events_total", "counter",
           "Incoming connections that ended (a peer that went, or one cut for a frame beyond the limit) "
           "or failed the CURVE handshake.", ("event",)),
    Family("gossipmq_peer_links_lost_total", "counter",
           "Outgoing connections refused or dropped, reported to a partial-view overlay (HyParView "
           "replaces such a neighbour at once)."),
    Family("gossipmq_write_copies_resent_total", "counter",
           "Copies of an acknowledged write (`--ack`, hand-off before leaving) sent again because the "
           "member had not confirmed the first within 0.25 s (then doubling, up to 2 s)."),
    # dissemination and the store
    Family("gossipmq_gossip_rounds_total", "counter", "Dissemination rounds this node ran."),
    Family("gossipmq_writes_total", "counter", "Local writes (put, delete, incr, sadd, srem)."),
    Family("gossipmq_entries_sent_total", "counter", "Entries (versions) sent, by path.", ("path",)),
    Family("gossipmq_syncs_skipped_total", "counter",
           "Digest exchanges a quiet round did not open (the last reports heard carried our checksum).",
           ("reason",)),
    Family("gossipmq_entries_received_total", "counter", "Entries received on every path."),
    Family("gossipmq_entries_applied_total", "counter", "Received entries that changed the store."),
    Family("gossipmq_entries_redundant_total", "counter", "Received entries already held or covered."),
    Family("gossipmq_entries_ignored_total", "counter",
           "Late copies of versions this node garbage-collected, ignored."),
    Family("gossipmq_rumors_retired_total", "counter", "Rumors that stopped being spread (rumor strategy)."),
    Family("gossipmq_plumtree_events_total", "counter", "Plumtree tree events, by event.", ("event",)),
    Family("gossipmq_overlay_events_total", "counter", "HyParView overlay events, by event.", ("event",)),
    Family("gossipmq_rtt_samples_total", "counter", "Round trips timed by SWIM direct acks and fed to Vivaldi."),
    Family("gossipmq_deferred_bytes_total", "counter",
           "Payload bytes a byte budget held back to a later round (all paths)."),
    Family("gossipmq_budget_deferrals_total", "counter",
           "Sends that max_bytes_per_second held back, by path.", ("path",)),
    Family("gossipmq_coverage_refused_total", "counter",
           "Coverage claims about another node's writes cut to what the evidence justifies."),
    Family("gossipmq_context_origins_compacted_total", "counter",
           "Departed origins dropped from new versions' causal contexts."),
    Family("gossipmq_store_keys", "gauge", "Live keys in the replicated store."),
    Family("gossipmq_store_entries", "gauge", "Versions stored (tombstones and siblings included)."),
    Family("gossipmq_tombstones_pending", "gauge", "Keys holding a dead version that waits for GC."),
    Family("gossipmq_tombstones_purged_total", "counter", "Keys whose dead versions GC purged, by reason.",
           ("reason",)),
    Family("gossipmq_resolver_events_total", "counter",
           "Conflict-resolver counters (e.g. siblings_overflow), by name.", ("name",)),
    # anti-entropy
    Family("gossipmq_anti_entropy_rounds_total", "counter", "Merkle exchanges this node started."),
    Family("gossipmq_anti_entropy_rounds_skipped_total", "counter",
           "Anti-entropy rounds skipped because the peer's root already matched."),
    Family("gossipmq_anti_entropy_agreed_total", "counter", "Merkle descents that ended in agreement."),
    Family("gossipmq_anti_entropy_keys_repaired_total", "counter",
           "Versions that Merkle repair applied here (a key usually has one)."),
    Family("gossipmq_anti_entropy_entries_received_total", "counter", "Entries received in merkle_entries."),
    Family("gossipmq_anti_entropy_hashes_total", "counter", "Merkle hashes exchanged, by direction.",
           ("direction",)),
    Family("gossipmq_anti_entropy_keys_total", "counter", "Leaf (key, identity) pairs exchanged, by direction.",
           ("direction",)),
    Family("gossipmq_anti_entropy_deferred_bytes_total", "counter",
           "Repair bytes the per-second budget held back (also in gossipmq_deferred_bytes_total)."),
    # convergence and latency
    Family("gossipmq_converged", "gauge", "1 when every reachable member last reported this node's Merkle root."),
    Family("gossipmq_converged_duration_seconds", "gauge", "Seconds the node has been converged (0 when not)."),
    Family("gossipmq_propagation_lag_seconds", "summary",
           "Origin write to apply here (HLC physical time; clock skew adds). Quantiles over the last 60 s."),
    Family("gossipmq_storage_commit_duration_seconds", "histogram",
           "Durable storage commits (sqlite transactions); none with the memory backend."),
    Family("gossipmq_event_loop_lag_seconds", "histogram",
           "How late a 0.5 s sleep on the node's event loop woke up."),
    # the process, its runtime and extensions
    Family("gossipmq_hook_errors_total", "counter", "Exceptions raised by event-hook implementations.",
           ("plugin", "hook")),
    Family("gossipmq_event_scripts_total", "counter", "[hooks] handler scripts, by outcome.", ("outcome",)),
    Family("gossipmq_task_failures_total", "counter", "Supervised runtime tasks that failed (the node stops)."),
    Family("gossipmq_timer_errors_total", "counter", "Timer handlers that raised (retried)."),
    Family("gossipmq_control_requests_total", "counter", "Control-channel requests served."),
    Family("gossipmq_control_errors_total", "counter", "Control-channel requests answered with an error."),
    Family("gossipmq_chaos_messages_total", "counter", "Messages chaos injection dropped or delayed.", ("action",)),
    Family("gossipmq_kernel_events_total", "counter",
           "Kernel/strategy counters without a family of their own (third-party ctx.count).", ("name",)),
    Family("gossipmq_runtime_events_total", "counter", "Runtime counters without a family of their own.",
           ("name",)),
    Family("gossipmq_start_time_seconds", "gauge", "Unix time the node started."),
    Family("gossipmq_build_info", "gauge", "Always 1; the gossipmq version as a label.", ("version",)),
    Family("gossipmq_node_info", "gauge", "Always 1; who this node is and the strategies it runs.",
           ("node_id", "cluster", "peer_selection", "dissemination", "failure_detection", "conflict_resolution",
            "security", "storage")),
)
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}

#: kernel/strategy counter name -> (family, labels). Every literal ctx.count / stats[...] name of the
#: kernel and built-in strategies is here (tests/test_metrics.py greps the sources to keep it so).
CATALOGUE: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "refutations": ("gossipmq_refutations_total", ()),
    "writes": ("gossipmq_writes_total", ()),
    "context_compacted": ("gossipmq_context_origins_compacted_total", ()),
    "coverage_refused": ("gossipmq_coverage_refused_total", ()),
    "deferred_bytes": ("gossipmq_deferred_bytes_total", ()),
    "deferred_rate": ("gossipmq_budget_deferrals_total", (("path", "delta"),)),
    "rumor_deferred": ("gossipmq_budget_deferrals_total", (("path", "rumor"),)),
    "entries_sent": ("gossipmq_entries_sent_total", (("path", "delta"),)),
    "syncs_skipped_agreed": ("gossipmq_syncs_skipped_total", (("reason", "agreed"),)),
    "rumors_sent": ("gossipmq_entries_sent_total", (("path", "rumor"),)),
    "ae_entries_out": ("gossipmq_entries_sent_total", (("path", "anti_entropy"),)),
    "entries_received": ("gossipmq_entries_received_total", ()),
    "entries_applied": ("gossipmq_entries_applied_total", ()),
    "entries_redundant": ("gossipmq_entries_redundant_total", ()),
    "entries_purged": ("gossipmq_entries_ignored_total", ()),
    "rumors_cooled": ("gossipmq_rumors_retired_total", ()),
    "claims_unprovable": ("gossipmq_claims_unprovable_total", ()),
    "swim.probes": ("gossipmq_probes_total", ()),
    "swim.rtt_samples": ("gossipmq_rtt_samples_total", ()),
    **{f"plumtree_{event}": ("gossipmq_plumtree_events_total", (("event", event),))
       for event in ("delivered", "duplicates", "grafts_sent", "prunes_sent", "optimizations", "gave_up",
                     "trees_forked", "trees_dropped", "repicks")},
    "hv_size_probes": ("gossipmq_overlay_events_total", (("event", "size_probes"),)),
    "hv_unreachable": ("gossipmq_overlay_events_total", (("event", "unreachable"),)),
    "swim.failed_probes": ("gossipmq_probes_failed_total", ()),
    "swim.indirect_probes": ("gossipmq_probes_indirect_total", ()),
    "swim.late_probes": ("gossipmq_probes_late_total", ()),
    "swim.degraded_probes": ("gossipmq_probes_degraded_total", ()),
    "swim.misdirected_pings": ("gossipmq_pings_misdirected_total", ()),
    "swim.confirmations": ("gossipmq_suspicion_confirmations_total", ()),
    "ae_rounds": ("gossipmq_anti_entropy_rounds_total", ()),
    "ae_skipped_equal": ("gossipmq_anti_entropy_rounds_skipped_total", ()),
    "ae_agreed": ("gossipmq_anti_entropy_agreed_total", ()),
    "ae_repaired": ("gossipmq_anti_entropy_keys_repaired_total", ()),
    "ae_entries_in": ("gossipmq_anti_entropy_entries_received_total", ()),
    "ae_hashes_in": ("gossipmq_anti_entropy_hashes_total", (("direction", "in"),)),
    "ae_hashes_out": ("gossipmq_anti_entropy_hashes_total", (("direction", "out"),)),
    "ae_keys_in": ("gossipmq_anti_entropy_keys_total", (("direction", "in"),)),
    "ae_keys_out": ("gossipmq_anti_entropy_keys_total", (("direction", "out"),)),
    "ae_deferred_bytes": ("gossipmq_anti_entropy_deferred_bytes_total", ()),
}
#: counter names with a variable part: prefix -> (family, label). The variable parts are bounded by the
#: code (message types registered, drop causes, member states), never by peers.
PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("in.", "gossipmq_messages_received_total", "type"),
    ("out.", "gossipmq_messages_sent_total", "type"),
    ("dropped.", "gossipmq_dropped_total", "cause"),
    ("declared_", "gossipmq_members_declared_total", "status"),
)
#: drop causes shown (at 0) before they first happen, so rate() sees the first one and dashboards list them
DROP_CAUSES = (
    "frame_count", "bad_magic", "version", "oversized", "malformed", "schema", "unknown_type",          # codec
    "limit_key", "limit_id", "limit_origins", "bad_value", "limit_value", "limit_entries", "limit_members",  # limits
    "wrong_cluster", "spoofed_self", "spoofed_sender", "security", "bad_entry", "tags_oversized",       # kernel
    "absurd_incarnation", "clock_skew",
    "merkle_shape", "merkle_range",                                                                     # anti-entropy
    "unsigned_entry", "forged_entry", "unsigned_claim", "forged_claim", "auth_refused",                 # security
    "rate_limited", "stranger_rate_limited", "revoked_key", "handler_error",                            # runtime
)
#: the runtime's io counters -> (family, labels)
IO_CATALOGUE: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "bytes_in": ("gossipmq_received_bytes_total", ()),
    "bytes_out": ("gossipmq_sent_bytes_total", ()),
    "send_blocked": ("gossipmq_send_failures_total", (("reason", "queue_full"),)),
    "send_errors": ("gossipmq_send_failures_total", (("reason", "socket_error"),)),
    "encode_errors": ("gossipmq_send_failures_total", (("reason", "encode_error"),)),
    "no_trusted_key": ("gossipmq_send_failures_total", (("reason", "no_trusted_key"),)),
    "bad_address": ("gossipmq_send_failures_total", (("reason", "bad_address"),)),
    "blocked_in": ("gossipmq_partition_blocked_total", (("direction", "in"),)),
    "blocked_out": ("gossipmq_partition_blocked_total", (("direction", "out"),)),
    "task_failures": ("gossipmq_task_failures_total", ()),
    "timer_errors": ("gossipmq_timer_errors_total", ()),
    "inbox_disconnects": ("gossipmq_inbox_connection_events_total", (("event", "disconnected"),)),
    "handshake_failures": ("gossipmq_inbox_connection_events_total", (("event", "handshake_failed"),)),
    "links_lost": ("gossipmq_peer_links_lost_total", ()),
    "resent_copies": ("gossipmq_write_copies_resent_total", ()),
}
Route = tuple[str, tuple[tuple[str, str], ...]]


def route(name: str) -> Route:
    """The family and labels a kernel counter name is exported under."""
    known = CATALOGUE.get(name)
    if known is not None:
        return known
    for prefix, family, label in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return family, ((label, name[len(prefix):]),)
    return "gossipmq_kernel_events_total", (("name", name),)


def client() -> Any:
    """The prometheus_client module; GossipError (one line, how to install) when it is missing."""
    if "ssl" in sys.modules and sys.modules["ssl"] is None:
        del sys.modules["ssl"]   # the lean `gossipctl run` path blocks OpenSSL; prometheus_client imports it
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise GossipError(f"[metrics] listen is set but prometheus_client is not installed: {INSTALL_HINT}") from None
    return prometheus_client


# ---- the collector ---------------------------------------------------------------------------------
class NodeCollector:
    """Reads one node's counters at scrape time (prometheus_client calls `collect`)."""

    def __init__(self, runtime: ZmqRuntime, loop_lag: Histogram) -> None:
        self.runtime = runtime
        self.loop_lag = loop_lag
        self._routes: dict[str, Route] = {}
        node = runtime.node
        zeros: dict[Route, float] = {route(k): 0 for k in CATALOGUE}
        zeros.update({route(f"in.{t}"): 0 for t in node.bodies})
        zeros.update({route(f"out.{t}"): 0 for t in node.bodies})
        zeros.update({route(f"dropped.{c}"): 0 for c in DROP_CAUSES})
        zeros.update({route(f"declared_{s}"): 0 for s in ("suspect", "dead", "left")})
        zeros.update({v: 0 for v in IO_CATALOGUE.values()})
        zeros.update({("gossipmq_tombstones_purged_total", (("reason", r),)): 0 for r in ("stable", "ttl")})
        self._zeros = zeros
        self._version = package_version()   # read once: importlib.metadata is slow per scrape
        self._core = client().core

    def _route(self, name: str) -> Route:
        found = self._routes.get(name)
        if found is None:
            found = self._routes[name] = route(name)
        return found

    def collect(self) -> Iterator[Metric]:
        runtime, node = self.runtime, self.runtime.node
        now = time.time()
        values: dict[Route, float] = dict(self._zeros)
        for name, n in node.stats.items():
            key = self._route(name)
            values[key] = values.get(key, 0) + n
        for name, n in runtime.io.items():
            key = IO_CATALOGUE.get(name) or ("gossipmq_runtime_events_total", (("name", name),))
            values[key] = values.get(key, 0) + n
        for name, n in node.replication.gc.stats.items():
            key = ("gossipmq_tombstones_purged_total", (("reason", name.removeprefix("gc_purged_")),))
            values[key] = values.get(key, 0) + n
        for name, n in node.router.totals().items():
            values["gossipmq_resolver_events_total", (("name", name),)] = n
        for where, n in runtime.observers.hook_errors.items():
            plugin, _, hook = where.rpartition(".")
            values["gossipmq_hook_errors_total", (("plugin", plugin), ("hook", hook))] = n
        for name, n in _script_stats(runtime).items():
            values["gossipmq_event_scripts_total", (("outcome", name),)] = n
        if runtime.chaos is not None:
            for name, n in runtime.chaos.stats.items():
                values["gossipmq_chaos_messages_total", (("action", name.removeprefix("chaos_")),)] = n
        counts = node.members.counts()
        counts[node.status] = counts.get(node.status, 0) + 1
        for state, n in counts.items():
            values["gossipmq_members", (("state", state),)] = n
        queue = node.cluster.broadcasts
        converged, since = node.convergence.converged(), node.convergence.since
        control = runtime.control
        detector = node.failure_detector
        values.update({
            ("gossipmq_incarnation", ()): node.inc,
            ("gossipmq_joined", ()): int(node.cluster.joined),
            ("gossipmq_health_score", ()): getattr(detector, "health_score", 0) or 0,
            ("gossipmq_broadcast_queue_depth", ()): len(queue),
            ("gossipmq_broadcasts_queued_total", ()): queue.enqueued,
            ("gossipmq_broadcasts_invalidated_total", ()): queue.invalidated,
            ("gossipmq_broadcasts_retired_total", ()): queue.exhausted,
            ("gossipmq_peer_sockets", ()): len(runtime.peers),
            ("gossipmq_gossip_rounds_total", ()): node.round,
            ("gossipmq_store_keys", ()): node.store.live_keys,
            ("gossipmq_store_entries", ()): len(node.store),
            ("gossipmq_tombstones_pending", ()): len(node.replication.gc.candidates),
            ("gossipmq_converged", ()): int(converged),
            ("gossipmq_converged_duration_seconds", ()): now - since if converged and since is not None else 0.0,
            ("gossipmq_control_requests_total", ()): control.requests if control is not None else 0,
            ("gossipmq_control_errors_total", ()): control.errors if control is not None else 0,
            ("gossipmq_start_time_seconds", ()): runtime.started_at,
            ("gossipmq_build_info", (("version", self._version),)): 1,
            (("gossipmq_node_info", (("node_id", node.node_id), ("cluster", node.cluster_name),
                                     *((c, node.strategy_names.get(c, "")) for c in _STRATEGY_LABELS),
                                     ("storage", node.storage.backend)))): 1,
        })
        core = self._core
        families: dict[str, Any] = {}
        for spec in _FAMILIES:
            if spec.kind == "counter":
                families[spec.name] = core.CounterMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            elif spec.kind == "gauge":
                families[spec.name] = core.GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for (name, labels), value in values.items():
            families[name].add_metric([v for _, v in labels], value)
        for spec in _FAMILIES:
            if spec.kind in ("counter", "gauge"):
                yield families[spec.name]
        yield self._lag(now)
        for name, histogram in (("gossipmq_storage_commit_duration_seconds", runtime.commit_seconds),
                                ("gossipmq_event_loop_lag_seconds", self.loop_lag)):
            yield core.HistogramMetricFamily(name, FAMILIES[name].help, buckets=histogram.cumulative(),
                                             sum_value=histogram.sum)

    def _lag(self, now: float) -> Metric:
        name = "gossipmq_propagation_lag_seconds"
        metric = self._core.Metric(name, FAMILIES[name].help, "summary")
        window = self.runtime.node.replication.lag
        recent = window.recent(now)
        if recent:
            for q in LAG_QUANTILES:
                metric.add_sample(name, {"quantile": str(q)}, percentile(recent, q) / 1000)
        metric.add_sample(f"{name}_sum", {}, window.total_ms / 1000)
        metric.add_sample(f"{name}_count", {}, window.total)
        return metric


_STRATEGY_LABELS = ("peer_selection", "dissemination", "failure_detection", "conflict_resolution", "security")


def _script_stats(runtime: ZmqRuntime) -> dict[str, int]:
    """Counters of this node's [hooks] event scripts, if it runs any."""
    from .event_scripts import EventScripts

    if runtime.pm is None:
        return {}
    for plugin in runtime.pm.get_plugins():
        if isinstance(plugin, EventScripts):
            return dict(plugin.stats)
    return {}


# ---- the server ------------------------------------------------------------------------------------
class MetricsServer:
    """Serves one node's registry on ``/metrics`` from the node's event loop (see module docstring)."""

    def __init__(self, listen: str) -> None:
        self.client = client()
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.loop_lag = Histogram(LOOP_LAG_BUCKETS)
        self.registry: Any = None
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logging.getLogger("gossipmq")
        self._errors = 0

    @classmethod
    def from_config(cls, section: MetricsSection) -> MetricsServer | None:
        """None when [metrics] listen is empty; GossipError when prometheus_client is missing."""
        return cls(section.listen) if section.listen else None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def start(self, runtime: ZmqRuntime) -> None:
        """Bind and serve until the runtime closes (its tasks are cancelled). GossipError, one line,
        when the address cannot be bound."""
        self.registry = self.client.CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(runtime, self.loop_lag))
        self._log = runtime.log
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                      limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE   # asyncio words strerror at length: say it plainly
            reason = os.strerror(exc.errno) if exc.errno and not isinstance(exc, socket.gaierror) else str(exc)
            raise GossipError(f"cannot serve metrics on {self.listen}: {reason}"
                              + (" (another node or program listens there)" if busy else "")) from None
        runtime.spawn("metrics", self._serve())
        runtime.spawn("loop_lag", self._sample_loop_lag())
        runtime.log.info("metrics on %s", self.url)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def render(self) -> bytes:
        """The exposition text a scrape gets (also handy in tests and benchmarks)."""
        return self.client.generate_latest(self.registry)

    async def _serve(self) -> None:
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            self.close()

    async def _sample_loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LOOP_LAG_PERIOD_S)
            self.loop_lag.observe(max(0.0, loop.time() - started - LOOP_LAG_PERIOD_S))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.x request per connection: GET or HEAD of /metrics (or /)."""
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET /metrics\n"
            elif path not in ("/metrics", "/"):
                status, ctype, body = "404 Not Found", "text/plain", b"metrics are on /metrics\n"
            else:
                try:
                    body = self.render()
                    status, ctype = "200 OK", CONTENT_TYPE
                    self.scrapes += 1
                except Exception:   # a collector bug must not take the server (or the node) down
                    self._errors += 1
                    if self._errors == 1 or self._errors % 1000 == 0:
                        self._log.exception("rendering metrics failed (%d so far)", self._errors)
                    status, ctype, body = "500 Internal Server Error", "text/plain", b"metrics failed; see log\n"
            header = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                      f"Connection: close\r\n\r\n").encode("latin-1")
            writer.write(header + (body if method != "HEAD" else b""))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

"""Vivaldi network coordinates (Dabek, Cox, Kaashoek, Morris, SIGCOMM 2004), as Serf's
`coordinate` package runs them, made sans-I/O.

Every node holds a point in a synthetic space such that the distance between two points
predicts the round-trip time between the two nodes. The model is a mass-spring system: each
RTT sample is the rest length of a spring between us and the peer, and we move a fraction of
the way that relaxes it. With ``d`` the predicted and ``rtt`` the measured time:

    w      = e_local / (e_local + e_remote)           how much to trust ourselves vs. the peer
    e_s    = |d - rtt| / rtt                          this sample's relative error
    e     <- ce * w * e_s + e * (1 - ce * w)          moving error estimate (capped at error_max)
    x     <- x + cc * w * (rtt - d) * u(x - x_peer)   move along the unit vector away from the peer

(the paper's "adaptive timestep": a node sure of itself, w small, barely moves toward an unsure
peer; a new node, error at the maximum, moves a lot). A point is a Euclidean vector (8 dims,
after Ledlie et al., NSDI 2007) plus a *height*, a non-Euclidean term for the access link
that every path out of the node pays (distance = |x_a - x_b| + h_a + h_b). Serf adds:

* a per-peer latency filter: the median of the last `latency_filter_size` samples feeds the
  update, so one delayed probe does not throw the coordinate around (Ledlie et al.);
* an *adjustment* term: the mean of the last `adjustment_window` residuals (rtt minus raw
  distance) halved, added to both ends of a distance, which soaks up what the Euclidean
  model cannot represent (Lee et al., ToN 2010);
* gravity: a pull toward the origin growing as (|x| / rho)^2, so the whole system does not
  drift away over time (Ledlie et al.).

Coordinates come from peers and are untrusted input: `check_coordinate` refuses NaN,
infinities, absurd magnitudes, negative heights or errors, and the wrong dimensionality, and
the client returns the reason instead of raising. No clock, no global RNG: the RNG (used
only to pick a direction when two points coincide) is an argument.
"""
from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

import msgspec

# Below this, two points are considered to coincide and an RTT is considered zero (Serf).
ZERO_THRESHOLD = 1.0e-6


class Coordinate(msgspec.Struct, frozen=True, array_like=True):
    """A node's position: `vec` and `height` in seconds, `error` dimensionless.

    Encodes as a JSON array ``[[x1..x8], error, adjustment, height]`` (about 200 bytes),
    small enough to ride on every probe and ack.
    """

    vec: Annotated[tuple[float, ...], msgspec.Meta(max_length=64)]   # decode bound; check_coordinate checks more
    error: float
    adjustment: float
    height: float


@dataclass(frozen=True, slots=True)
class VivaldiOptions:
    """Tuning, with Serf's defaults (coordinate/config.go) and where they come from."""

    #: Euclidean dimensions; 8 plus a height (Ledlie et al. found gains up to about there)
    dimensionality: int = 8
    #: error of a node with no observation yet, and the cap on error
    error_max: float = 1.5
    #: ce: the most one observation can move the error estimate (Dabek et al.)
    vivaldi_ce: float = 0.25
    #: cc: the most one observation can move the coordinate (Dabek et al.)
    vivaldi_cc: float = 0.25
    #: residual samples averaged into the adjustment term; 0 turns adjustments off (Lee et al.)
    adjustment_window: int = 20
    #: heights never go below this (seconds); a height must stay positive
    height_min: float = 10.0e-6
    #: RTT samples per peer whose median is used (Ledlie et al.)
    latency_filter_size: int = 3
    #: rho: gravity toward the origin is (distance / rho)^2 seconds per update (Ledlie et al.)
    gravity_rho: float = 150.0
    #: RTT samples outside [0, max_rtt] seconds are refused (Serf refuses beyond 10 s)
    max_rtt: float = 10.0
    #: refuse a peer coordinate with any |component| (vec, height, adjustment) above this, in
    #: seconds. Not in Serf: no real RTT is near a minute, so such values are garbage or hostile.
    max_component: float = 60.0
    #: peers whose latency filter we keep (least recently updated forgotten first)
    max_tracked_peers: int = 4096

    def __post_init__(self) -> None:
        if self.dimensionality < 1:
            raise ValueError("dimensionality must be at least 1")
        if not (0.0 < self.vivaldi_ce <= 1.0 and 0.0 < self.vivaldi_cc <= 1.0):
            raise ValueError("vivaldi_ce and vivaldi_cc must be in (0, 1]")
        if self.error_max <= 0 or self.height_min <= 0 or self.gravity_rho <= 0 or self.max_rtt <= 0:
            raise ValueError("error_max, height_min, gravity_rho and max_rtt must be positive")
        if self.adjustment_window < 0 or self.latency_filter_size < 1 or self.max_tracked_peers < 1:
            raise ValueError("adjustment_window >= 0, latency_filter_size >= 1, max_tracked_peers >= 1")


def origin(options: VivaldiOptions) -> Coordinate:
    """The starting point: the origin, maximal error, minimal height."""
    return Coordinate(vec=(0.0,) * options.dimensionality, error=options.error_max, adjustment=0.0,
                      height=options.height_min)


def _finite(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x)


def check_coordinate(coord: Coordinate, options: VivaldiOptions) -> str | None:
    """Why `coord` (received from a peer) must be refused, or None if it is usable.

    Beyond Serf's checks (finite components, same dimensionality) this refuses magnitudes no
    network produces, negative heights and errors, and errors above the cap: an error of -1
    would make the weight above exceed 1 and push us further than cc allows.
    """
    if len(coord.vec) != options.dimensionality:
        return f"dimensionality {len(coord.vec)} != {options.dimensionality}"
    if not all(_finite(x) for x in coord.vec):
        return "non-finite vector component"
    if not (_finite(coord.error) and _finite(coord.adjustment) and _finite(coord.height)):
        return "non-finite error, adjustment or height"
    limit = options.max_component
    if any(abs(x) > limit for x in coord.vec) or abs(coord.adjustment) > limit or coord.height > limit:
        return f"component beyond {limit} s"
    if coord.height < 0.0:
        return "negative height"
    if not 0.0 <= coord.error <= options.error_max:
        return f"error outside [0, {options.error_max}]"
    return None


def _raw_distance(a: Coordinate, b: Coordinate) -> float:
    return math.dist(a.vec, b.vec) + a.height + b.height


def distance(a: Coordinate, b: Coordinate) -> float:
    """Predicted RTT in seconds between two coordinates (Serf's DistanceTo).

    The vector distance plus both heights, plus both adjustment terms unless that would make
    the estimate non-positive (adjustments may be negative), in which case the unadjusted
    distance is returned. Raises ValueError if the dimensionalities differ; validate peer
    coordinates with `check_coordinate` first.
    """
    if len(a.vec) != len(b.vec):
        raise ValueError(f"dimensionality mismatch: {len(a.vec)} vs {len(b.vec)}")
    raw = _raw_distance(a, b)
    adjusted = raw + a.adjustment + b.adjustment
    return adjusted if adjusted > 0.0 else raw


def _unit_vector_at(rng: random.Random, v1: tuple[float, ...], v2: tuple[float, ...]) -> tuple[list[float], float]:
    """Unit vector pointing from v2 toward v1, and the distance between them. Coinciding points
    get a random direction (and distance 0), so two new nodes at the origin can separate."""
    diff = [x - y for x, y in zip(v1, v2, strict=True)]
    mag = math.hypot(*diff)
    if mag > ZERO_THRESHOLD:
        return [x / mag for x in diff], mag
    for _ in range(4):
        diff = [rng.random() - 0.5 for _ in v1]
        norm = math.hypot(*diff)
        if norm > ZERO_THRESHOLD:
            return [x / norm for x in diff], 0.0
    return [1.0] + [0.0] * (len(v1) - 1), 0.0


def _apply_force(rng: random.Random, height_min: float, coord: Coordinate, force: float,
                 other: Coordinate) -> Coordinate:
    """Move `coord` by `force` seconds along the direction away from `other` (toward it when
    the force is negative). The height moves in proportion, as its share of the distance
    (Serf's rule: height += (h + h_other) * force / |x - x_other|)."""
    unit, mag = _unit_vector_at(rng, coord.vec, other.vec)
    vec = tuple(x + u * force for x, u in zip(coord.vec, unit, strict=True))
    height = coord.height
    if mag > ZERO_THRESHOLD:
        height = max(height_min, (height + other.height) * force / mag + height)
    return Coordinate(vec=vec, error=coord.error, adjustment=coord.adjustment, height=height)


def _valid(coord: Coordinate) -> bool:
    return (all(math.isfinite(x) for x in coord.vec) and math.isfinite(coord.error)
            and math.isfinite(coord.adjustment) and math.isfinite(coord.height))


class VivaldiClient:
    """This node's coordinate, updated from (peer coordinate, measured RTT) observations.

    Sans-I/O: the caller measures RTTs (e.g. a SWIM probe and its ack, which also carries the
    peer's coordinate) and feeds them in. Nothing here reads a clock.
    """

    __slots__ = ("options", "_rng", "_coord", "_origin", "_adj_samples", "_adj_index", "_filters",
                 "resets", "refused", "updates")

    def __init__(self, options: VivaldiOptions | None = None, rng: random.Random | None = None) -> None:
        self.options = options or VivaldiOptions()
        self._rng = rng or random.Random(0)
        self._origin = origin(self.options)
        self._coord = self._origin
        self._adj_samples = [0.0] * self.options.adjustment_window
        self._adj_index = 0
        self._filters: OrderedDict[str, list[float]] = OrderedDict()
        self.resets = 0         # our own coordinate went non-finite and was reset (Serf's stat)
        self.refused = 0        # observations refused (bad peer coordinate or RTT)
        self.updates = 0

    @property
    def coordinate(self) -> Coordinate:
        """Our current coordinate (immutable; safe to hand to the wire)."""
        return self._coord

    def set_coordinate(self, coord: Coordinate) -> str | None:
        """Force our coordinate (e.g. restored from disk). Returns a refusal reason or None."""
        reason = check_coordinate(coord, self.options)
        if reason is None:
            self._coord = coord
        return reason

    def forget(self, peer_id: str) -> None:
        """Drop the latency filter of a peer that left."""
        self._filters.pop(peer_id, None)

    def distance_to(self, coord: Coordinate) -> float | None:
        """Predicted RTT to the holder of `coord`, in seconds; None if `coord` is unusable."""
        if check_coordinate(coord, self.options) is not None:
            return None
        return distance(self._coord, coord)

    def update(self, peer_id: str, peer_coord: Coordinate, rtt_seconds: float) -> str | None:
        """Account one RTT observation to `peer_id`, whose coordinate is `peer_coord`.

        Returns None when applied, or the reason it was refused (bad coordinate, RTT not in
        [0, max_rtt]); a refused observation changes nothing, not even the latency filter.
        """
        reason = check_coordinate(peer_coord, self.options)
        if reason is None and not (_finite(rtt_seconds) and 0.0 <= rtt_seconds <= self.options.max_rtt):
            reason = f"rtt outside [0, {self.options.max_rtt}] s"
        if reason is not None:
            self.refused += 1
            return reason
        rtt = self._filter(peer_id, float(rtt_seconds))
        self._update_vivaldi(peer_coord, rtt)
        self._update_adjustment(peer_coord, rtt)
        self._update_gravity()
        if not _valid(self._coord):
            self.resets += 1
            self._coord = self._origin
        self.updates += 1
        return None

    # ---- the three steps of an update (Serf's order) ----------------------------------

    def _filter(self, peer_id: str, rtt: float) -> float:
        """Median of the last few samples to this peer (the upper median for even counts)."""
        samples = self._filters.pop(peer_id, None)
        if samples is None:
            samples = []
            while len(self._filters) >= self.options.max_tracked_peers:
                self._filters.popitem(last=False)
        samples.append(rtt)
        if len(samples) > self.options.latency_filter_size:
            del samples[0]
        self._filters[peer_id] = samples    # re-inserted: most recently updated last
        return sorted(samples)[len(samples) // 2]

    def _update_vivaldi(self, other: Coordinate, rtt: float) -> None:
        opts, me = self.options, self._coord
        dist = distance(me, other)
        rtt = max(rtt, ZERO_THRESHOLD)
        wrongness = abs(dist - rtt) / rtt
        total_error = max(me.error + other.error, ZERO_THRESHOLD)
        weight = me.error / total_error
        error = min(opts.error_max, opts.vivaldi_ce * weight * wrongness + me.error * (1.0 - opts.vivaldi_ce * weight))
        force = opts.vivaldi_cc * weight * (rtt - dist)
        moved = _apply_force(self._rng, opts.height_min, me, force, other)
        self._coord = Coordinate(vec=moved.vec, error=error, adjustment=moved.adjustment, height=moved.height)

    def _update_adjustment(self, other: Coordinate, rtt: float) -> None:
        window = self.options.adjustment_window
        if window == 0:
            return
        # Residual against the raw distance: the adjustments themselves do not feed back.
        self._adj_samples[self._adj_index] = rtt - _raw_distance(self._coord, other)
        self._adj_index = (self._adj_index + 1) % window
        # Serf divides by 2 * window even while the window is still filling (unfilled slots
        # count as zeros), so the term grows in gently; halved because both ends add theirs.
        adjustment = sum(self._adj_samples) / (2.0 * window)
        me = self._coord
        self._coord = Coordinate(vec=me.vec, error=me.error, adjustment=adjustment, height=me.height)

    def _update_gravity(self) -> None:
        dist = distance(self._origin, self._coord)
        force = -((dist / self.options.gravity_rho) ** 2)
        self._coord = _apply_force(self._rng, self.options.height_min, self._coord, force, self._origin)

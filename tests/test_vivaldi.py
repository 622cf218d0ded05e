"""Vivaldi coordinates: Serf's update rules, convergence on a synthetic latency matrix, and
refusal of hostile coordinates and RTTs."""
from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipmq.core.vivaldi import (
    Coordinate,
    VivaldiClient,
    VivaldiOptions,
    check_coordinate,
    distance,
    origin,
)

OPTS = VivaldiOptions()


def coord(vec: tuple[float, ...] | None = None, error: float = 1.0, adjustment: float = 0.0,
          height: float = 1e-5) -> Coordinate:
    return Coordinate(vec=vec if vec is not None else (0.0,) * 8, error=error, adjustment=adjustment, height=height)


def world(n: int, seed: int) -> Callable[[int, int], float]:
    """RTTs of n hosts: points in a 100 ms x 100 ms plane plus an access-link height each (1 to
    10 ms), the model Vivaldi's height vectors were made for."""
    rng = random.Random(seed)
    pts = [(rng.uniform(0, 0.1), rng.uniform(0, 0.1)) for _ in range(n)]
    heights = [rng.uniform(0.001, 0.01) for _ in range(n)]
    return lambda i, j: math.dist(pts[i], pts[j]) + heights[i] + heights[j]


def median_relative_error(clients: list[VivaldiClient], rtt: Callable[[int, int], float]) -> float:
    n = len(clients)
    errors = [abs(distance(clients[i].coordinate, clients[j].coordinate) - rtt(i, j)) / rtt(i, j)
              for i in range(n) for j in range(i + 1, n)]
    return float(statistics.median(errors))


def simulate(n: int, rounds: int, seed: int, jitter: float = 0.0,
             checkpoints: tuple[int, ...] = ()) -> tuple[list[VivaldiClient], list[float]]:
    """Each round every node probes one random peer, measures the RTT (optionally inflated by
    up to `jitter`, queueing delays only ever add) and updates with the peer's coordinate."""
    rtt = world(n, seed)
    rng = random.Random(seed + 1)
    clients = [VivaldiClient(VivaldiOptions(), random.Random(seed * 1000 + i)) for i in range(n)]
    errors = []
    for r in range(1, rounds + 1):
        for i in range(n):
            j = rng.randrange(n - 1)
            j += j >= i
            sample = rtt(i, j) * (1.0 + jitter * rng.random())
            assert clients[i].update(str(j), clients[j].coordinate, sample) is None
        if r in checkpoints:
            errors.append(median_relative_error(clients, rtt))
    return clients, errors


# ---- convergence -------------------------------------------------------------------------

def test_converges_on_a_synthetic_latency_matrix() -> None:
    clients, (e10, e50, e100) = simulate(60, 100, seed=1, checkpoints=(10, 50, 100))
    print(f"\nmedian relative error, 60 nodes: {e10:.3f} after 10 updates per node, {e50:.3f} after 50, "
          f"{e100:.3f} after 100")
    assert e100 < 0.08
    assert e100 < e50 < e10
    assert all(c.coordinate.error < OPTS.error_max for c in clients), "confidence grew"
    assert all(c.resets == 0 and c.refused == 0 for c in clients)


def test_converges_despite_jittered_samples() -> None:
    _, (e100,) = simulate(60, 100, seed=2, jitter=0.2, checkpoints=(100,))
    print(f"\nmedian relative error with samples inflated by up to 20%: {e100:.3f}")
    assert e100 < 0.2


def test_two_nodes_settle_at_their_rtt() -> None:
    a, b = VivaldiClient(rng=random.Random(1)), VivaldiClient(rng=random.Random(2))
    for _ in range(200):
        a.update("b", b.coordinate, 0.05)
        b.update("a", a.coordinate, 0.05)
    assert a.distance_to(b.coordinate) == pytest.approx(0.05, rel=0.05)
    assert distance(a.coordinate, b.coordinate) == pytest.approx(distance(b.coordinate, a.coordinate))


# ---- Serf's rules, one by one ------------------------------------------------------------

def test_distance_adds_heights_and_adjustments_unless_that_goes_non_positive() -> None:
    a = coord((0.003, 0.004) + (0.0,) * 6, height=0.001, adjustment=0.002)
    b = coord(height=0.002, adjustment=-0.001)
    assert distance(a, b) == pytest.approx(0.005 + 0.001 + 0.002 + 0.002 - 0.001)
    c = coord(height=0.002, adjustment=-0.05)        # adjusted distance would be negative
    assert distance(a, c) == pytest.approx(0.005 + 0.001 + 0.002), "falls back to the raw distance"
    with pytest.raises(ValueError):
        distance(a, Coordinate((0.0,) * 3, 1.0, 0.0, 1e-5))


def test_new_client_starts_at_the_origin_with_maximal_error() -> None:
    c = VivaldiClient()
    assert c.coordinate == origin(OPTS)
    assert c.coordinate.error == 1.5 and c.coordinate.height == 1e-5 and len(c.coordinate.vec) == 8


def test_latency_filter_uses_the_median_of_recent_samples() -> None:
    peer = coord((0.01,) + (0.0,) * 7)
    spiky, steady = VivaldiClient(rng=random.Random(3)), VivaldiClient(rng=random.Random(3))
    for sample in (0.02, 0.02, 0.02, 0.02, 0.5, 0.02):
        spiky.update("p", peer, sample)
    for _ in range(6):
        steady.update("p", peer, 0.02)
    assert spiky.coordinate == steady.coordinate, "one delayed probe in three does not count"


def test_gravity_pulls_toward_the_origin() -> None:
    far = coord((5.0,) + (0.0,) * 7, error=0.1)
    peer = coord((5.0, 0.1) + (0.0,) * 6, error=1.5)
    strong, none = VivaldiClient(VivaldiOptions(gravity_rho=10.0)), VivaldiClient(VivaldiOptions(gravity_rho=1e9))
    for c in (strong, none):
        assert c.set_coordinate(far) is None
        c.update("p", peer, distance(far, peer))       # the RTT matches: only gravity moves us
    assert strong.coordinate.vec[0] < none.coordinate.vec[0] - 0.1
    assert none.coordinate.vec[0] == pytest.approx(5.0, abs=1e-6)


def test_adjustment_window_off_keeps_adjustment_zero() -> None:
    c = VivaldiClient(VivaldiOptions(adjustment_window=0))
    other = VivaldiClient(VivaldiOptions(adjustment_window=20))
    peer = coord((0.02,) + (0.0,) * 7)
    for _ in range(10):
        c.update("p", peer, 0.08)
        other.update("p", peer, 0.08)
    assert c.coordinate.adjustment == 0.0 and other.coordinate.adjustment != 0.0


def test_filters_are_bounded_and_forgettable() -> None:
    c = VivaldiClient(VivaldiOptions(max_tracked_peers=3))
    for i in range(10):
        c.update(f"p{i}", coord(), 0.01)
    assert list(c._filters) == ["p7", "p8", "p9"]
    c.forget("p8")
    assert list(c._filters) == ["p7", "p9"]


# ---- untrusted input -----------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
HOSTILE = [
    ("nan component", coord((NAN,) + (0.0,) * 7)),
    ("inf component", coord((INF,) + (0.0,) * 7)),
    ("nan error", coord(error=NAN)),
    ("inf height", coord(height=INF)),
    ("nan adjustment", coord(adjustment=NAN)),
    ("wrong dimensionality", Coordinate((0.0,) * 3, 1.0, 0.0, 1e-5)),
    ("no dimensions", Coordinate((), 1.0, 0.0, 1e-5)),
    ("huge component", coord((1e9,) + (0.0,) * 7)),
    ("huge height", coord(height=3600.0)),
    ("huge adjustment", coord(adjustment=-1e6)),
    ("negative height", coord(height=-0.01)),
    ("negative error", coord(error=-1.0)),
    ("error above the cap", coord(error=100.0)),
]


@pytest.mark.parametrize("bad", [c for _, c in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_coordinates_are_refused_with_a_reason(bad: Coordinate) -> None:
    c = VivaldiClient(rng=random.Random(1))
    c.update("good", coord((0.01,) + (0.0,) * 7), 0.02)
    before, filters = c.coordinate, {k: list(v) for k, v in c._filters.items()}
    reason = c.update("evil", bad, 0.02)
    assert isinstance(reason, str) and reason
    assert check_coordinate(bad, OPTS) == reason
    assert c.coordinate == before and c._filters == filters, "a refused observation changes nothing"
    assert c.refused == 1 and c.updates == 1
    assert c.distance_to(bad) is None
    assert c.set_coordinate(bad) == reason and c.coordinate == before


@pytest.mark.parametrize("rtt", [-0.001, 10.5, NAN, INF, -INF])
def test_impossible_rtts_are_refused(rtt: float) -> None:
    c = VivaldiClient()
    assert c.update("p", coord(), rtt) is not None
    assert c.coordinate == origin(OPTS) and c.refused == 1 and not c._filters


def test_zero_rtt_is_accepted() -> None:
    """Coarse clocks report 0 (Serf counts them but accepts them): treated as 1 microsecond."""
    c = VivaldiClient()
    assert c.update("p", coord((0.01,) + (0.0,) * 7), 0.0) is None
    assert all(math.isfinite(x) for x in c.coordinate.vec)


def test_coordinates_are_small_strict_json() -> None:
    c, _ = simulate(5, 5, seed=4)
    raw = msgspec.json.encode(c[0].coordinate)
    assert raw.startswith(b"[[") and len(raw) < 300
    assert msgspec.json.decode(raw, type=Coordinate) == c[0].coordinate
    for garbage in (b'[[1,2],"x",0,0]', b'{"vec": [1]}', b"[[1,2,3,4,5,6,7,8],1,0]"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(garbage, type=Coordinate)
    # JSON itself cannot carry NaN, but a decoded coordinate is still checked for the rest
    odd = msgspec.json.decode(b"[[1e308,0,0,0,0,0,0,0],1,0,0]", type=Coordinate)
    assert check_coordinate(odd, OPTS) is not None


def test_options_are_validated() -> None:
    bads: list[dict[str, Any]] = [{"dimensionality": 0}, {"vivaldi_cc": 0.0}, {"vivaldi_ce": 1.5},
                                  {"gravity_rho": 0.0}, {"latency_filter_size": 0}]
    for bad in bads:
        with pytest.raises(ValueError):
            VivaldiOptions(**bad)


finite = st.floats(-0.5, 0.5)
valid_coords = st.builds(Coordinate, st.tuples(*[finite] * 8), st.floats(0.0, 1.5), st.floats(-0.2, 0.2),
                         st.floats(0.0, 0.5))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), valid_coords, st.floats(0.0, 10.0)), max_size=40))
def test_any_valid_observations_keep_our_coordinate_valid(obs: list[tuple[int, Coordinate, float]]) -> None:
    c = VivaldiClient(rng=random.Random(0))
    for peer, other, rtt in obs:
        assert c.update(f"p{peer}", other, rtt) is None
        me = c.coordinate
        assert check_coordinate(me, OPTS) is None or c.resets > 0
        assert all(math.isfinite(x) for x in me.vec)
        assert 0.0 <= me.error <= OPTS.error_max and me.height >= OPTS.height_min
        assert distance(me, other) > 0.0

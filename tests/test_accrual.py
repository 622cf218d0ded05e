"""Phi accrual arithmetic: the definition, its monotonicity and the window statistics."""
from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipmq.core.accrual import ArrivalWindow, phi


def test_phi_matches_the_normal_tail_definition() -> None:
    # At the mean, half of the heartbeats are later still: phi = -log10(0.5).
    assert phi(1.0, 1.0, 0.1) == pytest.approx(math.log10(2))
    # Three deviations late: P(later) = 0.00135 -> phi ~ 2.87.
    assert phi(1.3, 1.0, 0.1) == pytest.approx(-math.log10(0.5 * math.erfc(3 / math.sqrt(2))))
    assert phi(100.0, 1.0, 0.1) == math.inf


@given(st.floats(0, 5), st.floats(0, 5), st.floats(0.01, 2))
def test_phi_grows_with_silence(a: float, b: float, sd: float) -> None:
    lo, hi = sorted((a, b))
    assert phi(lo, 1.0, sd) <= phi(hi, 1.0, sd)


def test_window_statistics_slide() -> None:
    w = ArrivalWindow(4, 1.0, now=0.0)
    assert w.mean == pytest.approx(1.0) and w.std_dev == pytest.approx(1.0)
    t = 0.0
    for gap in (0.5, 0.7, 0.9, 1.1, 1.3):
        t += gap
        w.arrival(t)
    assert len(w) == 4
    assert w.mean == pytest.approx(statistics.mean([0.7, 0.9, 1.1, 1.3]))
    assert w.std_dev == pytest.approx(statistics.pstdev([0.7, 0.9, 1.1, 1.3]))


def test_acceptable_pause_and_min_std_dev_lower_phi() -> None:
    w = ArrivalWindow(10, 1.0, now=0.0)
    for i in range(1, 10):
        w.arrival(float(i))        # perfectly regular: deviation ~0 after the bootstrap slides out
    strict = w.phi(10.5, min_std_dev=0.05)
    assert strict > w.phi(10.5, min_std_dev=0.5)
    assert strict > w.phi(10.5, min_std_dev=0.05, acceptable_pause=1.0)

"""Lifeguard's suspicion timeout and local health score (pure modules)."""
from __future__ import annotations

import math

import pytest

from gossipmq.core.awareness import Awareness
from gossipmq.core.suspicion import Suspicion, shrunk_timeout, suspicion_timeout


@pytest.mark.parametrize("n, expected", [(1, 4.0), (5, 4.0), (10, 4.0), (20, 4 * math.log10(20)), (1000, 12.0)])
def test_minimum_timeout_scales_with_log10_n_clamped_at_one(n: int, expected: float) -> None:
    assert suspicion_timeout(4, n, 1.0) == pytest.approx(expected)


def test_timeout_starts_at_max_and_reaches_min_at_k_confirmations() -> None:
    s = Suspicion("b", 7, "a", k=3, min_s=4.0, max_s=24.0, start=100.0)
    assert s.deadline == pytest.approx(124.0)
    deadlines = []
    for by in ("c", "d", "e"):
        assert s.confirm(by)
        deadlines.append(s.deadline)
    assert deadlines[0] > deadlines[1] > deadlines[2] == pytest.approx(104.0)
    # memberlist's formula: max - log(n+1)/log(k+1) * (max - min)
    assert deadlines[0] == pytest.approx(100 + 24 - math.log(2) / math.log(4) * 20)
    assert not s.confirm("f"), "confirmations beyond k change nothing"


def test_suspector_and_duplicates_do_not_count() -> None:
    s = Suspicion("b", 1, "a", k=2, min_s=1.0, max_s=6.0, start=0.0)
    assert not s.confirm("a"), "our own suspicion gossiped back is not a confirmation"
    assert s.confirm("c")
    assert not s.confirm("c")
    assert not s.confirm(""), "an anonymous claim is not independent evidence"
    assert s.n == 1


def test_without_expected_confirmations_the_minimum_applies() -> None:
    assert shrunk_timeout(0, 0, 4.0, 24.0) == 4.0
    assert Suspicion("b", 1, "a", k=0, min_s=4.0, max_s=24.0, start=10.0).deadline == 14.0


def test_awareness_is_clamped_and_scales_timeouts() -> None:
    health = Awareness(8)
    assert health.scale(0.5) == 0.5
    for _ in range(20):
        health.apply(3)
    assert health.score == 7 and health.scale(1.0) == 8.0, "at most 8x"
    health.apply(-100)
    assert health.score == 0
    assert Awareness(1).apply(5) == 0, "max_mult 1 disables scaling"

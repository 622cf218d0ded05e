"""Propagation lag: how long updates took to reach this node.

Every entry carries the HLC timestamp its origin gave it, whose physical part is the origin's
wall clock in milliseconds (clock.py). When a remote update is applied here, now - that time
is its propagation lag (clock skew between hosts adds to it; on one host or in the simulator
it is exact). The window keeps the latest samples and reports p50/p99 over those younger than
`horizon` seconds.
"""
from __future__ import annotations

import math
from collections import deque

from .clock import hlc_physical_ms


class LagWindow:
    __slots__ = ("samples", "horizon", "total", "total_ms", "fresh")

    def __init__(self, size: int = 1024, horizon: float = 60.0) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)   # (applied at, lag ms)
        self.horizon = horizon
        self.total = 0
        self.total_ms = 0.0   # sum of every lag recorded (a Prometheus summary's _sum)
        self.fresh = 0    # samples since the last report

    def record(self, now: float, origin_hlc: int) -> None:
        lag = max(0.0, now * 1000 - hlc_physical_ms(origin_hlc))
        self.samples.append((now, lag))
        self.total += 1
        self.total_ms += lag
        self.fresh += 1

    def recent(self, now: float) -> list[float]:
        """Lags (ms) of the window younger than `horizon`, sorted; read-only (a scrape must not
        reset `fresh`, which decides whether the next round event carries the lag)."""
        return sorted(lag for at, lag in self.samples if at >= now - self.horizon)

    def summary(self, now: float) -> dict[str, float | int | None]:
        """{"lag_p50_ms", "lag_p99_ms", "lag_samples"} over the window (None when empty)."""
        lags = self.recent(now)
        self.fresh = 0
        if not lags:
            return {"lag_p50_ms": None, "lag_p99_ms": None, "lag_samples": 0}
        return {"lag_p50_ms": round(percentile(lags, 0.50), 1), "lag_p99_ms": round(percentile(lags, 0.99), 1),
                "lag_samples": len(lags)}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

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
    __slots__ = ("samples", "horizon", "total", "fresh")

    def __init__(self, size: int = 1024, horizon: float = 60.0) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)   # (applied at, lag ms)
        self.horizon = horizon
        self.total = 0
        self.fresh = 0    # samples since the last report

    def record(self, now: float, origin_hlc: int) -> None:
        self.samples.append((now, max(0.0, now * 1000 - hlc_physical_ms(origin_hlc))))
        self.total += 1
        self.fresh += 1

    def summary(self, now: float) -> dict[str, float | int | None]:
        """{"lag_p50_ms", "lag_p99_ms", "lag_samples"} over the window (None when empty)."""
        lags = sorted(lag for at, lag in self.samples if at >= now - self.horizon)
        self.fresh = 0
        if not lags:
            return {"lag_p50_ms": None, "lag_p99_ms": None, "lag_samples": 0}
        return {"lag_p50_ms": round(_pct(lags, 0.50), 1), "lag_p99_ms": round(_pct(lags, 0.99), 1),
                "lag_samples": len(lags)}


def _pct(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ordered list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

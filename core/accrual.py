"""The phi accrual failure detector's arithmetic (Hayashibara et al., 2004).

Instead of a yes/no verdict, the detector outputs a suspicion level that grows with the
time since the last heartbeat, scaled by how regular heartbeats have been:

    phi(t) = -log10( P_later(t - t_last) )
    P_later(d) = 1 - F(d) = 0.5 * erfc( (d - mu) / (sigma * sqrt(2)) )

where F is the normal CDF fitted to the last `window` inter-arrival times (mean mu, standard
deviation sigma). phi = 1 means a 10 % chance that a heartbeat this late would still come,
phi = 8 a 1e-8 chance. `acceptable_pause` is added to mu (as Akka does) so a known pause
(GC, a paused VM) is not suspicious, and sigma is floored at `min_std_dev` so a very regular
history does not make phi explode at the first late heartbeat. This computes P_later exactly
with math.erfc; phi is +inf when P_later underflows (d more than ~37 sigma late).
"""
from __future__ import annotations

import math
from collections import deque

SQRT2 = math.sqrt(2.0)


def phi(elapsed: float, mean: float, std_dev: float) -> float:
    """Suspicion level after `elapsed` seconds of silence, given the arrival distribution."""
    p_later = 0.5 * math.erfc((elapsed - mean) / (std_dev * SQRT2))
    return -math.log10(p_later) if p_later > 0.0 else math.inf


class ArrivalWindow:
    """Sliding window of heartbeat inter-arrival times with O(1) mean and deviation."""

    __slots__ = ("_samples", "_sum", "_sq", "last")

    def __init__(self, size: int, first_interval: float, now: float) -> None:
        self._samples: deque[float] = deque(maxlen=max(2, size))
        self._sum = 0.0
        self._sq = 0.0
        # Bootstrap (as Akka's first-heartbeat estimate) with mean = the expected interval, but a
        # deviation of a whole interval: the first relayed heartbeats are irregular, and a
        # narrow prior made phi spike before any real sample was in. Real samples dilute it.
        for sample in (0.0, 2 * first_interval):
            self._add(sample)
        self.last = now

    def __len__(self) -> int:
        return len(self._samples)

    def arrival(self, now: float) -> None:
        """A heartbeat arrived at `now`."""
        interval = now - self.last
        self.last = now
        if interval > 0:
            self._add(interval)

    def _add(self, sample: float) -> None:
        if len(self._samples) == self._samples.maxlen:
            old = self._samples[0]
            self._sum -= old
            self._sq -= old * old
        self._samples.append(sample)
        self._sum += sample
        self._sq += sample * sample

    @property
    def mean(self) -> float:
        return self._sum / len(self._samples)

    @property
    def std_dev(self) -> float:
        m = self.mean
        return math.sqrt(max(0.0, self._sq / len(self._samples) - m * m))

    def phi(self, now: float, *, min_std_dev: float, acceptable_pause: float = 0.0) -> float:
        return phi(now - self.last, self.mean + acceptable_pause, max(self.std_dev, min_std_dev))

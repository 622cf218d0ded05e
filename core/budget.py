"""Per-node byte budget: a token bucket over payload bytes (`max_bytes_per_second`).

Sans-I/O like the rest of the kernel: time comes in as an argument. The bucket holds at most
one second of tokens, so a node that was quiet cannot then burst more than a second's worth.
A send may overdraw the bucket by one entry (an entry larger than what is left still goes,
so progress never stalls); the debt is paid back before anything else is sent.
"""
from __future__ import annotations


class ByteBudget:
    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: int) -> None:
        self.rate = rate           # bytes per second; 0 = unlimited
        self.tokens = float(rate)
        self.stamp: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def available(self, now: float) -> int:
        """Bytes that may be sent at `now` (a large number when unlimited)."""
        if self.rate <= 0:
            return 1 << 62
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now if self.stamp is None else max(self.stamp, now)
        return max(0, int(self.tokens))

    def spend(self, n: int) -> None:
        if self.rate > 0:
            self.tokens -= n

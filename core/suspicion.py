"""Lifeguard suspicion timeouts (memberlist's suspicion.go, made sans-I/O).

A suspicion starts long and shrinks as independent members confirm it. With `k` wanted
confirmations, `min_s` and `max_s` bounds and `n` confirmations so far, the timeout counted
from the start of the suspicion is

    timeout(n) = max(min_s, max_s - log(n + 1) / log(k + 1) * (max_s - min_s))

so it is `max_s` with no confirmation and reaches `min_s` at k. A lone suspicion (perhaps
raised by a slow node that is itself the problem) thus waits long enough for the accused to
refute it, while a suspicion many members share converges quickly. With k < 1 (too few
members to expect confirmations, or Lifeguard off) the timeout is simply `min_s`.

The suspector that raised the suspicion never counts as its own confirmation (our own
suspicion may be gossiped back to us). Time is an argument: nothing here reads a clock.
"""
from __future__ import annotations

import math


def suspicion_timeout(mult: int, n: int, interval_s: float) -> float:
    """The minimum suspicion timeout: mult * max(1, log10(n)) * probe interval (memberlist).

    The log10 factor is clamped at 1 (as memberlist does) so a cluster smaller than ten
    still waits `mult` probe intervals; unclamped, n = 1 would give a zero timeout.
    """
    return mult * max(1.0, math.log10(max(1, n))) * interval_s


def shrunk_timeout(n: int, k: int, min_s: float, max_s: float) -> float:
    """Total timeout after n confirmations out of k wanted (see module docstring)."""
    if k < 1:
        return min_s
    frac = math.log(n + 1) / math.log(k + 1)
    return max(min_s, max_s - frac * (max_s - min_s))


class Suspicion:
    """One member's suspicion: its start, the confirmations seen and the resulting deadline."""

    __slots__ = ("member_id", "inc", "k", "min_s", "max_s", "start", "confirmations", "n")

    def __init__(self, member_id: str, inc: int, suspector: str, *, k: int, min_s: float, max_s: float,
                 start: float) -> None:
        self.member_id = member_id
        self.inc = inc                      # the incarnation suspected; a refutation makes it stale
        self.k = max(0, k)
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.start = start
        self.confirmations = {suspector}    # who suspects it; the first one does not count
        self.n = 0

    @property
    def deadline(self) -> float:
        """When the member is to be declared dead, absent a refutation."""
        return self.start + shrunk_timeout(self.n, self.k, self.min_s, self.max_s)

    def confirm(self, by: str) -> bool:
        """Count an independent suspicion by `by`. True when it was new and moved the deadline
        (the caller then re-gossips it so others can count it too)."""
        if self.n >= self.k or not by or by in self.confirmations:
            return False
        self.confirmations.add(by)
        self.n += 1
        return True

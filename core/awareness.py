"""Lifeguard local health awareness (memberlist's awareness.go).

A node cannot tell a dead peer from its own slowness by a single missed ack. It keeps a
health score in [0, max_mult - 1]: failed probes without the nacks that healthy relays
would have sent, and having to refute a suspicion about itself, raise it; timely acks lower
it. The node then stretches its own probe interval and probe timeout by (score + 1), up to
max_mult times, so an overloaded node probes less and waits longer before accusing others.
"""
from __future__ import annotations


class Awareness:
    __slots__ = ("max_mult", "score")

    def __init__(self, max_mult: int = 8) -> None:
        self.max_mult = max(1, max_mult)
        self.score = 0

    def apply(self, delta: int) -> int:
        """Move the score by `delta`, clamped to [0, max_mult - 1]; returns the new score."""
        self.score = min(self.max_mult - 1, max(0, self.score + delta))
        return self.score

    def scale(self, seconds: float) -> float:
        """`seconds` stretched by the current health: seconds * (score + 1)."""
        return seconds * (self.score + 1)

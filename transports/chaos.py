"""Chaos wrapper for the ZeroMQ runtime: random loss and added delay on outgoing messages.

`tc netem` is not available on every kernel (CONFIG_NET_SCH_NETEM is off on ours), so faults
are injected in the application, just before a message reaches its socket. Configure with a
``[chaos]`` table or, overriding it, the GOSSIPMQ_CHAOS environment variable, e.g.
``GOSSIPMQ_CHAOS="loss=0.05,delay_ms=20,jitter_ms=10,seed=7"``. Loss applies once per message
sent, so a request/response pair is lost with about twice that probability, as on a network.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping

import msgspec

from gossipmq.core.config import ChaosSection
from gossipmq.core.effects import Send
from gossipmq.core.errors import ConfigError

ENV = "GOSSIPMQ_CHAOS"


def parse_chaos_env(text: str) -> ChaosSection:
    """"loss=0.05,delay_ms=20" -> ChaosSection; errors name the variable and the key."""
    values: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"expected key=value, got {part!r}", path=f"${ENV}", key=key)
        try:
            values[key] = float(raw) if key == "loss" else int(raw)
        except ValueError:
            raise ConfigError(f"not a number: {raw!r}", path=f"${ENV}", key=key) from None
    try:
        return msgspec.convert(values, ChaosSection)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc), path=f"${ENV}", table="chaos") from None


class Chaos:
    """Decides the fate of each outgoing message: dropped, delayed or sent at once."""

    def __init__(self, section: ChaosSection) -> None:
        self.loss = section.loss
        self.delay = section.delay_ms / 1000
        self.jitter = section.jitter_ms / 1000
        self.rng = random.Random(section.seed)
        self.stats: Counter[str] = Counter()

    @classmethod
    def from_config(cls, section: ChaosSection, env: Mapping[str, str]) -> Chaos | None:
        """The configured chaos (environment first), or None when it would do nothing."""
        if env.get(ENV, "").strip():
            section = parse_chaos_env(env[ENV])
        if section.loss == 0 and section.delay_ms == 0 and section.jitter_ms == 0:
            return None
        return cls(section)

    def describe(self) -> str:
        return f"loss {self.loss:.1%}, delay {self.delay * 1000:.0f} ms + up to {self.jitter * 1000:.0f} ms jitter"

    def send(self, send: Send, deliver: Callable[[Send], None], loop: asyncio.AbstractEventLoop) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.stats["chaos_dropped"] += 1
            return
        delay = self.delay + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)
        if delay <= 0:
            deliver(send)
            return
        self.stats["chaos_delayed"] += 1
        loop.call_later(delay, deliver, send)

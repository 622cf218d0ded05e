"""Bounded waiting with per-node diagnostics (no Docker imports)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    """What a wait predicate returns: overall verdict, what each node showed,
    and which nodes (if any) are the reason the verdict is False."""

    ok: bool
    observed: Mapping[str, Any] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)


class Abort(Exception):
    """Raised by a predicate when waiting longer cannot help (e.g. the node process exited);
    wait_until re-raises it at once instead of polling on."""


class WaitTimeout(AssertionError):
    """Raised by wait_until; the message names what was awaited and what each node showed."""

    def __init__(self, what: str, timeout: float, last: Check | None, error: BaseException | None):
        self.what, self.timeout, self.last, self.error = what, timeout, last, error
        parts = [f"timed out after {timeout:.1f}s waiting for {what}"]
        if last is not None:
            if last.bad:
                parts.append("not satisfied on: " + ", ".join(last.bad))
            if last.observed:
                parts.append(
                    "last observed: " + "; ".join(f"{k}={_short(v)}" for k, v in last.observed.items())
                )
        if error is not None:
            parts.append(f"last error: {type(error).__name__}: {_short(str(error), 400)}")
        super().__init__(" | ".join(parts))


def _short(v: Any, limit: int = 240) -> str:
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


Predicate = Callable[[], bool | Check | tuple]


def wait_until(predicate: Predicate, timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll `predicate` until it is satisfied or `timeout` seconds pass.

    `predicate` returns a bool, a Check, or a tuple (ok, observed[, bad]).
    Exceptions raised by the predicate count as "not yet" (kept for the error message).
    Returns the elapsed seconds; raises WaitTimeout naming `what` and the last
    observed value per node otherwise. The predicate is evaluated at least once,
    and once more right at the deadline.
    """
    start = time.monotonic()
    deadline = start + timeout
    last: Check | None = None
    error: BaseException | None = None
    while True:
        try:
            r = predicate()
            if isinstance(r, Check):
                last = r
            elif isinstance(r, tuple):
                last = Check(bool(r[0]), r[1] if len(r) > 1 else {}, list(r[2]) if len(r) > 2 else [])
            else:
                last = Check(bool(r))
            error = None
            if last.ok:
                return time.monotonic() - start
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - reported on timeout
            error = e
        now = time.monotonic()
        if now >= deadline:
            raise WaitTimeout(what, timeout, last, error)
        time.sleep(max(0.0, min(interval, deadline - now)))

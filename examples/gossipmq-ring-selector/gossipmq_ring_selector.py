"""A third-party peer selector: talk to the members that follow this node on a ring of ids.

Select it in TOML:

    [peer_selection]
    strategy = "ring"
    stride = 1          # 1 = immediate successors; 2 = every second member, ...
    random_share = 0.0  # fraction of picks taken uniformly at random instead

A ring gives every member the same, predictable neighbours; a small random share keeps
dissemination fast (pure rings need O(n) rounds).
"""
from __future__ import annotations

import bisect
from collections.abc import Collection
from typing import Annotated

import msgspec

from gossipmq.core import Context, PeerSelector, hookimpl


class RingOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    stride: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    random_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0


class RingSelector(PeerSelector):
    """Successors of this node on the ring of member ids (plus an optional random share)."""

    def __init__(self, options: RingOptions) -> None:
        self.stride = options.stride
        self.random_share = options.random_share

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        ring = sorted(m for m in ctx.members.reachable_ids() if m not in exclude)
        if not ring or k <= 0:
            return []
        start = bisect.bisect_right(ring, ctx.node_id)
        picks: list[str] = []
        for i in range(len(ring)):
            if len(picks) >= k:
                break
            if self.random_share and ctx.rng.random() < self.random_share:
                candidate = ctx.rng.choice(ring)
            else:
                candidate = ring[(start + i * self.stride) % len(ring)]
            if candidate not in picks:
                picks.append(candidate)
        return picks


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("peer_selection", "ring", RingSelector, RingOptions)

"""Peer selection strategies."""
from __future__ import annotations

from collections.abc import Collection

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import Context, NoOptions, PeerSelector


class Uniform(PeerSelector):
    """Uniformly random distinct reachable members (alive or suspect): the random phone call model."""

    def __init__(self, options: NoOptions) -> None:
        self.options = options

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        ids = ctx.members.reachable_ids()
        if k <= 0 or not ids:
            return []
        want = min(len(ids), k + len(exclude))
        picks = ctx.rng.sample(ids, want)
        if exclude:
            picks = [p for p in picks if p not in exclude]
        return picks[:k]


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("peer_selection", "uniform", Uniform, NoOptions)

"""Conflict resolvers."""
from __future__ import annotations

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import Entry
from gossipmq.core.strategies import ConflictResolver, NoOptions


class LastWriterWins(ConflictResolver):
    """Last writer wins by hybrid logical clock; equal timestamps are broken by origin id."""

    def __init__(self, options: NoOptions) -> None:
        self.options = options

    def resolve(self, local: Entry, remote: Entry) -> Entry:
        # HLC respects causality (a writer has observed every version it overwrites), so a
        # causally later write always has the larger timestamp; only concurrent writes are
        # ordered "by accident", and then deterministically on every node.
        return remote if (remote.hlc, remote.origin) > (local.hlc, local.origin) else local


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("conflict_resolution", "lww", LastWriterWins, NoOptions)

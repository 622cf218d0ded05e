"""Conflict resolvers: `lww` here; `multi_value` and `crdt` in their own modules."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import Entry
from gossipmq.core.resolution import (
    Op,
    Read,
    Resolver,
    WriteContext,
    newest,
    plain_build,
    plain_read,
)
from gossipmq.core.strategies import NoOptions


class LastWriterWins(Resolver):
    """Last writer wins by hybrid logical clock; equal timestamps are broken by origin id."""

    def __init__(self, options: NoOptions) -> None:
        super().__init__()
        self.options = options

    def resolve(self, local: Entry, remote: Entry) -> Entry:
        # HLC respects causality (a writer has observed every version it overwrites), so a
        # causally later write always has the larger timestamp; only concurrent writes are
        # ordered "by accident", and then deterministically on every node.
        return remote if (remote.hlc, remote.origin, remote.counter) > (local.hlc, local.origin, local.counter) \
            else local

    def covers(self, a: Entry, b: Entry) -> bool:
        """A total order: the store keeps exactly one version per key."""
        return (a.hlc, a.origin, a.counter) >= (b.hlc, b.origin, b.counter)

    def build(self, key: str, versions: Sequence[Entry], op: Op, wc: WriteContext) -> tuple[Any, bool, dict[str, int]]:
        return plain_build(versions, op, wc)

    def read(self, key: str, versions: Sequence[Entry]) -> Read:
        return plain_read(key, versions)

    def live(self, versions: Sequence[Entry]) -> bool:
        return bool(versions) and not newest(versions).deleted


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("conflict_resolution", "lww", LastWriterWins, NoOptions)

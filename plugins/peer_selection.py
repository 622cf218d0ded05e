"""Peer selection strategies: `uniform`, `round_robin` (shuffled), `tag_aware` and `nearest`
(latency-aware, from Vivaldi coordinates)."""
from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

import msgspec

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.membership import REACHABLE
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


class RoundRobin(PeerSelector):
    """Shuffled round-robin: every reachable member once per pass, reshuffled between passes.

    The worst case is bounded (a member waits at most two passes), the order unpredictable."""

    def __init__(self, options: NoOptions) -> None:
        self.options = options
        self.order: list[str] = []
        self.pos = 0

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        reachable = ctx.members.reachable_ids()
        if k <= 0 or not reachable:
            return []
        picks: list[str] = []
        taken = set(exclude)
        budget = len(self.order) - self.pos + len(reachable)  # at most the rest of this pass and one more
        while len(picks) < k and budget > 0:
            budget -= 1
            if self.pos >= len(self.order):
                self.order = list(reachable)
                ctx.rng.shuffle(self.order)
                self.pos = 0
            member_id = self.order[self.pos]
            self.pos += 1
            member = ctx.members.get(member_id)
            if member is None or member.status not in REACHABLE or member_id in taken:
                continue
            picks.append(member_id)
            taken.add(member_id)
        return picks


class TagAwareOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    match: list[str] = msgspec.field(default_factory=lambda: ["zone"])  # tag keys that must equal ours
    mode: Literal["prefer", "require"] = "prefer"                 # require: never pick a non-matching member
    remote_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1  # prefer: share of picks from the rest


class TagAware(PeerSelector):
    """Prefer or require members whose tags match ours (e.g. same zone), some picks remote.

    In prefer mode a `remote_share` of picks still goes elsewhere so zones stay connected."""

    def __init__(self, options: TagAwareOptions) -> None:
        self.options = options
        self.keys = tuple(options.match)

    def _local(self, ctx: Context, member_id: str) -> bool:
        member = ctx.members.get(member_id)
        if member is None:
            return False
        return all(member.tags.get(key) == ctx.tags.get(key) for key in self.keys if key in ctx.tags)

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        if k <= 0:
            return []
        local: list[str] = []
        remote: list[str] = []
        for member_id in ctx.members.reachable_ids():
            if member_id not in exclude:
                (local if self._local(ctx, member_id) else remote).append(member_id)
        if self.options.mode == "require":
            return ctx.rng.sample(local, min(k, len(local)))
        picks: list[str] = []
        for _ in range(min(k, len(local) + len(remote))):
            pool = remote if (ctx.rng.random() < self.options.remote_share and remote) or not local else local
            picks.append(pool.pop(ctx.rng.randrange(len(pool))))
        return picks


class NearestOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    random_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.2   # share of picks made uniformly
    refresh_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 5_000  # re-rank the members this often


class Nearest(PeerSelector):
    """Latency-aware: the members with the smallest estimated round trip (Vivaldi coordinates,
    which SWIM probes carry), a `random_share` of picks uniform so the cluster stays mixed.

    Members whose coordinate is unknown rank last (in random order), so with no estimates at
    all this is `uniform`. The ranking is recomputed at most every `refresh_ms` (or when the
    members change), O(n log n), not on every pick."""

    def __init__(self, options: NearestOptions) -> None:
        self.options = options
        self.ranked: list[str] = []
        self._at = -1e18
        self._version = -1

    def _rank(self, ctx: Context) -> list[str]:
        members = ctx.members
        if members.version != self._version or ctx.now - self._at >= self.options.refresh_ms / 1000:
            self._version, self._at = members.version, ctx.now
            known, unknown = [], []
            for member_id in members.reachable_ids():
                rtt = ctx.coordinates.rtt(member_id)
                if rtt is None:
                    unknown.append(member_id)
                else:
                    known.append((rtt, member_id))
            known.sort()
            ctx.rng.shuffle(unknown)
            self.ranked = [m for _, m in known] + unknown
        return self.ranked

    def select(self, ctx: Context, k: int, exclude: Collection[str] = ()) -> list[str]:
        ranked = self._rank(ctx)
        picks: list[str] = []
        taken = set(exclude)

        def usable(member_id: str) -> bool:
            member = ctx.members.get(member_id)
            return member_id not in taken and member is not None and member.status in REACHABLE

        n, i = len(ranked), 0
        while len(picks) < k:
            if n and ctx.rng.random() < self.options.random_share:
                pick = next((m for m in (ranked[ctx.rng.randrange(n)] for _ in range(8)) if usable(m)), None)
                if pick is not None:
                    picks.append(pick)
                    taken.add(pick)
                    continue
            while i < n and not usable(ranked[i]):
                i += 1
            if i >= n:
                break
            picks.append(ranked[i])
            taken.add(ranked[i])
        return picks


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("peer_selection", "uniform", Uniform, NoOptions)
    registry.register("peer_selection", "round_robin", RoundRobin, NoOptions)
    registry.register("peer_selection", "tag_aware", TagAware, TagAwareOptions)
    registry.register("peer_selection", "nearest", Nearest, NearestOptions)

"""round_robin and tag_aware peer selection against a real member table."""
from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from gossipmq.core.errors import ConfigError
from gossipmq.core.membership import MemberTable
from gossipmq.core.messages import MemberUpdate
from gossipmq.core.strategies import NoOptions
from gossipmq.plugins.peer_selection import RoundRobin, TagAware, TagAwareOptions

from .sim_cluster import sim_config


def _ctx(zones: dict[str, str], own_zone: str = "a", seed: int = 1) -> SimpleNamespace:
    table = MemberTable()
    for member_id, zone in zones.items():
        table.apply(MemberUpdate(member_id, f"tcp://{member_id}:1", 1, "alive", 0, {"zone": zone}), 0.0)
    return SimpleNamespace(members=table, rng=random.Random(seed), tags={"zone": own_zone}, node_id="me")


def test_round_robin_visits_everyone_once_per_pass_in_a_new_order() -> None:
    ctx = _ctx({f"m{i}": "a" for i in range(10)})
    rr = RoundRobin(NoOptions())
    passes = [[p for _ in range(5) for p in rr.select(ctx, 2)] for _ in range(3)]  # type: ignore[arg-type]
    for picks in passes:
        assert sorted(picks) == [f"m{i}" for i in range(10)]
    assert passes[0] != passes[1] or passes[1] != passes[2]


def test_round_robin_skips_excluded_and_departed_members() -> None:
    ctx = _ctx({f"m{i}": "a" for i in range(4)})
    rr = RoundRobin(NoOptions())
    ctx.members.apply(MemberUpdate("m2", "tcp://m2:1", 1, "dead"), 1.0)
    picks = [p for _ in range(6) for p in rr.select(ctx, 1, exclude={"m0"})]  # type: ignore[arg-type]
    assert set(picks) == {"m1", "m3"}
    assert rr.select(ctx, 10) and len(set(rr.select(ctx, 10))) == len(rr.select(ctx, 10))  # type: ignore[arg-type]


def test_tag_aware_prefers_the_own_zone_with_a_remote_share() -> None:
    zones = {f"a{i}": "a" for i in range(10)} | {f"b{i}": "b" for i in range(10)}
    ctx = _ctx(zones)
    selector = TagAware(TagAwareOptions(match=["zone"], mode="prefer", remote_share=0.2))
    counts = Counter(zones[p] for _ in range(2000) for p in selector.select(ctx, 1))  # type: ignore[arg-type]
    assert 0.15 < counts["b"] / 2000 < 0.25
    picks = selector.select(ctx, 15)  # type: ignore[arg-type]
    assert len(set(picks)) == 15, "distinct, spilling to the other zone when ours runs out"


def test_tag_aware_require_never_leaves_the_zone() -> None:
    ctx = _ctx({"a1": "a", "a2": "a", "b1": "b", "b2": "b"})
    selector = TagAware(TagAwareOptions(match=["zone"], mode="require"))
    assert all(p.startswith("a") for _ in range(100) for p in selector.select(ctx, 3))  # type: ignore[arg-type]
    assert len(selector.select(ctx, 3)) == 2  # type: ignore[arg-type]


def test_selectors_are_chosen_from_toml() -> None:
    cfg = sim_config({"strategy": "swim"}, peer_selection={"strategy": "tag_aware", "mode": "require"})
    assert cfg.strategies["peer_selection"].name == "tag_aware"
    with pytest.raises(ConfigError, match=r"\[peer_selection\] key 'mode'"):
        sim_config({"strategy": "swim"}, peer_selection={"strategy": "tag_aware", "mode": "sometimes"})

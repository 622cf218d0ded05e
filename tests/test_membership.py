from __future__ import annotations

import pytest

from gossipmq.core.membership import MemberTable, supersedes
from gossipmq.core.messages import MemberUpdate


def upd(status: str, inc: int, hb: int = 0, mid: str = "m") -> MemberUpdate:
    return MemberUpdate(mid, "tcp://h:1", inc, status, hb)  # type: ignore[arg-type]


@pytest.mark.parametrize("claim, state, expected", [
    (upd("alive", 2), (1, "dead", 0), True),        # higher incarnation always wins
    (upd("alive", 1), (1, "suspect", 0), False),    # only a refutation clears a suspicion
    (upd("suspect", 1), (1, "alive", 5), True),
    (upd("dead", 1), (1, "suspect", 0), True),
    (upd("left", 1), (1, "dead", 0), True),
    (upd("dead", 1), (1, "left", 0), False),
    (upd("suspect", 0), (1, "alive", 0), False),    # stale claim
    (upd("alive", 1, hb=3), (1, "alive", 2), True), # heartbeat refresh
    (upd("alive", 1, hb=2), (1, "alive", 2), False),
])
def test_swim_precedence(claim: MemberUpdate, state: tuple[int, str, int], expected: bool) -> None:
    assert supersedes(claim, *state) is expected


def test_reachable_index_follows_status_changes() -> None:
    table = MemberTable()
    for i in range(5):
        table.apply(upd("alive", 1, mid=f"m{i}"), now=0.0)
    assert sorted(table.reachable_ids()) == [f"m{i}" for i in range(5)]
    table.apply(upd("dead", 1, mid="m2"), now=1.0)
    table.apply(upd("left", 1, mid="m0"), now=1.0)
    assert sorted(table.reachable_ids()) == ["m1", "m3", "m4"]
    table.apply(upd("alive", 2, mid="m2"), now=2.0)
    assert sorted(table.reachable_ids()) == ["m1", "m2", "m3", "m4"]
    assert table.counts() == {"alive": 4, "suspect": 0, "dead": 0, "left": 1}


def test_reaped_member_is_not_revived_by_stale_claims() -> None:
    table = MemberTable()
    table.apply(upd("alive", 3), now=0.0)
    table.apply(upd("dead", 3), now=1.0)
    table.remove("m", now=2.0, remember_for=10.0)
    assert table.apply(upd("alive", 3), now=3.0) is None       # its old life
    change = table.apply(upd("alive", 4), now=3.0)              # a new life
    assert change is not None and change.member.status == "alive"


def test_strangers_reported_dead_are_not_added() -> None:
    table = MemberTable()
    assert table.apply(upd("dead", 1), now=0.0) is None
    assert len(table) == 0

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gossipmq.core.clock import HybridLogicalClock, hlc_physical_ms, vv_compare, vv_dominates, vv_merge


def test_hlc_is_monotonic_even_when_wall_clock_goes_back() -> None:
    clock = HybridLogicalClock()
    a = clock.tick(100.0)
    b = clock.tick(99.0)   # wall clock stepped back
    c = clock.tick(100.0)
    assert a < b < c
    assert hlc_physical_ms(a) == 100_000


def test_hlc_exceeds_observed_remote_timestamps() -> None:
    clock = HybridLogicalClock()
    remote = HybridLogicalClock().tick(500.0)
    clock.observe(remote, now=10.0)
    assert clock.tick(10.0) > remote


vvs = st.dictionaries(st.sampled_from("abcd"), st.integers(min_value=0, max_value=5), max_size=4)


@given(vvs, vvs)
def test_merge_dominates_both_and_compare_is_consistent(a: dict[str, int], b: dict[str, int]) -> None:
    m = vv_merge(a, b)
    assert vv_dominates(m, a) and vv_dominates(m, b)
    assert vv_merge(a, b) == vv_merge(b, a)
    order = vv_compare(a, b)
    assert order == {"after": "before", "before": "after"}.get(vv_compare(b, a), vv_compare(b, a))

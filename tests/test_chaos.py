"""A short chaos run per storage backend (tests/chaos.py): kills, pauses, partitions and 5 %
loss while a client writes every kind of key; no acknowledged write may be lost, and the
cluster converges once the faults stop. benchmarks/chaos_run.py runs the long version."""
from __future__ import annotations

import pytest

from tests.chaos import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_chaos_loses_no_acknowledged_write(backend: str) -> None:
    outcome = run(backend, seconds=45, seed=7, fault_every=(2, 5))
    print(outcome.as_dict())
    assert outcome.acknowledged > 50 and sum(outcome.faults.values()) >= 5, outcome.as_dict()
    assert not outcome.lost, outcome.lost[:10]
    assert outcome.converge_s is not None, "the cluster did not converge after the faults stopped"

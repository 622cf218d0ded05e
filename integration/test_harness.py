"""Docker-free tests of the harness itself: TOML writer, pairwise matrix, wait_until,
and the scenario runner against a tiny in-memory fake driver."""
from __future__ import annotations

import itertools
import tomllib

import pytest

from integration.config import node_config
from integration.matrix import OPTIONS, cell_id, covers_all_pairs, pairwise
from integration.scenarios import (
    EXTRA_SCENARIOS,
    SCENARIOS,
    ExpectValue,
    Put,
    Scenario,
    ScenarioFailure,
    ScenarioRunner,
    Start,
)
from integration.tomlw import dumps
from integration.waiting import Check, WaitTimeout, wait_until


def test_toml_roundtrip_node_config():
    cfg = node_config("n3", ["n1", "n2", "n3"], {"dissemination": "pull"})
    cfg["extra"] = {"s": 'quote " back \\ nl \n tab \t', "f": 0.25, "b": False, "l": [1, [2, 3]],
                    "nested": {"deep": {"x": 1}}, "key with space": "ok"}
    assert tomllib.loads(dumps(cfg)) == cfg
    assert cfg["node"]["seeds"] == ["tcp://n1:7946", "tcp://n2:7946"]
    assert cfg["dissemination"]["strategy"] == "pull"


@pytest.mark.parametrize("detector", ["heartbeat", "swim", "phi"])
def test_node_config_per_strategy_tables(detector):
    names = ["n1", "n2", "n3", "n4", "n5"]
    cfg = node_config("n1", names, {"dissemination": "push", "failure_detection": detector,
                                    "conflict_resolution": "lww", "security": "curve"})
    assert tomllib.loads(dumps(cfg)) == cfg
    assert cfg["node"]["seeds"] == ["n2@tcp://n2:7946"]          # curve: key looked up by member id
    assert cfg["security"]["strategy"] == "curve" and "{id}" in cfg["security"]["key"]
    fd = cfg["failure_detection"]
    assert fd["strategy"] == detector
    assert ("suspect_after_ms" in fd) == (detector == "heartbeat")  # each table only has its own keys
    if detector == "swim":
        assert fd["probe_timeout_ms"] < fd["probe_interval_ms"] <= 500
    plain = node_config("n3", names, {"security": "none"})
    assert plain["security"] == {"strategy": "none"} and plain["node"]["seeds"][0] == "tcp://n1:7946"


def test_toml_rejects_unsupported():
    with pytest.raises(TypeError):
        dumps({"a": {"b": None}})


def test_pairwise_today_and_tomorrow():
    today = pairwise(OPTIONS)
    assert covers_all_pairs(today, OPTIONS)
    # 3 x 3 is the floor (any two 3-valued concerns); the greedy generator needs one more
    assert [cell_id(c) for c in today] == [
        "push-heartbeat-lww-none", "push-swim-multi_value-curve", "push-phi-crdt-none",
        "pull-heartbeat-multi_value-none", "pull-swim-lww-curve", "pull-phi-lww-curve",
        "hybrid-heartbeat-crdt-curve", "hybrid-swim-lww-none", "hybrid-phi-multi_value-none",
        "pull-swim-crdt-none"]
    tomorrow = {"dissemination": ["push", "pull", "hybrid"], "failure_detection": ["heartbeat", "swim", "phi"],
                "conflict_resolution": ["lww", "multi_value", "crdt"], "security": ["none", "curve"]}
    cells = pairwise(tomorrow)
    assert covers_all_pairs(cells, tomorrow)
    assert 9 <= len(cells) <= 12 < len(list(itertools.product(*tomorrow.values())))
    assert pairwise(tomorrow) == cells  # deterministic


@pytest.mark.parametrize("shape", [(2, 2), (3, 1, 2), (4, 3, 2, 2, 2), (1, 1, 1), (5,)])
def test_pairwise_covers(shape):
    opts = {f"d{i}": [f"v{j}" for j in range(k)] for i, k in enumerate(shape)}
    assert covers_all_pairs(pairwise(opts), opts)


def test_wait_until_names_what_and_nodes():
    with pytest.raises(WaitTimeout) as ei:
        wait_until(lambda: Check(False, {"n1": "ok", "n2": "'stale'"}, ["n2"]), 0.3, "k=v on n1,n2", 0.05)
    msg = str(ei.value)
    assert "k=v on n1,n2" in msg and "not satisfied on: n2" in msg and "n2='stale'" in msg
    assert wait_until(lambda: True, 1, "x") < 0.5


class FakeDriver:
    """In-memory stand-in for DockerCluster: instant gossip within a partition group,
    LWW merge on heal. Enough to exercise the runner and the scenario definitions."""

    def __init__(self, lose_on: str | None = None):
        self.nodes: dict[str, str] = {}  # name -> state
        self.store: dict[str, dict[str, tuple[int, str]]] = {}
        self.groups: list[list[str]] | None = None
        self.clock = itertools.count(1)
        self.lose_on = lose_on  # a node that never receives gossip

    def _group(self, n):
        if self.groups is None:
            return [m for m, s in self.nodes.items() if s == "running"]
        return [m for g in self.groups if n in g for m in g if self.nodes[m] == "running"]

    def _spread(self):
        for n in self.running():
            if n == self.lose_on:
                continue
            for m in self._group(n):
                for k, v in self.store[m].items():
                    if k not in self.store[n] or self.store[n][k] < v:
                        self.store[n][k] = v

    def start(self, n):
        for i in range(1, n + 1):
            self.nodes[f"n{i}"] = "running"
            self.store[f"n{i}"] = {}
        return list(self.nodes)

    def running(self):
        return [n for n, s in self.nodes.items() if s == "running"]

    def each(self, names, fn):
        self._spread()
        return {n: fn(n) for n in names}

    def put(self, node, key, value):
        self.store[node][key] = (next(self.clock), value)

    def get(self, node, key):
        v = self.store[node].get(key)
        return None if v is None else v[1]

    def members(self, node):
        grp = self._group(node)
        return [{"id": m, "status": "alive" if m in grp else "left" if self.nodes[m] == "left" else "dead"}
                for m in self.nodes]

    def status(self, node):
        import hashlib  # noqa: PLC0415

        items = sorted((k, v[1]) for k, v in self.store[node].items())
        return {"node_id": node, "keys": len(items), "checksum": hashlib.sha1(repr(items).encode()).hexdigest(),
                "members": {"alive": len(self._group(node))}}

    def kill(self, node):
        self.nodes[node] = "killed"

    def stop(self, node):
        self.nodes[node] = "left"

    def pause(self, node):
        self.nodes[node] = "paused"

    def unpause(self, node):
        self.nodes[node] = "running"

    def loss(self, node, p):
        pass

    def restart(self, node):
        self.nodes[node] = "running"
        self.store[node] = {}

    def partition(self, groups):
        self.groups = groups

    def heal(self):
        self.groups = None

    def logs(self, node, tail=None):
        return f"fake log of {node}"


@pytest.mark.parametrize("scenario", SCENARIOS + EXTRA_SCENARIOS, ids=lambda s: s.name)
def test_scenarios_pass_on_fake_driver(scenario):
    res = ScenarioRunner(FakeDriver(), label="fake", log=lambda m: None, poll_interval=0.01).run(scenario)
    assert res.passed and all(s.ok for s in res.steps)


def test_failure_names_cell_node_and_observation():
    sc = Scenario("lossy", "n3 never hears anything", [Start(3), Put("n1", "k", "v"),
                                                        ExpectValue("all", "k", "v", within_s=0.3)])
    with pytest.raises(ScenarioFailure) as ei:
        ScenarioRunner(FakeDriver(lose_on="n3"), label="push-heartbeat-lww-none", log=lambda m: None,
                       poll_interval=0.05).run(sc)
    msg = str(ei.value)
    assert "push-heartbeat-lww-none" in msg and "lossy" in msg and "step 3/3" in msg
    assert "not satisfied on: n3" in msg and "n3=None" in msg and "fake log of n3" in msg
    assert ei.value.result.passed is False


def test_acked_writes_concurrent_key():
    r = ScenarioRunner(FakeDriver(), log=lambda m: None)
    r.acked = {"a": [("n1", "1"), ("n1", "2")], "b": [("n2", "x"), ("n4", "y")]}
    exp = r.expected_values()
    assert exp["a"] == ({"2"}, True) and exp["b"] == ({"x", "y"}, False)


def test_acked_writes_per_resolver():
    lww = ScenarioRunner(FakeDriver(), log=lambda m: None)
    mv = ScenarioRunner(FakeDriver(), log=lambda m: None, resolver="multi_value")
    both = {"from-left", "from-right"}
    assert lww.acceptable("from-left", both, False) and not lww.acceptable(["from-left", "from-right"], both, False)
    assert mv.acceptable(["from-right", "from-left"], both, False)       # both kept as siblings
    assert not mv.acceptable("from-left", both, False)                    # an acknowledged write lost
    assert mv.acceptable("v", {"v"}, True) and not mv.acceptable("w", {"v"}, True)


def test_crdt_steps_only_in_crdt_cells():
    from integration.scenarios import BY_NAME

    class Counting(FakeDriver):
        def incr(self, node, key, n):
            self.store[node][key] = (next(self.clock), n + (self.store[node].get(key, (0, 0))[1]))

        def sadd(self, node, key, member):
            raise AssertionError("not reached in an lww cell")

    res = ScenarioRunner(Counting(), log=lambda m: None, poll_interval=0.01).run(BY_NAME["partition_heal"])
    assert res.passed
    cfg = node_config("n1", ["n1", "n2"], {"conflict_resolution": "crdt"})
    assert tomllib.loads(dumps(cfg))["conflict_resolution"]["rules"][0]["type"] == "pncounter"


def test_hyparview_plumtree_cell_is_in_the_matrix_with_valid_configs():
    from gossipmq.core.config import parse_config
    from gossipmq.core.plugins import build_registry, make_plugin_manager
    from integration.matrix import EXTRA_CELLS, cells

    every = cells()
    assert every[:len(pairwise(OPTIONS))] == pairwise(OPTIONS) and every[-len(EXTRA_CELLS):] == EXTRA_CELLS
    cell = EXTRA_CELLS[0]
    assert cell_id(cell) == "plumtree-swim-lww-none-hyparview"
    names = [f"n{i}" for i in range(1, 6)]
    cfg = node_config("n3", names, cell)
    assert cfg["membership"]["overlay"] == "hyparview" and cfg["dissemination"]["strategy"] == "plumtree"
    assert "fanout" not in cfg["dissemination"] and cfg["anti_entropy"]["interval_ms"] > 0
    parsed = parse_config(cfg, build_registry(make_plugin_manager()), "n3.toml")
    assert parsed.membership.active_size == 4 and parsed.strategies["failure_detection"].name == "swim"
    # the pairwise cells keep their tables
    plain = node_config("n3", names, every[0])
    assert "membership" not in plain and plain["dissemination"]["fanout"] == 3

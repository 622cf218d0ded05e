"""Merkle anti-entropy repairs what rumors missed: a healed partition converges, deletes included."""
from gossipmq.transports.simulator import Partition

from .sim_helpers import converged, simulation

RUMOR = {"strategy": "rumor", "fanout": 2, "interval_ms": 500, "stop_after": 2}


def test_partition_divergence_is_repaired_after_heal_including_deletes():
    sim = simulation(RUMOR, anti_entropy={"interval_ms": 1000}, nodes=40, rounds=1, seed=7)
    net = sim.net
    for i in range(10):
        net.put("sim://n0", f"k{i}", i)
    assert net.wait_for(lambda: converged(sim), timeout=60.0)
    assert all(n.get("k9").value == 9 for n in sim.nodes.values())

    sim._partition(2)                      # n0..n19 | n20..n39
    net.delete("sim://n0", "k1")
    net.put("sim://n0", "k2", "side-a")
    net.put("sim://n39", "k3", "side-b")
    net.delete("sim://n39", "k4")
    net.put("sim://n39", "new-b", True)
    net.run_for(30.0)
    side_a = {sim.nodes[f"sim://n{i}"].store.checksum() for i in range(20)}
    side_b = {sim.nodes[f"sim://n{i}"].store.checksum() for i in range(20, 40)}
    assert len(side_a) == 1 and len(side_b) == 1 and side_a != side_b   # each side agrees, they differ
    assert all(len(n.dissemination.queue) == 0 for n in sim.nodes.values())  # rumors have cooled

    net.heal()
    assert net.wait_for(lambda: converged(sim), timeout=120.0)
    for node in sim.nodes.values():
        assert node.get("k1") is None and node.store.get("k1").deleted
        assert node.get("k4") is None and node.store.get("k4").deleted
        assert node.get("k2").value == "side-a" and node.get("k3").value == "side-b"
        assert node.get("new-b").value is True
    assert sum(n.stats["ae_repaired"] for n in sim.nodes.values()) > 0


def test_without_anti_entropy_the_divergence_stays():
    """The control experiment: same story, anti-entropy off, nothing heals it."""
    sim = simulation(RUMOR, nodes=20, rounds=1, seed=7)
    sim._partition(2)
    sim.net.put("sim://n0", "a", 1)
    sim.net.run_for(20.0)
    sim.net.heal()
    sim.net.run_for(60.0)
    assert not converged(sim)


def test_simulated_partition_heals_with_hybrid_digests_too():
    sim = simulation({"strategy": "hybrid", "fanout": 1}, nodes=200, rounds=25, seed=3,
                     partition=Partition(2, 0, 10))
    result = sim.run()
    assert result.rows[8]["informed"] <= 0.5 + 1e-9      # one side only while split
    assert result.rows[-1]["all_informed"]


def test_rumor_and_merkle_messages_survive_the_real_codec():
    """Every message goes through encode_envelope/decode_frames, as over ZeroMQ."""
    sim = simulation({"strategy": "rumor", "fanout": 2, "interval_ms": 500, "feedback": True},
                     anti_entropy={"interval_ms": 1000}, nodes=6, rounds=1, seed=2)
    sim.net.encode = True
    sim.net.put("sim://n0", "hot", 1)
    assert sim.net.wait_for(lambda: converged(sim), timeout=10.0)
    b = sim.nodes["sim://n5"]
    b.store.write("cold", "only-here", False, "n5", 1 << 40, b.replication.hlc.tick(sim.net.now))   # no rumor: only repair can move it
    assert sim.net.wait_for(lambda: converged(sim), timeout=60.0)
    nodes = list(sim.nodes.values())
    assert sum(n.stats["ae_repaired"] for n in nodes) > 0
    assert sum(n.stats["in.rumor"] for n in nodes) > 0 and sum(n.stats["in.rumor_ack"] for n in nodes) > 0
    assert not any(k.startswith("dropped") for n in nodes for k in n.stats)


def test_anti_entropy_config_errors_name_table_and_key():
    import pytest

    from gossipmq.core.config import parse_config
    from gossipmq.core.errors import ConfigError

    from .sim_helpers import REGISTRY
    for table, key in (({"intervall_ms": 5}, "intervall_ms"), ({"depth": 0}, "depth"),
                       ({"interval_ms": -1}, "interval_ms")):
        with pytest.raises(ConfigError) as info:
            parse_config({"anti_entropy": table}, REGISTRY, "ae.toml")
        assert "ae.toml" in str(info.value) and "[anti_entropy]" in str(info.value)
        assert f"key '{key}'" in str(info.value)

"""`plumtree` dissemination in the kernel: over the full mesh (stable random neighbours) and
over HyParView; a tree after the first broadcasts (about one payload copy per node), repair
after crashes, Merkle anti-entropy for what the tree missed, catch-up of a late joiner."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gossipmq.core.config import Config, parse_config
from gossipmq.core.effects import Send
from gossipmq.plugins.plumtree import Plumtree
from gossipmq.transports.memory import MemoryNetwork, checksums, make_nodes

from .helpers import registry
from .sim_cluster import SWIM_FAST

HV = {"overlay": "hyparview", "active_size": 5, "passive_size": 15, "shuffle_interval_ms": 1000,
      "neighbor_request_timeout_ms": 1500, "size_probe_interval_ms": 0}


def pt_config(overlay: str = "full", **tables: dict[str, Any]) -> Config:
    doc: dict[str, Any] = {"dissemination": {"strategy": "plumtree", "interval_ms": 100},
                           "failure_detection": dict(SWIM_FAST)}
    if overlay == "hyparview":
        doc["membership"] = dict(HV)
    for table, values in tables.items():
        doc.setdefault(table, {}).update(values)
    return parse_config(doc, registry())


class Copies:
    """Counts pt_gossip payloads per write (dot) and messages per type."""

    def __init__(self, net: MemoryNetwork) -> None:
        self.per_dot: Counter[tuple[str, int]] = Counter()
        self.types: Counter[str] = Counter()
        net.on_send = self.on_send

    def on_send(self, src: str, send: Send) -> None:
        env = send.envelope
        self.types[env.type] += 1
        if env.type == "pt_gossip":
            for entry in env.body.entries:
                self.per_dot[entry.dot] += 1


def cluster(n: int, cfg: Config, *, seed: int = 1, **net_kw: Any) -> tuple[MemoryNetwork, list[str]]:
    net = MemoryNetwork(seed=seed, encode=True, **net_kw)
    nodes = make_nodes(cfg, registry(), n, seed=seed)
    for node in nodes[2:]:
        node.cluster.seeds.append(nodes[1].address)
    addrs = [net.add(node).address for node in nodes]
    if cfg.membership.overlay == "full":
        assert net.wait_for(lambda: all(len(x.members.reachable_ids()) == n - 1 for x in net.nodes.values()), 20.0)
    else:
        assert net.wait_for(lambda: all(len(x.members.reachable_ids()) >= 2 for x in net.nodes.values()), 20.0)
    net.run_for(3.0)
    return net, addrs


def everyone_has(net: MemoryNetwork, key: str) -> bool:
    return all(node.get(key) is not None for node in net.nodes.values())


@pytest.mark.parametrize("overlay", ["full", "hyparview"])
def test_after_the_first_broadcasts_a_write_costs_about_one_copy_per_node(overlay: str) -> None:
    """Steady state: the writers' trees have formed (and, with the default latency optimisation,
    settled); each write then costs about one payload copy per node."""
    n = 40
    net, addrs = cluster(n, pt_config(overlay))
    copies = Copies(net)
    writers = [addrs[0], addrs[7], addrs[19], addrs[33]]
    for i in range(16):                                 # the first writes build the trees
        net.put(writers[i % 4], f"warm{i}", i)
        assert net.wait_for(lambda i=i: everyone_has(net, f"warm{i}"), 5.0)
        net.run_for(0.5)
    steady = []
    for i in range(12):
        before = sum(copies.per_dot.values())
        net.put(writers[i % 4], f"k{i}", i)
        assert net.wait_for(lambda i=i: everyone_has(net, f"k{i}"), 3.0)
        net.run_for(0.5)
        steady.append((sum(copies.per_dot.values()) - before) / (n - 1))
    mean = sum(steady) / len(steady)
    assert mean <= 1.05, f"{overlay}: {mean:.3f} payload copies per node per write (steady state)"
    assert len(set(checksums(net).values())) == 1
    assert copies.types["pt_prune"] > 0


def test_full_overlay_neighbours_are_a_stable_bounded_subset() -> None:
    n = 30
    net, addrs = cluster(n, pt_config("full", dissemination={"neighbors": 3}))
    strategies = [node.dissemination for node in net.nodes.values()]
    assert all(isinstance(s, Plumtree) for s in strategies)
    before = {node.node_id: list(node.dissemination.picks) for node in net.nodes.values()}
    for i in range(5):
        net.put(addrs[i], f"k{i}", i)
    net.run_for(3.0)
    assert {node.node_id: list(node.dissemination.picks) for node in net.nodes.values()} == before
    degrees = [len(node.dissemination.tree.neighbors) for node in net.nodes.values()]
    assert all(len(p) == 3 for p in before.values()) and max(degrees) <= 12
    # links are undirected: if a chose b, b knows a once a message crossed
    for node in net.nodes.values():
        for peer in node.dissemination.picks:
            other = net.nodes[f"mem://{peer}"].dissemination
            assert node.node_id in other.tree.neighbors


def test_hyparview_tree_repairs_after_crashes_and_anti_entropy_fills_the_rest() -> None:
    n = 40
    cfg = pt_config("hyparview", anti_entropy={"interval_ms": 1000})
    net, addrs = cluster(n, cfg, seed=4)
    net.put(addrs[0], "warm", 0)
    assert net.wait_for(lambda: everyone_has(net, "warm"), 5.0)
    for address in addrs[30:38]:       # 20 % crash at once
        net.crash(address)
    for i in range(6):
        net.put(addrs[i * 4], f"after{i}", i)
    assert net.wait_for(lambda: all(everyone_has(net, f"after{i}") for i in range(6)), 30.0)
    assert net.wait_for(lambda: len(set(checksums(net).values())) == 1, 10.0)
    grafts = sum(node.stats["plumtree_grafts_sent"] for node in net.nodes.values())
    assert grafts > 0, "lazy links and GRAFTs carried writes around the crashed nodes"


def test_lost_announcements_are_repaired_by_merkle_anti_entropy() -> None:
    cfg = pt_config("hyparview", anti_entropy={"interval_ms": 500})
    net, addrs = cluster(30, cfg, seed=6)
    net.loss = 0.2
    for i in range(10):
        net.put(addrs[i], f"lossy{i}", i)
    net.loss = 0.0
    assert net.wait_for(lambda: all(everyone_has(net, f"lossy{i}") for i in range(10))
                        and len(set(checksums(net).values())) == 1, 30.0)


def test_a_late_joiner_catches_up_through_the_digest_sync_with_its_first_neighbours() -> None:
    cfg = pt_config("hyparview")
    net, addrs = cluster(20, cfg, seed=8)
    for i in range(5):
        net.put(addrs[i], f"old{i}", i)
    net.run_for(2.0)
    late = make_nodes(cfg, registry(), 21, seed=99, incarnation=3)[20]
    late.cluster.seeds.append(addrs[1])
    net.add(late)
    assert net.wait_for(lambda: all(late.get(f"old{i}") is not None for i in range(5)), 5.0)
    net.put(addrs[10], "new", 1)
    assert net.wait_for(lambda: late.get("new") is not None, 5.0)


def test_plumtree_rejects_a_gossip_with_several_entries() -> None:
    net, addrs = cluster(4, pt_config("full"))
    node = net.nodes[addrs[0]]
    entry, _ = net.nodes[addrs[1]].put(net.now, "x", 1)
    from gossipmq.core.messages import Envelope
    from gossipmq.plugins.plumtree import PtGossip
    env = Envelope(type="pt_gossip", src="n1", addr=addrs[1], inc=net.nodes[addrs[1]].inc,
                   body=PtGossip([entry, entry], 0))
    node.handle_message(net.now, env)
    assert node.stats["dropped.plumtree_malformed"] == 1

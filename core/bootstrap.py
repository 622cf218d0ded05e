"""Assemble a Node from a Config: the one place where config, registry and kernel meet."""
from __future__ import annotations

import socket

from .config import Config
from .node import Node
from .registry import StrategyRegistry, create_strategies
from .signing import split_seed


def resolve_identity(config: Config) -> tuple[str, str, str]:
    """(node id, advertised address, control endpoint) with defaults filled in."""
    node = config.node
    advertise = node.advertise or node.bind.replace("0.0.0.0", socket.gethostname()).replace("*", socket.gethostname())
    port = advertise.rsplit(":", 1)[-1] if advertise.startswith("tcp://") else advertise.rsplit("/", 1)[-1]
    node_id = node.id or f"{socket.gethostname()}-{port}"
    control = node.control or f"ipc:///tmp/gossipmq-{node_id}.ctl"
    return node_id, advertise, control


def build_node(config: Config, registry: StrategyRegistry, *, incarnation: int,
               aligned_rounds: bool = False) -> Node:
    node_id, advertise, _ = resolve_identity(config)
    return Node(node_id, advertise, strategies=create_strategies(registry, config.strategies),
                gossip=config.gossip, seeds=[split_seed(s)[0] for s in config.node.seeds], tags=config.node.tags,
                incarnation=incarnation, rng_seed=config.gossip.rng_seed, aligned_rounds=aligned_rounds,
                anti_entropy=config.anti_entropy, limits=config.limits, storage=config.storage)

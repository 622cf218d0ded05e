"""Helpers for the dissemination tests: configs from dicts and small simulations."""
from __future__ import annotations

from typing import Any

from gossipmq.core.config import Config, parse_config
from gossipmq.transports.simulator import Scenario, Simulation

from .helpers import registry

REGISTRY = registry()


def config(dissemination: dict[str, Any], anti_entropy: dict[str, Any] | None = None,
           gossip: dict[str, Any] | None = None) -> Config:
    doc: dict[str, Any] = {"dissemination": dissemination, "failure_detection": {"strategy": "static"}}
    if anti_entropy:
        doc["anti_entropy"] = anti_entropy
    if gossip:
        doc["gossip"] = gossip
    return parse_config(doc, REGISTRY, "<test>")


def simulation(dissemination: dict[str, Any], **scenario: Any) -> Simulation:
    ae = scenario.pop("anti_entropy", None)
    gossip = scenario.pop("gossip", None)
    return Simulation(config(dissemination, ae, gossip), REGISTRY, Scenario(**scenario))


def converged(sim: Simulation) -> bool:
    return len({node.store.checksum() for node in sim.nodes.values()}) == 1

"""Node configuration dicts for integration clusters (no Docker imports).

`node_config()` returns the dict that tomlw.dumps() turns into the node's
/etc/gossipmq/node.toml, following the gossipctl config contract.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

PORT = 7946
CONTROL = "ipc:///tmp/gossipmq.ctl"
CONFIG_PATH = "/etc/gossipmq/node.toml"

# Tight but robust on 2 cores: 200 ms rounds, suspect after 1 s, dead after 3 s.
TIMING: dict[str, int] = {
    "interval_ms": 200,
    "suspect_after_ms": 1000,
    "dead_after_ms": 3000,
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def seeds_for(name: str, all_names: Sequence[str], n_seeds: int = 2, curve: bool = False) -> list[str]:
    """The first `n_seeds` nodes are seeds; a node never lists itself.

    With curve security a seed is written `n1@tcp://n1:7946`: the client must know the
    server's key before it connects, and `n1@` makes gossipmq look it up in the trust store."""
    seeds = [s for s in all_names[:n_seeds] if s != name]
    if not seeds:  # single-node cluster or n_seeds == 1 and we are the seed
        seeds = [s for s in all_names if s != name][:1]
    return [f"{s}@tcp://{s}:{PORT}" if curve else f"tcp://{s}:{PORT}" for s in seeds]


# Per-strategy option tables, tight for 5 containers on 2 cores (each node also pays for the
# harness's `gossipctl` polls). Detection stays well inside scenarios.DETECT (20 s):
#  heartbeat: dead 3 s after the last heartbeat                          -> measured 3.4-7.4 s
#  swim: a probe every 400 ms, ack wait 200 ms; min suspicion = 3 * 0.4 = 1.2 s (n <= 10), a lone
#        (unconfirmed) suspicion 4x that; Lifeguard may stretch a starved prober's interval up to 4x
#  phi: heartbeats every 200 ms, 20-sample window, suspect at phi > 8 (~0.7 s mean + 500 ms pause
#       allowance + 5.6 sigma), dead 1.5 s later if phi stays above the threshold
FAILURE_DETECTION: dict[str, dict[str, Any]] = {
    "heartbeat": {},  # filled from TIMING
    "swim": {"probe_interval_ms": 400, "probe_timeout_ms": 200, "indirect_checks": 2,
             "suspicion_mult": 3, "suspicion_max_mult": 4, "awareness_max_mult": 4, "lifeguard": True},
    "phi": {"interval_ms": 200, "window": 20, "threshold": 8.0, "min_std_dev_ms": 100,
            "acceptable_pause_ms": 500, "dead_after_ms": 1500},
}

# Membership housekeeping shared by every detector: quick join retries, and healed partitions
# re-merge through dead-member probes every second (seeds re-contacted every 5 s as a backstop).
GOSSIP: dict[str, int] = {
    "join_retry_ms": 200,
    "join_retry_max_ms": 2000,
    "dead_probe_ms": 1000,
    "seed_rejoin_ms": 5000,
}


# Conflict resolution. crdt cells keep `put` working (scenarios write plain values) with lwwreg
# as the default type, and route counter and set keys (partition_heal's Incr/SAdd steps) to
# pncounter and orset by key prefix (docs/conflict-resolution.md section 2).
CONFLICT_RESOLUTION: dict[str, dict[str, Any]] = {
    "lww": {},
    "multi_value": {"max_siblings": 16},
    "crdt": {"type": "lwwreg", "rules": [
        {"prefix": "count/", "resolver": "crdt", "type": "pncounter"},
        {"prefix": "set/", "resolver": "crdt", "type": "orset"},
    ]},
}


# Dissemination tables that differ from the round-based default (fanout, interval_ms).
DISSEMINATION: dict[str, dict[str, Any]] = {
    "plumtree": {"interval_ms": 100, "timeout1_ms": 300},
}

# [membership] per overlay. hyparview with 5 nodes: an active view of 4 makes every node a
# neighbour of every other (what the scenarios' "everyone sees everyone alive" checks); shuffles
# every second top up views quickly after a kill, a partition or a restart.
MEMBERSHIP: dict[str, dict[str, Any]] = {
    "full": {},
    "hyparview": {"overlay": "hyparview", "active_size": 4, "passive_size": 8, "shuffle_interval_ms": 1000,
                  "neighbor_request_timeout_ms": 1500, "size_probe_interval_ms": 5000},
}


def security_table(strategy: str) -> dict[str, Any]:
    if strategy == "curve":
        from integration.keys import SECRET_PATH, TRUST_DIR  # noqa: PLC0415

        return {"strategy": "curve", "key": SECRET_PATH, "trust_dir": TRUST_DIR, "signing": "ed25519",
                "reload_ms": 1000, "handshake_ms": 3000}
    return {"strategy": strategy}


def failure_detection_table(strategy: str, t: Mapping[str, int]) -> dict[str, Any]:
    if strategy == "heartbeat":
        return {"strategy": "heartbeat", "interval_ms": t["interval_ms"],
                "suspect_after_ms": t["suspect_after_ms"], "dead_after_ms": t["dead_after_ms"]}
    return {"strategy": strategy, **FAILURE_DETECTION.get(strategy, {})}


def node_config(
    name: str,
    all_names: Sequence[str],
    options: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    timing: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Config for node `name` of a cluster whose nodes are `all_names`.

    `options` is a matrix cell: {"dissemination": "push", "failure_detection":
    "heartbeat", "conflict_resolution": "lww", "security": "none", ...}; each entry
    becomes `[<dimension>] strategy = <value>`.
    """
    t = {**TIMING, **(timing or {})}
    opts = dict(options or {})
    security = opts.pop("security", "none")
    detector = opts.pop("failure_detection", "heartbeat")
    resolver = opts.pop("conflict_resolution", "lww")
    overlay = opts.pop("overlay", "full")
    dissemination = opts.pop("dissemination", "hybrid")
    cfg: dict[str, Any] = {
        "node": {
            "id": name,
            "bind": f"tcp://0.0.0.0:{PORT}",
            "advertise": f"tcp://{name}:{PORT}",
            "seeds": seeds_for(name, all_names, curve=security == "curve"),
            "control": CONTROL,
        },
        "gossip": dict(GOSSIP),
        "peer_selection": {"strategy": "uniform"},
        "dissemination": ({"strategy": dissemination, **DISSEMINATION[dissemination]} if dissemination in DISSEMINATION
                          else {"strategy": dissemination, "fanout": 3, "interval_ms": t["interval_ms"]}),
        "failure_detection": failure_detection_table(detector, t),
        "conflict_resolution": {"strategy": resolver, **CONFLICT_RESOLUTION.get(resolver, {})},
        "security": security_table(security),
    }
    if MEMBERSHIP.get(overlay):
        cfg["membership"] = dict(MEMBERSHIP[overlay])
    if dissemination == "plumtree":
        cfg["anti_entropy"] = {"interval_ms": 1000}   # Merkle repair of what the tree missed
    for dim, value in opts.items():
        cfg.setdefault(dim, {})["strategy"] = value
    return deep_merge(cfg, overrides or {})


def write_compose_configs(directory, n: int = 5, options: Mapping[str, str] | None = None) -> list:
    """Write n1..nN TOML files for integration/compose.yaml (see README)."""
    from pathlib import Path  # noqa: PLC0415

    from integration.tomlw import dumps  # noqa: PLC0415

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    names = [f"n{i}" for i in range(1, n + 1)]
    paths = []
    for name in names:
        p = d / f"{name}.toml"
        p.write_text(f"# generated by `python -m integration.config`; node {name} of integration/compose.yaml\n"
                     + dumps(node_config(name, names, options)))
        paths.append(p)
    return paths


if __name__ == "__main__":
    import sys
    from pathlib import Path

    out = Path(__file__).resolve().parent / "compose"
    strategy = sys.argv[1] if len(sys.argv) > 1 else "hybrid"
    for p in write_compose_configs(out, 5, {"dissemination": strategy}):
        print(p)

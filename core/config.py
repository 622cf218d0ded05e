"""TOML configuration: one table per concern plus [node] and [gossip].

Every error names the file, the table and the key: unknown key, wrong type, unknown
strategy (listing the installed names), unreadable file. Strategy tables hold
``strategy = "name"`` plus that strategy's own options, validated by its options Struct.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError
from .registry import StrategyRegistry
from .strategies import CONCERNS

DEFAULT_STRATEGIES = {
    "peer_selection": "uniform",
    "dissemination": "hybrid",
    "failure_detection": "heartbeat",
    "conflict_resolution": "lww",
    "security": "none",
}


class NodeSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str = ""                      # member id; default: "<hostname>-<port>"
    bind: str = "tcp://127.0.0.1:7946"
    advertise: str = ""               # address peers dial; default: bind (0.0.0.0 -> hostname)
    seeds: list[str] = []             # tcp://host:port of any existing members
    control: str = ""                 # local control endpoint; default ipc:///tmp/gossipmq-<id>.ctl
    tags: dict[str, str] = {}         # member metadata gossiped with membership


class GossipSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_message_bytes: int = 256 * 1024   # byte budget of one delta / piggyback
    max_frame_bytes: int = 1024 * 1024    # larger frames are dropped (and the inbox refuses them)
    members_per_message: int = 16         # membership updates piggybacked per message
    retransmit_mult: int = 4              # each broadcast is sent retransmit_mult*ceil(log10(n+1)) times
    reap_after_ms: int = 30_000           # dead/left members are forgotten after this
    join_retry_ms: int = 500              # first join retry; doubles up to join_retry_max_ms
    join_retry_max_ms: int = 5_000
    join_timeout_ms: int = 60_000         # give up (log) after this; keep running alone
    seed_rejoin_ms: int = 10_000          # re-contact seeds not in our view (heals partitions)
    leave_fanout: int = 32                # members told directly on graceful leave
    rng_seed: int | None = None           # fix the node's RNG (reproducible runs)


@dataclass(frozen=True)
class StrategyChoice:
    concern: str
    name: str
    options: msgspec.Struct


@dataclass(frozen=True)
class Config:
    path: str
    node: NodeSection
    gossip: GossipSection
    strategies: dict[str, StrategyChoice]
    raw: dict[str, Any] = field(default_factory=dict)

    def with_node(self, **changes: Any) -> Config:
        """Copy with [node] fields replaced (CLI flags override the file)."""
        values = {k: v for k, v in changes.items() if v not in (None, [], "")}
        return replace(self, node=msgspec.structs.replace(self.node, **values))


_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r"at `\$\.?([^`]*)`")


def _explain(exc: msgspec.ValidationError, path: str, table: str, allowed: list[str]) -> ConfigError:
    text = str(exc)
    unknown = _UNKNOWN.search(text)
    if unknown:
        return ConfigError(f"unknown key (valid keys: {', '.join(sorted(allowed))})",
                           path=path, table=table, key=unknown.group(1))
    at = _AT.search(text)
    key = at.group(1).split(".")[0].split("[")[0] if at and at.group(1) else None
    message = text.split(" - at ")[0]
    return ConfigError(message, path=path, table=table, key=key)


def _section(doc: dict[str, Any], table: str, cls: type[msgspec.Struct], path: str) -> Any:
    data = doc.get(table, {})
    if not isinstance(data, dict):
        raise ConfigError("must be a table", path=path, table=table)
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise _explain(exc, path, table, list(cls.__struct_fields__)) from None


def parse_config(doc: dict[str, Any], registry: StrategyRegistry, path: str = "<config>") -> Config:
    known = {"node", "gossip", *CONCERNS}
    for table in doc:
        if table not in known:
            raise ConfigError(f"unknown table (valid tables: {', '.join(sorted(known))})", path=path, table=table)
    node = _section(doc, "node", NodeSection, path)
    gossip = _section(doc, "gossip", GossipSection, path)
    strategies: dict[str, StrategyChoice] = {}
    for concern in CONCERNS:
        table = dict(doc.get(concern, {}))
        name = table.pop("strategy", DEFAULT_STRATEGIES[concern])
        if not isinstance(name, str):
            raise ConfigError("must be a string", path=path, table=concern, key="strategy")
        spec = registry.get(concern, name)
        if spec is None:
            installed = ", ".join(registry.names(concern)) or "none"
            raise ConfigError(f"unknown {concern} strategy {name!r} (installed: {installed})",
                              path=path, table=concern, key="strategy")
        try:
            options = msgspec.convert(table, spec.options)
        except msgspec.ValidationError as exc:
            err = _explain(exc, path, concern, ["strategy", *spec.options.__struct_fields__])
            raise ConfigError(f"{err.args[0].split(': ', 1)[1]} (strategy {name!r})",
                              path=path, table=concern, key=err.key) from None
        strategies[concern] = StrategyChoice(concern, name, options)
    return Config(path=path, node=node, gossip=gossip, strategies=strategies, raw=doc)


def load_config(path: str | Path, registry: StrategyRegistry) -> Config:
    path = str(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    return parse_config(doc, registry, path)

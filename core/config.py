"""TOML configuration: one table per concern plus [node] and [gossip].

Every error names the file, the table and the key: unknown key, wrong type, unknown
strategy (listing the installed names), unreadable file. Strategy tables hold
``strategy = "name"`` plus that strategy's own options, validated by its options Struct.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from .addresses import endpoint_problem, parse_seed
from .errors import ConfigError
from .limits import LimitsSection
from .membership import MAX_TAGS_BYTES, tags_size
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
    cluster: str = ""                 # cluster name: nodes of different clusters never talk (carried in every message)
    bind: str = "tcp://127.0.0.1:7946"
    advertise: str = ""               # address peers dial; default: bind (0.0.0.0 -> hostname)
    seeds: list[str] = []             # tcp://host:port of any existing members
    control: str = ""                 # local control endpoint; default ipc:///tmp/gossipmq-<id>.ctl
    control_token: str = ""           # required by a tcp control endpoint on a non-loopback address
    tags: dict[str, str] = {}         # member metadata gossiped with membership


DAY_MS = 86_400_000
DEFAULT_MESSAGE_BYTES = 256 * 1024
#: durations in milliseconds, at least 10 ms / 100 ms / 1 s, at most a day; OffOrMs: 0 (off) too
Ms10 = Annotated[int, msgspec.Meta(ge=10, le=DAY_MS)]
Ms100 = Annotated[int, msgspec.Meta(ge=100, le=DAY_MS)]
Ms1000 = Annotated[int, msgspec.Meta(ge=1000, le=DAY_MS)]
OffOrMs = Annotated[int, msgspec.Meta(ge=0, le=DAY_MS)]


class GossipSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_message_bytes: Annotated[int, msgspec.Meta(ge=4096, le=64 << 20)] = DEFAULT_MESSAGE_BYTES  # budget of a delta
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=8192, le=256 << 20)] = 1024 * 1024  # larger frames are dropped
    members_per_message: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 16  # membership updates piggybacked per message
    retransmit_mult: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4   # broadcasts go retransmit_mult*ceil(log10(n+1))x
    reap_after_ms: Ms1000 = 30_000              # dead/left members are forgotten after this
    join_retry_ms: Ms10 = 500                    # first join retry; doubles up to join_retry_max_ms
    join_retry_max_ms: Ms10 = 5_000
    join_timeout_ms: Ms100 = 60_000            # give up (log) after this; keep running alone
    seed_rejoin_ms: Ms100 = 10_000              # re-contact seeds not in our view (heals partitions)
    leave_fanout: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 32   # members told directly on graceful leave
    rng_seed: int | None = None                 # fix the node's RNG (reproducible runs)
    dead_probe_ms: OffOrMs = 2_000           # contact one recently dead member this often; 0 = off
    max_bytes_per_second: Annotated[int, msgspec.Meta(ge=0, le=1 << 40)] = 0  # payload bytes/s sent; 0 = no cap
    convergence_check_ms: OffOrMs = 500  # check that every member reports our checksum this often; 0 = off

    def __post_init__(self) -> None:
        if self.join_retry_max_ms < self.join_retry_ms:
            raise ValueError("join_retry_max_ms must not be below join_retry_ms - at `$.join_retry_max_ms`")
        if self.max_message_bytes > self.max_frame_bytes:
            if self.max_message_bytes != DEFAULT_MESSAGE_BYTES:
                raise ValueError("max_message_bytes must fit in max_frame_bytes - at `$.max_message_bytes`")
            self.max_message_bytes = self.max_frame_bytes // 2   # the default follows a smaller frame
        for name, lo in (("dead_probe_ms", 100), ("convergence_check_ms", 50)):
            value = getattr(self, name)
            if 0 < value < lo:
                raise ValueError(f"{name} is 0 (off) or at least {lo} ms - at `$.{name}`")


class AntiEntropySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[anti_entropy]: periodic Merkle repair (core/anti_entropy.py)."""

    interval_ms: Annotated[int, msgspec.Meta(ge=0)] = 0            # one Merkle exchange per interval; 0 = off
    branching: Annotated[int, msgspec.Meta(ge=2, le=256)] = 16     # children per tree node (all nodes must agree)
    depth: Annotated[int, msgspec.Meta(ge=1, le=8)] = 4            # levels: branching ** depth leaf buckets


class MembershipSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[membership]: which overlay a node keeps (core/overlay.py). `full`: every member in the
    member table (the default). `hyparview`: a small symmetric active view (the member table:
    what failure detectors probe and strategies pick from) and a larger passive view in
    reserve; the other keys tune it (core/hyparview.py, docs/scale-algorithms.md)."""

    overlay: Literal["full", "hyparview"] = "full"
    active_size: Annotated[int, msgspec.Meta(ge=1, le=64)] = 5            # log10(n) + 1 (paper, n = 10,000)
    passive_size: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 30        # 6 x active (paper)
    arwl: Annotated[int, msgspec.Meta(ge=0, le=64)] = 6                   # join walk length
    prwl: Annotated[int, msgspec.Meta(ge=0, le=64)] = 3                   # walk hop that files the joiner as passive
    shuffle_ka: Annotated[int, msgspec.Meta(ge=0, le=64)] = 3             # active ids per shuffle
    shuffle_kp: Annotated[int, msgspec.Meta(ge=0, le=256)] = 4            # passive ids per shuffle
    shuffle_ttl: Annotated[int, msgspec.Meta(ge=0, le=64)] = 6            # shuffle walk length
    shuffle_interval_ms: Annotated[int, msgspec.Meta(ge=10, le=3_600_000)] = 10_000   # shuffle and top-up period
    escalate_at: Annotated[int, msgspec.Meta(ge=-1, le=64)] = 2           # this few neighbours: ask high priority
    swap_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1000.0)] = 4.0    # swaps join all-full parts; 0 = off
    swap_memory: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 30       # shuffle ticks an id counts as seen
    neighbor_request_timeout_ms: Annotated[int, msgspec.Meta(ge=10)] = 5_000   # unanswered = failed node
    size_probe_interval_ms: Annotated[int, msgspec.Meta(ge=0)] = 60_000   # size-estimate tour tick; 0 = off

    def __post_init__(self) -> None:
        if self.prwl > self.arwl:
            raise ValueError("prwl must not exceed arwl - at `$.prwl`")


class HooksSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[hooks]: Serf-style event handler scripts, event -> command (transports/event_scripts.py).

    A command is a shell string or an argv list; "" means no handler. `any` runs for every event.
    """

    joined: str | list[str] = ""
    suspected: str | list[str] = ""
    alive_again: str | list[str] = ""
    rejoined: str | list[str] = ""
    failed: str | list[str] = ""
    left: str | list[str] = ""
    reaped: str | list[str] = ""
    any: str | list[str] = ""
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4            # scripts running at once
    queue: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000          # waiting runs beyond that are dropped
    timeout_ms: Annotated[int, msgspec.Meta(ge=100)] = 30_000             # a script running longer is killed


class ChaosSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[chaos]: fault injection on outgoing messages of the ZeroMQ runtime (transports/chaos.py).
    The GOSSIPMQ_CHAOS environment variable ("loss=0.05,delay_ms=20") overrides it."""

    loss: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0             # drop probability per message
    delay_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0             # added one-way delay
    jitter_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0            # plus uniform 0..jitter_ms
    seed: int | None = None                                                  # fix the fault RNG


class StorageSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[storage]: where the replica lives (transports/storage.py) and tombstone GC (core/gc.py)."""

    backend: Literal["memory", "sqlite"] = "memory"   # sqlite: survives restarts (kill -9 included)
    path: str = ""                                    # sqlite file, "{id}" = node id; default ./gossipmq-{id}.db
    synchronous: Literal["normal", "full"] = "normal"  # normal: survives a process crash; full: also power loss
    flush_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 50   # commit replicated changes this often
    tombstone_ttl_ms: Annotated[int, msgspec.Meta(ge=1)] = 86_400_000   # purge tombstones after this anyway
    gc_interval_ms: Annotated[int, msgspec.Meta(ge=0)] = 1_000          # tombstone check period; 0 = no GC


class MetricsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """[metrics]: a Prometheus endpoint (transports/metrics.py; needs the `metrics` extra)."""

    listen: str = ""   # HOST:PORT serving /metrics, e.g. "127.0.0.1:9946" or "[::1]:9946"; "" = off


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) -> (host, port); ValueError saying what is wrong.
    The host is required: "0.0.0.0" or "[::]" expose the endpoint beyond this machine on purpose."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9946 or [::1]:9946)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} of {text!r} must be a number from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            raise ValueError(f"{host!r} in {text!r} is not an IPv6 address") from None
    if ":" in host:
        raise ValueError(f"an IPv6 host must be in brackets: [{host}]:{port}")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
        raise ValueError(f"{host!r} in {text!r} is not a host name or IP address")
    return host, int(port)


@dataclass(frozen=True)
class ResolverRule:
    """One [[conflict_resolution.rules]] entry: keys starting with `prefix` use resolver `name`."""

    prefix: str
    name: str
    options: msgspec.Struct


@dataclass(frozen=True)
class StrategyChoice:
    concern: str
    name: str
    options: msgspec.Struct
    rules: tuple[ResolverRule, ...] = ()   # conflict_resolution only: per key prefix


class Identity(NamedTuple):
    """Who a node is and where it is reached, with every default filled in."""

    node_id: str
    advertise: str     # the address peers dial
    control: str       # the local control endpoint


@dataclass(frozen=True)
class Config:
    path: str
    node: NodeSection
    gossip: GossipSection
    strategies: dict[str, StrategyChoice]
    raw: dict[str, Any] = field(default_factory=dict)
    anti_entropy: AntiEntropySection = field(default_factory=AntiEntropySection)
    hooks: HooksSection = field(default_factory=HooksSection)
    chaos: ChaosSection = field(default_factory=ChaosSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    storage: StorageSection = field(default_factory=StorageSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    membership: MembershipSection = field(default_factory=MembershipSection)

    def with_metrics(self, listen: str | None) -> Config:
        """Copy with [metrics] listen replaced (``--metrics`` / GOSSIPMQ_METRICS); None keeps the file's.
        ConfigError when it is not HOST:PORT."""
        if listen is None:
            return self
        if listen:
            try:
                parse_listen(listen)
            except ValueError as exc:
                raise ConfigError(f"metrics listen address: {exc}") from None
        return replace(self, metrics=MetricsSection(listen=listen))

    def with_node(self, **changes: Any) -> Config:
        """Copy with [node] fields replaced (CLI flags, environment, Agent overrides win over the
        file); validated like the file: ConfigError names the key."""
        values = {k: v for k, v in changes.items() if v not in (None, [], "")}
        if not values:
            return self
        try:
            node = msgspec.convert({**msgspec.structs.asdict(self.node), **values}, NodeSection)
        except msgspec.ValidationError as exc:
            raise _explain(exc, self.path, "node", list(NodeSection.__struct_fields__)) from None
        check_node(node, self.limits, self.path, given=set(values))
        return replace(self, node=node)

    def identity(self) -> Identity:
        """Node id (default ``<hostname>-<port>``), advertised address (default: the bind
        address, a wildcard host replaced by the hostname) and control endpoint (default
        ``ipc:///tmp/gossipmq-<id>.ctl``)."""
        node = self.node
        host = socket.gethostname()
        advertise = node.advertise or node.bind.replace("0.0.0.0", host).replace("*", host)
        port = advertise.rsplit(":", 1)[-1] if advertise.startswith("tcp://") else advertise.rsplit("/", 1)[-1]
        node_id = node.id or f"{host}-{port}"
        return Identity(node_id, advertise, node.control or f"ipc:///tmp/gossipmq-{node_id}.ctl")


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


ID_MAX_BYTES_SLACK = 16   # a dot origin is "<id>/<life>": the id leaves room for the life tag


def check_node(node: NodeSection, limits: LimitsSection, path: str, given: set[str] | None = None) -> None:
    """Refuse a [node] table peers could not use: bad ids, endpoints, seeds. `given`: keys set by
    a flag or the environment (named so in the message)."""
    def problem(key: str, message: str) -> ConfigError:
        where = " (given on the command line or in the environment)" if given and key in given else ""
        return ConfigError(message + where, path=path, table="node", key=key)

    for key, text in (("id", node.id), ("cluster", node.cluster)):
        if text and (any(c.isspace() or not c.isprintable() for c in text)):
            raise problem(key, f"{text!r} may not contain spaces or control characters")
    if node.id and len(node.id.encode()) > limits.max_id_bytes - ID_MAX_BYTES_SLACK:
        raise problem("id", f"{len(node.id.encode())} bytes; at most {limits.max_id_bytes - ID_MAX_BYTES_SLACK} "
                            f"([limits] max_id_bytes less room for the life tag); peers would drop this node")
    if len(node.cluster.encode()) > 128:
        raise problem("cluster", "at most 128 bytes")
    for key, text, bind in (("bind", node.bind, True), ("advertise", node.advertise, False),
                            ("control", node.control, True)):
        if text:
            issue = endpoint_problem(text, bind=bind)
            if issue is not None:
                raise problem(key, issue)
            if key != "control" and len(text.encode()) > limits.max_id_bytes:
                raise problem(key, f"longer than [limits] max_id_bytes ({limits.max_id_bytes}); peers would drop it")
    for i, text in enumerate(node.seeds):
        spec = parse_seed(text)
        issue = endpoint_problem(spec.address)
        if issue is not None:
            raise problem("seeds", f"seed {i + 1}: {issue}")
    if tags_size(node.tags) > MAX_TAGS_BYTES:
        raise problem("tags", f"tags take {tags_size(node.tags)} bytes; at most {MAX_TAGS_BYTES} (keys plus values)")


def parse_config(doc: dict[str, Any], registry: StrategyRegistry, path: str = "<config>") -> Config:
    known = {"node", "gossip", "anti_entropy", "hooks", "chaos", "limits", "storage", "metrics", "membership",
             *CONCERNS}
    for table in doc:
        if table not in known:
            raise ConfigError(f"unknown table (valid tables: {', '.join(sorted(known))})", path=path, table=table)
    node = _section(doc, "node", NodeSection, path)
    gossip = _section(doc, "gossip", GossipSection, path)
    strategies: dict[str, StrategyChoice] = {}
    for concern in CONCERNS:
        section = dict(doc.get(concern, {}))
        name = section.pop("strategy", DEFAULT_STRATEGIES[concern])
        raw_rules = section.pop("rules", []) if concern == "conflict_resolution" else []
        if not isinstance(name, str):
            raise ConfigError("must be a string", path=path, table=concern, key="strategy")
        spec = registry.get(concern, name)
        if spec is None:
            installed = ", ".join(registry.names(concern)) or "none"
            raise ConfigError(f"unknown {concern} strategy {name!r} (installed: {installed})",
                              path=path, table=concern, key="strategy")
        try:
            options = msgspec.convert(section, spec.options)
        except msgspec.ValidationError as exc:
            err = _explain(exc, path, concern, ["strategy", *spec.options.__struct_fields__])
            raise ConfigError(f"{err.args[0].split(': ', 1)[1]} (strategy {name!r})",
                              path=path, table=concern, key=err.key) from None
        rules = _parse_rules(raw_rules, registry, path) if raw_rules else ()
        strategies[concern] = StrategyChoice(concern, name, options, rules)
    anti_entropy = _section(doc, "anti_entropy", AntiEntropySection, path)
    hooks = _section(doc, "hooks", HooksSection, path)
    chaos = _section(doc, "chaos", ChaosSection, path)
    limits = _section(doc, "limits", LimitsSection, path)
    check_node(node, limits, path)
    storage = _section(doc, "storage", StorageSection, path)
    metrics = _section(doc, "metrics", MetricsSection, path)
    membership = _section(doc, "membership", MembershipSection, path)
    if metrics.listen:
        try:
            parse_listen(metrics.listen)
        except ValueError as exc:
            raise ConfigError(str(exc), path=path, table="metrics", key="listen") from None
    return Config(path=path, node=node, gossip=gossip, strategies=strategies, raw=doc, anti_entropy=anti_entropy,
                  hooks=hooks, chaos=chaos, limits=limits, storage=storage, metrics=metrics, membership=membership)


def _parse_rules(raw: Any, registry: StrategyRegistry, path: str) -> tuple[ResolverRule, ...]:
    """[[conflict_resolution.rules]]: prefix -> resolver (+ its options). Unknown resolvers,
    bad options and overlapping prefixes (one a prefix of another) are errors."""
    if not isinstance(raw, list):
        raise ConfigError("must be an array of tables ([[conflict_resolution.rules]])",
                          path=path, table="conflict_resolution", key="rules")
    rules: list[ResolverRule] = []
    for i, item in enumerate(raw):
        table = f"conflict_resolution.rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a table", path=path, table=table)
        item = dict(item)
        prefix, name = item.pop("prefix", None), item.pop("resolver", None)
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError("must be a non-empty string (the key prefix this rule covers)",
                              path=path, table=table, key="prefix")
        if not isinstance(name, str):
            raise ConfigError("must be a string naming a conflict resolver", path=path, table=table, key="resolver")
        spec = registry.get("conflict_resolution", name)
        if spec is None:
            installed = ", ".join(registry.names("conflict_resolution")) or "none"
            raise ConfigError(f"unknown resolver {name!r} (installed: {installed})",
                              path=path, table=table, key="resolver")
        try:
            options = msgspec.convert(item, spec.options)
        except msgspec.ValidationError as exc:
            err = _explain(exc, path, table, ["prefix", "resolver", *spec.options.__struct_fields__])
            raise ConfigError(f"{err.args[0].split(': ', 1)[1]} (resolver {name!r})",
                              path=path, table=table, key=err.key) from None
        for j, other in enumerate(rules):
            if prefix.startswith(other.prefix) or other.prefix.startswith(prefix):
                raise ConfigError(f"prefix {prefix!r} overlaps rule {j} (prefix {other.prefix!r}); "
                                  f"every key must match at most one rule", path=path, table=table, key="prefix")
        rules.append(ResolverRule(prefix, name, options))
    return tuple(rules)


ENV_PREFIX = "GOSSIPMQ_"
ENV_SEPARATOR = "__"


def env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``GOSSIPMQ_<TABLE>__<KEY>=value`` variables as {table: {key: value}}: any TOML key can be set
    from the environment (containers). The value is read as a TOML value (``7``, ``true``,
    ``"x"``, ``[1, 2]``); anything that is not one is taken as a string."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        table, _, key = name[len(ENV_PREFIX):].partition(ENV_SEPARATOR)
        if not table or not key:
            continue
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.setdefault(table.lower(), {})[key.lower()] = value
    return out


def merge_overrides(doc: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`doc` with {table: {key: value}} laid over it (a new dict; `doc` is not changed)."""
    merged = {table: dict(values) if isinstance(values, dict) else values for table, values in doc.items()}
    for table, values in overrides.items():
        current = merged.setdefault(table, {})
        if isinstance(current, dict):
            current.update(values)
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError naming the file when it cannot be read or parsed."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None


def load_config(path: str | Path, registry: StrategyRegistry, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; with `env`, ``GOSSIPMQ_<TABLE>__<KEY>`` variables override it."""
    doc = read_toml(path)
    if env is not None:
        doc = merge_overrides(doc, env_overrides(env))
    return parse_config(doc, registry, str(path))

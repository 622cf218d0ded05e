"""How a key's versions are written, compared, kept and read: the resolver protocol.

The store keeps, per key, the set of versions that no other version *covers*, and a read
resolves that set. A resolver answers four questions for the keys it owns:

``covers(a, b)``  does version `a` already contain everything `b` says (so `b` can go)? It must
                  be a preorder (reflexive, transitive) that every node evaluates alike; the
                  store breaks ties between versions covering each other by dot. Then the kept
                  set depends only on which versions a node has seen, never on arrival order.
``build(...)``    the (value, deleted, vv) of a new local version, from the versions this node
                  holds and an operation (put/delete/incr/sadd/srem, maybe with a read context).
``read(...)``     the resolved view: value(s), causal context, origin of each.
``live(...)``     whether the key currently holds something (tombstones are GC candidates).

`lww` keeps one version (a total order by HLC); `multi_value` and `crdt` keep concurrent
states and join them on read (core/crdt.py). A third-party resolver that only implements
``resolve(local, remote) -> winner`` still works: `ConflictResolver` derives `covers` from it.

`PrefixRouter` picks the resolver of a key from ``[[conflict_resolution.rules]]``.
"""
from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from .clock import vv_merge
from .messages import Entry, origin_node
from .strategies import Strategy

VERBS = ("put", "delete", "incr", "sadd", "srem")


@dataclass(frozen=True)
class Op:
    """One client operation on a key."""

    verb: str                                # put | delete | incr | sadd | srem
    value: Any = None                        # the value / increment / member
    context: Mapping[str, int] | None = None  # causal context from a read (multi-value, mvreg)
    field: str | None = None                 # OR-Map field


@dataclass(frozen=True)
class WriteContext:
    """What the kernel knows when it builds a local version."""

    origin: str
    counter: int
    hlc: int
    slot: str                                         # counter slot of this node life ("id/life")
    compact: Callable[[dict[str, int]], dict[str, int]] = lambda vv: vv  # drops stable departed origins


@dataclass
class Read:
    """The resolved view of one key."""

    key: str
    kind: str
    value: Any                 # the value a client sees (a list of siblings for multi_value)
    deleted: bool
    context: dict[str, int]    # pass back (as a token) with put/delete to overwrite exactly this
    siblings: list[dict[str, Any]] = field(default_factory=list)   # value, origin, counter, hlc
    versions: list[Entry] = field(default_factory=list)            # what the store keeps

    @property
    def token(self) -> str:
        """The causal context as a token: pass it back with a write to replace exactly what was read."""
        return encode_context(self.context)

    def as_dict(self, verbose: bool = False) -> dict[str, Any]:
        """The JSON a client sees. `origin` is the writer's member id; with `verbose`, each
        version also names the replica life that wrote it (`replica`, the dot's origin)."""
        out: dict[str, Any] = {"key": self.key, "value": self.value, "deleted": self.deleted,
                               "context": self.token}
        if self.siblings and "hlc" in self.siblings[0]:   # registers: who wrote the (newest) value
            out["siblings"] = len(self.siblings)
            first = self.siblings[0]
            out.update(origin=origin_node(first["origin"]), counter=first["counter"], hlc=first["hlc"])
        if verbose:
            out["kind"] = self.kind or "lww"
            out["causal_context"] = dict(sorted(self.context.items()))
            out["values"] = [{**s, "origin": origin_node(s["origin"])} if "origin" in s else s for s in self.siblings]
            out["versions"] = [{"origin": origin_node(e.origin), "replica": e.origin, "counter": e.counter,
                                "hlc": e.hlc, "deleted": e.deleted, "vv": dict(sorted(e.vv.items()))}
                               for e in self.versions]
        return out


def encode_context(vv: Mapping[str, int]) -> str:
    """Opaque, copy-pasteable token of a causal context (base64url of canonical JSON)."""
    raw = orjson.dumps(dict(sorted(vv.items())))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_context(token: str) -> dict[str, int]:
    """Inverse of encode_context; ValueError with a clear message on anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        vv = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("not a causal context token (copy it from `gossipctl get KEY --json`)") from None
    if not isinstance(vv, dict) or any(not isinstance(k, str) or type(c) is not int for k, c in vv.items()):
        raise ValueError("not a causal context token (copy it from `gossipctl get KEY --json`)")
    return vv


def newest(versions: Sequence[Entry]) -> Entry:
    if len(versions) == 1:
        return versions[0]
    return max(versions, key=lambda e: (e.hlc, e.origin, e.counter))


class ConflictResolver(Strategy):
    """The conflict-resolution protocol (the one every resolver implements; see module docstring).

    Override `covers` - or only ``resolve(local, remote) -> winner`` for a total order, from
    which `covers` is derived - and, for richer types, `build`, `read`, `live`, `kind` and
    `verbs`. Must be deterministic: every node must keep and read the same whatever order
    versions arrive in."""

    concern: ClassVar[str] = "conflict_resolution"
    kind: str = ""                 # Entry.kind this resolver writes and accepts ("" = plain values)
    verbs: frozenset[str] = frozenset({"put", "delete"})

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def resolve(self, local: Entry, remote: Entry) -> Entry:
        """The winner of two versions; derived from `covers` unless a subclass defines it."""
        return remote if self.covers(remote, local) and not self.covers(local, remote) else local

    def covers(self, a: Entry, b: Entry) -> bool:
        """Does version `a` already contain everything `b` says (so `b` can go)?"""
        if type(self).resolve is ConflictResolver.resolve:
            raise NotImplementedError(f"{type(self).__name__} must define covers() or resolve()")
        return a.dot == b.dot or self.resolve(b, a) is a

    def build(self, key: str, versions: Sequence[Entry], op: Op, wc: WriteContext) -> tuple[Any, bool, dict[str, int]]:
        """(value, deleted, vv) of a new local version of `key` from the versions held here."""
        return plain_build(versions, op, wc)

    def read(self, key: str, versions: Sequence[Entry]) -> Read:
        return plain_read(key, versions, self)

    def live(self, versions: Sequence[Entry]) -> bool:
        """Does the key hold something (not only tombstones / emptied states)?"""
        return bool(versions) and not self.read(versions[0].key, versions).deleted

    def validate(self, entry: Entry) -> str | None:
        """None when a received entry is one this resolver can merge, else why not."""
        if entry.kind != self.kind:
            return f"key {entry.key!r} is {self.kind or 'lww'} here but the entry is {entry.kind or 'lww'}"
        return None

    def check_op(self, op: Op) -> None:
        if op.verb not in self.verbs:
            raise ValueError(f"{op.verb} is not possible on a {self.kind or 'lww'} key "
                             f"(possible: {', '.join(sorted(self.verbs))})")


#: the name this protocol had before 0.2 (third-party resolvers subclass it)
Resolver = ConflictResolver


def plain_build(versions: Sequence[Entry], op: Op, wc: WriteContext) -> tuple[Any, bool, dict[str, int]]:
    """A single-value write: the new version's history extends every version held here."""
    vv: dict[str, int] = {}
    for e in versions:
        vv = vv_merge(vv, e.vv)
    vv = wc.compact(vv)
    vv[wc.origin] = wc.counter
    deleted = op.verb == "delete"
    return (None if deleted else op.value), deleted, vv


def plain_read(key: str, versions: Sequence[Entry], resolver: ConflictResolver | None = None) -> Read:
    """The read of a key keeping one winner: the newest by HLC, or `resolver`'s winner."""
    winner = versions[0]
    for e in versions[1:]:
        winner = resolver.resolve(winner, e) if resolver is not None else max(
            winner, e, key=lambda x: (x.hlc, x.origin, x.counter))
    context: dict[str, int] = {}
    for e in versions:
        context = vv_merge(context, e.vv)
    sibling = {"value": winner.value, "origin": winner.origin, "counter": winner.counter, "hlc": winner.hlc}
    return Read(key, winner.kind, winner.value, winner.deleted, context, [sibling], list(versions))


class PrefixRouter(ConflictResolver):
    """Routes each key to the resolver of the rule whose prefix it starts with, else to the
    default. Rules never overlap (config.py refuses that), so at most one prefix matches. It is
    what the node holds as its conflict-resolution strategy; the store asks it `for_key`."""

    def __init__(self, default: ConflictResolver, rules: Sequence[tuple[str, ConflictResolver]] = ()) -> None:
        super().__init__()
        self.default = default
        self.rules = sorted(rules, key=lambda pr: -len(pr[0]))

    def for_key(self, key: str) -> ConflictResolver:
        for prefix, resolver in self.rules:
            if key.startswith(prefix):
                return resolver
        return self.default

    def covers(self, a: Entry, b: Entry) -> bool:
        return self.for_key(a.key).covers(a, b)

    def resolvers(self) -> list[ConflictResolver]:
        return [self.default, *(r for _, r in self.rules)]

    def totals(self) -> dict[str, int]:
        """The counters of every resolver, summed (`gossipctl status` shows them)."""
        total: Counter[str] = Counter()
        for r in self.resolvers():
            total.update(r.stats)
        return dict(total)


def router_of(strategy: ConflictResolver) -> PrefixRouter:
    return strategy if isinstance(strategy, PrefixRouter) else PrefixRouter(strategy)


def context_of(context: Mapping[str, int] | str | None) -> dict[str, int] | None:
    """A causal context given as a token (CLI, control channel) or a mapping (library API)."""
    if context is None:
        return None
    return decode_context(context) if isinstance(context, str) else dict(context)

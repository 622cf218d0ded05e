"""The `crdt` resolver: keys hold a state-based CRDT (counter, set, register, map).

A version is the writer's whole state of the key after its operation, with the causal context
in ``Entry.vv``. The store keeps versions no other version contains (``covers`` = the lattice
order); a read joins them. Choose the type per key prefix::

    [[conflict_resolution.rules]]
    prefix = "visits/"
    resolver = "crdt"
    type = "pncounter"     # gcounter | pncounter | orset | lwwreg | mvreg | ormap
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from gossipmq.core.crdt import (
    TYPES,
    CrdtType,
    MVRegister,
    ORMap,
    StateError,
    check_cc,
    vv_join,
    vv_leq,
)
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import Entry
from gossipmq.core.resolution import Op, Read, Resolver, WriteContext

CrdtName = Literal["gcounter", "pncounter", "orset", "lwwreg", "mvreg", "ormap"]


class CrdtOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: CrdtName                                                       # which CRDT the keys hold
    max_siblings: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16       # mvreg / map registers


class StateResolver(Resolver):
    """Shared machinery of resolvers whose versions are lattice states (crdt, multi_value)."""

    def __init__(self, crdt: CrdtType, kind: str) -> None:
        super().__init__()
        self.crdt = crdt
        self.kind = kind
        self.verbs = crdt.verbs

    # -- state <-> entry -----------------------------------------------------------------------
    def state(self, entry: Entry) -> Any:
        return entry.value

    def encode(self, state: Any) -> Any:
        return state

    def joined(self, versions: Sequence[Entry]) -> tuple[Any, dict[str, int]]:
        state = self.crdt.empty()
        cc: dict[str, int] = {}
        for e in versions:
            state = self.crdt.join(state, self.state(e), cc, e.vv)
            cc = vv_join(cc, e.vv)
        return state, cc

    # -- the resolver protocol -------------------------------------------------------------------
    def covers(self, a: Entry, b: Entry) -> bool:
        if a.kind != b.kind:
            return False
        if self.crdt.causal and not vv_leq(b.vv, a.vv):
            return False
        return self.crdt.leq(self.state(b), self.state(a), b.vv, a.vv)

    def build(self, key: str, versions: Sequence[Entry], op: Op, wc: WriteContext) -> tuple[Any, bool, dict[str, int]]:
        self.check_op(op)
        state, cc = self.joined(versions)
        dot = (wc.origin, wc.counter)
        kill = dict(op.context) if op.context is not None else None
        try:
            if isinstance(self.crdt, ORMap):
                new = self.crdt.apply(state, op.verb, op.value, dot, wc.hlc, wc.slot, kill, field=op.field)
            else:
                if op.field is not None:
                    raise ValueError(f"--field only applies to ormap keys, {key!r} is {self.kind}")
                new = self.crdt.apply(state, op.verb, op.value, dot, wc.hlc, wc.slot, kill)
        finally:
            self._count_overflow()
        cc = vv_join(cc, kill or {})
        cc[wc.origin] = max(cc.get(wc.origin, 0), wc.counter)
        return self.encode(new), not self.crdt.live(new), cc

    def read(self, key: str, versions: Sequence[Entry]) -> Read:
        state, cc = self.joined(versions)
        if isinstance(self.crdt, MVRegister):
            state = {"s": self.crdt.bound(state["s"])}
            self._count_overflow()
        return Read(key, self.kind, self.crdt.value(state), not self.crdt.live(state), cc,
                    self.detail(state), list(versions))

    def live(self, versions: Sequence[Entry]) -> bool:
        return bool(versions) and self.crdt.live(self.joined(versions)[0])

    def validate(self, entry: Entry) -> str | None:
        reason = super().validate(entry)
        if reason is not None:
            return reason
        try:
            check_cc(entry.vv)
            self.crdt.check(self.state(entry))
        except StateError as exc:
            return f"{self.kind} state of {entry.key!r}: {exc}"
        return None

    # -- internals ---------------------------------------------------------------------------------
    def detail(self, state: Any) -> list[dict[str, Any]]:
        """Who contributed what, for `get --verbose`."""
        name = self.crdt.name
        if name == "mvreg":
            return [{"value": s[3], "origin": s[0], "counter": s[1], "hlc": s[2]}
                    for s in sorted(state["s"], key=lambda s: (s[2], s[0], s[1]), reverse=True)]
        if name == "lwwreg" and state["s"] is not None:
            s = state["s"]
            return [{"value": s[3], "origin": s[0], "counter": s[1], "hlc": s[2]}]
        if name == "orset":
            return [{"value": m, "origin": d[0], "counter": d[1]} for m, dots in state["e"].items() for d in dots]
        if name in ("gcounter", "pncounter"):
            out = [{"slot": slot, "incr": n, "reset_at": state["rp"].get(slot, 0)} for slot, n in state["p"].items()]
            out += [{"slot": slot, "decr": n, "reset_at": state["rn"].get(slot, 0)}
                    for slot, n in state.get("n", {}).items()]
            return out
        return []

    def _count_overflow(self) -> None:
        registers = [self.crdt] if isinstance(self.crdt, MVRegister) else \
            [t for t in getattr(self.crdt, "types", {}).values() if isinstance(t, MVRegister)]
        for reg in registers:
            if reg.overflow:
                self.stats["siblings_overflow"] += reg.overflow
                reg.overflow = 0


class Crdt(StateResolver):
    """State-based CRDTs: gcounter, pncounter, orset (add-wins), lwwreg, mvreg and ormap."""

    def __init__(self, options: CrdtOptions) -> None:
        cls = TYPES[options.type]
        crdt = cls(options.max_siblings) if cls in (MVRegister, ORMap) else cls()
        super().__init__(crdt, f"crdt:{options.type}")
        self.options = options


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("conflict_resolution", "crdt", Crdt, CrdtOptions)

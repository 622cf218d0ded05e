"""State lattices for multi-value and CRDT keys: pure data, no I/O, no clocks.

Every version of a multi-value or CRDT key is the *whole state* of that key as its writer saw
it just after the write: the join of every version the writer held, plus the operation.
States travel as JSON (``Entry.value``) beside a causal context ``cc`` (``Entry.vv``): the
dots the state has seen, as a version vector. The store keeps, per key, only versions that no
other version contains (``leq``), and a read joins what is left. Because ``join`` is
commutative, associative and idempotent and ``leq`` is its order, every replica that holds the
same versions reads the same value, whatever order they arrived in.

Causal types (multi-value/MV-Register, OR-Set, OR-Map) are *optimized* observed-remove types
(Bieniusa et al. 2012; Almeida et al. "Delta state replicated data types", 2018): a dot that is
in a context but not in the dot store was removed, so removed OR-Set tags and overwritten
siblings leave no tombstone behind - they are summarised by the version vector. The vector is
exact because a state always carries the writer's whole view of the key (see
docs/conflict-resolution.md, "Why contexts are exact").

Counters keep one slot per writer *life* (``node/life``): a node restarted without durable
storage starts a new slot instead of overwriting its old one with a smaller total.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VV = dict[str, int]
Dot = tuple[str, int]
Sibling = list[Any]     # [origin, counter, hlc, value]

MAX_NAME = 1024         # longest OR-Set member / OR-Map field name accepted from a peer


class StateError(ValueError):
    """A state received from a peer does not have the shape of its type."""


# ---- version vectors and dot sets ------------------------------------------------------------
def covered(cc: Mapping[str, int], dot: Dot) -> bool:
    return cc.get(dot[0], 0) >= dot[1]


def vv_join(a: Mapping[str, int], b: Mapping[str, int]) -> VV:
    out = dict(a)
    for origin, counter in b.items():
        if counter > out.get(origin, 0):
            out[origin] = counter
    return out


def vv_leq(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return all(b.get(origin, 0) >= counter for origin, counter in a.items())


def join_dotset(a: Iterable[Dot], b: Iterable[Dot], cca: Mapping[str, int], ccb: Mapping[str, int]) -> list[Dot]:
    """Observed-remove join: keep a dot both hold, or one holds and the other has not seen."""
    sa, sb = set(a), set(b)
    out = (sa & sb) | {d for d in sa - sb if not covered(ccb, d)} | {d for d in sb - sa if not covered(cca, d)}
    return sorted(out)


def join_siblings(a: list[Sibling], b: list[Sibling], cca: Mapping[str, int],
                  ccb: Mapping[str, int]) -> list[Sibling]:
    """MV-Register join: the same rule over (dot -> value) pairs."""
    da = {(s[0], s[1]): s for s in a}
    db = {(s[0], s[1]): s for s in b}
    out = [s for d, s in da.items() if d in db or not covered(ccb, d)]
    out += [s for d, s in db.items() if d not in da and not covered(cca, d)]
    out.sort(key=lambda s: (s[0], s[1]))
    return out


def lww_key(s: Sibling) -> tuple[int, str, int]:
    """Order used to settle sibling overflow and to show one value of a register: HLC, then dot."""
    return (s[2], s[0], s[1])


# ---- validation helpers ------------------------------------------------------------------------
def _dot(raw: Any) -> Dot:
    if (not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], str)
            or type(raw[1]) is not int or raw[1] < 1):
        raise StateError(f"bad dot {raw!r}")
    return (raw[0], raw[1])


def _counts(raw: Any, what: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise StateError(f"{what} must be an object")
    for slot, n in raw.items():   # no zero counts: join drops nothing, so x ⊔ x == x
        if type(n) is not int or n < 1:
            raise StateError(f"{what}[{slot!r}] must be a positive integer")
    return raw


def check_siblings(raw: Any) -> list[Sibling]:
    if not isinstance(raw, list):
        raise StateError("siblings must be a list")
    seen = set()
    for s in raw:
        if (not isinstance(s, list) or len(s) != 4 or not isinstance(s[0], str) or type(s[1]) is not int
                or type(s[2]) is not int):
            raise StateError(f"bad sibling {s!r:.80}")
        if (s[0], s[1]) in seen:
            raise StateError("duplicate sibling dot")
        seen.add((s[0], s[1]))
    return raw


def check_cc(raw: Any) -> None:
    if not isinstance(raw, Mapping) or any(type(c) is not int or c < 1 for c in raw.values()):
        raise StateError("causal context must map origin -> counter")


# ==============================================================================================
# Types. Each works on JSON-shaped states and is told the contexts of both sides on join.
# ==============================================================================================
class CrdtType:
    name = ""
    causal = False          # does the type read the causal context (observed-remove)?
    verbs: frozenset[str] = frozenset()

    def empty(self) -> Any:
        raise NotImplementedError

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        raise NotImplementedError

    def leq(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> bool:
        """a ⊑ b: b already contains everything a says."""
        return self.join(a, b, cca, ccb) == b

    def value(self, s: Any) -> Any:
        raise NotImplementedError

    def live(self, s: Any) -> bool:
        """False when the state says "nothing here" (deleted / emptied / reset): a GC candidate."""
        raise NotImplementedError

    def check(self, s: Any) -> Any:
        """Raise StateError unless `s` is a well-formed state of this type."""
        raise NotImplementedError

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        """The state after one operation by the writer (dot, hlc, counter slot). `kill` is a
        read context passed back by the client (registers only): the siblings it covers go."""
        raise NotImplementedError


class GCounter(CrdtType):
    """Grow-only counter: one count per writer slot; value = sum. `delete` resets it to zero as
    observed (a base per slot is kept), so increments the resetter had not seen survive."""

    name = "gcounter"
    verbs = frozenset({"incr", "delete"})

    def empty(self) -> Any:
        return {"p": {}, "rp": {}}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        return {"p": vv_join(a["p"], b["p"]), "rp": vv_join(a["rp"], b["rp"])}

    def leq(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> bool:
        return vv_leq(a["p"], b["p"]) and vv_leq(a["rp"], b["rp"])

    def value(self, s: Any) -> int:
        return sum(n - s["rp"].get(slot, 0) for slot, n in s["p"].items())

    def live(self, s: Any) -> bool:
        return any(n > s["rp"].get(slot, 0) for slot, n in s["p"].items()) or not s["rp"]

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) != {"p", "rp"}:
            raise StateError("gcounter state must be {p, rp}")
        _counts(s["p"], "p"), _counts(s["rp"], "rp")
        return s

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        if verb == "delete":
            return {"p": dict(s["p"]), "rp": vv_join(s["rp"], s["p"])}
        if type(arg) is not int or arg < 0:
            raise ValueError("a gcounter only grows: incr needs a non-negative integer")
        p = dict(s["p"])
        if arg:
            p[slot] = p.get(slot, 0) + arg
        return {"p": p, "rp": dict(s["rp"])}


class PNCounter(CrdtType):
    """Counter that also decrements: a grow-only count of increments and one of decrements."""

    name = "pncounter"
    verbs = frozenset({"incr", "delete"})
    _parts = ("p", "n", "rp", "rn")

    def empty(self) -> Any:
        return {k: {} for k in self._parts}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        return {k: vv_join(a[k], b[k]) for k in self._parts}

    def leq(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> bool:
        return all(vv_leq(a[k], b[k]) for k in self._parts)

    def value(self, s: Any) -> int:
        up = sum(n - s["rp"].get(slot, 0) for slot, n in s["p"].items())
        down = sum(n - s["rn"].get(slot, 0) for slot, n in s["n"].items())
        return up - down

    def live(self, s: Any) -> bool:
        if not s["rp"] and not s["rn"]:
            return True
        return (any(n > s["rp"].get(slot, 0) for slot, n in s["p"].items())
                or any(n > s["rn"].get(slot, 0) for slot, n in s["n"].items()))

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) != set(self._parts):
            raise StateError("pncounter state must be {p, n, rp, rn}")
        for k in self._parts:
            _counts(s[k], k)
        return s

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        out = {k: dict(s[k]) for k in self._parts}
        if verb == "delete":
            out["rp"], out["rn"] = vv_join(s["rp"], s["p"]), vv_join(s["rn"], s["n"])
            return out
        if type(arg) is not int:
            raise ValueError("incr needs an integer")
        if arg:
            part = "p" if arg > 0 else "n"
            out[part][slot] = out[part].get(slot, 0) + abs(arg)
        return out


class ORSet(CrdtType):
    """Add-wins observed-remove set of strings. An add tags the member with the write's dot; a
    remove drops the tags it observed. Removed tags are covered by the context, not stored."""

    name = "orset"
    causal = True
    verbs = frozenset({"sadd", "srem", "delete"})

    def empty(self) -> Any:
        return {"e": {}}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        out: dict[str, list[list[Any]]] = {}
        for member in set(a["e"]) | set(b["e"]):
            da = [tuple(d) for d in a["e"].get(member, ())]
            db = [tuple(d) for d in b["e"].get(member, ())]
            dots = join_dotset(da, db, cca, ccb)
            if dots:
                out[member] = [list(d) for d in dots]
        return {"e": dict(sorted(out.items()))}

    def value(self, s: Any) -> list[str]:
        return sorted(s["e"])

    def live(self, s: Any) -> bool:
        return bool(s["e"])

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) != {"e"} or not isinstance(s["e"], dict):
            raise StateError("orset state must be {e: {member: [dots]}}")
        for member, dots in s["e"].items():
            if len(member) > MAX_NAME or not isinstance(dots, list) or not dots:
                raise StateError(f"bad orset member {member!r:.40}")
            for d in dots:
                _dot(d)
        return s

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        e = dict(s["e"])
        if verb == "delete":
            return {"e": {}}
        if not isinstance(arg, str) or not arg or len(arg) > MAX_NAME:
            raise ValueError(f"a set member is a non-empty string of at most {MAX_NAME} characters")
        if verb == "sadd":
            e[arg] = [list(dot)]
        else:
            e.pop(arg, None)
        return {"e": dict(sorted(e.items()))}


class LWWRegister(CrdtType):
    """Last-writer-wins register by HLC, ties by dot (the `lww` resolver as a CRDT type)."""

    name = "lwwreg"
    verbs = frozenset({"put", "delete"})

    def empty(self) -> Any:
        return {"s": None}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        if a["s"] is None:
            return b
        if b["s"] is None:
            return a
        return a if lww_key(a["s"]) >= lww_key(b["s"]) else b

    def leq(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> bool:
        return a["s"] is None or (b["s"] is not None and lww_key(a["s"]) <= lww_key(b["s"]))

    def value(self, s: Any) -> Any:
        return None if s["s"] is None else s["s"][3]

    def live(self, s: Any) -> bool:
        return s["s"] is not None and not s.get("d", False)

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) - {"s", "d"} or "s" not in s or not isinstance(s.get("d", False), bool):
            raise StateError("lwwreg state must be {s, d}")
        if s["s"] is not None:
            check_siblings([s["s"]])
        return s

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        if verb == "delete":
            return {"s": [dot[0], dot[1], hlc, None], "d": True}
        return {"s": [dot[0], dot[1], hlc, arg]}

    def join_full(self, a: Any, b: Any) -> Any:
        return self.join(a, b, {}, {})


class MVRegister(CrdtType):
    """Multi-value register: concurrent writes are kept as siblings; a write (with the read
    context, or blind: everything this replica holds) replaces the siblings it covers."""

    name = "mvreg"
    causal = True
    verbs = frozenset({"put", "delete"})

    def __init__(self, max_siblings: int = 16) -> None:
        self.max_siblings = max_siblings
        self.overflow = 0   # siblings dropped by the LWW bound, counted for `status`

    def empty(self) -> Any:
        return {"s": []}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        return {"s": join_siblings(a["s"], b["s"], cca, ccb)}

    def value(self, s: Any) -> list[Any]:
        return [sib[3] for sib in sorted(s["s"], key=lww_key, reverse=True)]

    def live(self, s: Any) -> bool:
        return bool(s["s"])

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) != {"s"}:
            raise StateError("mvreg state must be {s: siblings}")
        check_siblings(s["s"])
        return s

    def bound(self, siblings: list[Sibling]) -> list[Sibling]:
        """At most max_siblings, the newest by HLC; the rest stay covered by the context."""
        if len(siblings) <= self.max_siblings:
            return siblings
        self.overflow += len(siblings) - self.max_siblings
        keep = sorted(siblings, key=lww_key, reverse=True)[:self.max_siblings]
        return sorted(keep, key=lambda s: (s[0], s[1]))

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None) -> Any:
        if kill is None:
            kept: list[Sibling] = []
        else:
            kept = [sib for sib in s["s"] if not covered(kill, (sib[0], sib[1]))]
        if verb == "put":
            kept.append([dot[0], dot[1], hlc, arg])
            kept.sort(key=lambda sib: (sib[0], sib[1]))
        return {"s": self.bound(kept)}


class ORMap(CrdtType):
    """Map of named fields, each a counter (incr), a set (sadd/srem) or an observed-remove
    register (put; shows the newest concurrent value). A field exists while its value is live;
    removing a field resets/clears what was observed, so a concurrent update keeps it (add-wins)."""

    name = "ormap"
    causal = True
    verbs = frozenset({"put", "incr", "sadd", "srem", "delete"})

    def __init__(self, max_siblings: int = 16) -> None:
        self.types: dict[str, CrdtType] = {"counter": PNCounter(), "set": ORSet(),
                                           "register": MVRegister(max_siblings)}
        self.by_verb = {"incr": "counter", "sadd": "set", "srem": "set", "put": "register"}

    def empty(self) -> Any:
        return {"f": {}}

    def join(self, a: Any, b: Any, cca: Mapping[str, int], ccb: Mapping[str, int]) -> Any:
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(set(a["f"]) | set(b["f"])):
            fa, fb = a["f"].get(name, {}), b["f"].get(name, {})
            merged = {}
            for tname in sorted(set(fa) | set(fb)):
                t = self.types[tname]
                sa, sb = fa.get(tname), fb.get(tname)
                merged[tname] = sb if sa is None else sa if sb is None else t.join(sa, sb, cca, ccb)
            out[name] = merged
        return {"f": out}

    def value(self, s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, fields in s["f"].items():
            visible = {t: st for t, st in fields.items() if self.types[t].live(st)}
            for tname, st in visible.items():
                t = self.types[tname]
                shown = t.value(st)[0] if tname == "register" else t.value(st)
                out[name if len(visible) == 1 else f"{name}:{tname}"] = shown
        return out

    def live(self, s: Any) -> bool:
        return any(self.types[t].live(st) for fields in s["f"].values() for t, st in fields.items())

    def check(self, s: Any) -> Any:
        if not isinstance(s, dict) or set(s) != {"f"} or not isinstance(s["f"], dict):
            raise StateError("ormap state must be {f: {field: {type: state}}}")
        for name, fields in s["f"].items():
            if len(name) > MAX_NAME or not isinstance(fields, dict):
                raise StateError(f"bad ormap field {name!r:.40}")
            for tname, st in fields.items():
                if tname not in self.types:
                    raise StateError(f"unknown ormap field type {tname!r:.40}")
                self.types[tname].check(st)
        return s

    def apply(self, s: Any, verb: str, arg: Any, dot: Dot, hlc: int, slot: str,
              kill: Mapping[str, int] | None, field: str | None = None) -> Any:
        f = {name: dict(fields) for name, fields in s["f"].items()}
        if verb == "delete":
            names = list(f) if field is None else [field]
            for name in names:
                for tname, st in f.get(name, {}).items():
                    f[name][tname] = self.types[tname].apply(st, "delete", None, dot, hlc, slot, None)
            return {"f": f}
        if not field or len(field) > MAX_NAME:
            raise ValueError("an ormap operation needs a field name (--field)")
        tname = self.by_verb[verb]
        t = self.types[tname]
        current = f.get(field, {}).get(tname, t.empty())
        f.setdefault(field, {})[tname] = t.apply(current, verb, arg, dot, hlc, slot, None)
        return {"f": dict(sorted(f.items()))}


TYPES: dict[str, type[CrdtType]] = {t.name: t for t in (GCounter, PNCounter, ORSet, LWWRegister, MVRegister, ORMap)}

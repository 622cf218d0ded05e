"""Convergence checker: from the history of acknowledged writes, what must every replica read?

Each acknowledged write is recorded with what its client had seen when it was made (the read it
passed back as context, or - for a write without context - the writer replica's own read just
before). From that ground truth, independent of the vectors the system stores, the checker
derives the one correct outcome per key and compares every replica's read with it:

* lww:         the write with the greatest (HLC, origin, counter) wins; a causally later write
               always has a greater HLC (checked too).
* multi_value: the siblings are exactly the puts no write has overwritten, where a write
               overwrites only the siblings its client saw. Every acknowledged put is thus a
               sibling or dominated by a causally later write that saw it.
* pncounter:   the sum of every acknowledged increment.
* orset:       the members with an add-tag no remove has observed (add-wins).

So it proves every acknowledged write present or dominated by a causally later/merged write,
not merely that replicas agree.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gossipmq.core.node import Node
from gossipmq.core.resolution import Read

Dot = tuple[str, int]


@dataclass
class Write:
    key: str
    verb: str
    value: Any
    dot: Dot
    hlc: int
    seen: set[Dot]            # sibling/tag dots the client had seen (and so may overwrite)
    seen_member: str | None = None


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)

    def record(self, key: str, verb: str, value: Any, dot: Dot, hlc: int, seen_read: Read | dict | None) -> None:
        seen: set[Dot] = set()
        if seen_read is not None:
            sibs = seen_read.siblings if isinstance(seen_read, Read) else seen_read.get("values", [])
            for s in sibs:
                if "origin" in s and "counter" in s and (verb not in ("sadd", "srem") or s.get("value") == value):
                    seen.add((s["origin"], s["counter"]))
        self.writes.append(Write(key, verb, value, dot, hlc, seen))

    def keys(self) -> set[str]:
        return {w.key for w in self.writes}

    def of(self, key: str) -> list[Write]:
        return [w for w in self.writes if w.key == key]

    # -- expectations ---------------------------------------------------------------------------
    def expected(self, key: str, kind: str) -> Any:
        """('absent',) or ('value', v) for lww; a set of sibling dots for mv; an int for counters;
        a set of tag dots for orsets."""
        ws = self.of(key)
        if kind == "lww":
            win = max(ws, key=lambda w: (w.hlc, w.dot[0], w.dot[1]))
            return ("absent",) if win.verb == "delete" else ("value", win.value, win.dot)
        if kind == "mv":
            dead = set().union(*(w.seen for w in ws))
            return {w.dot for w in ws if w.verb == "put" and w.dot not in dead}
        if kind == "pncounter":
            return sum(w.value for w in ws if w.verb == "incr")
        if kind == "orset":
            dead = set().union(*(w.seen for w in ws))
            return {(w.dot, w.value) for w in ws if w.verb == "sadd" and w.dot not in dead}
        raise ValueError(kind)

    def causal_lww_ok(self, key: str) -> list[str]:
        """A write that saw another has a greater HLC (HLC respects causality)."""
        ws = {w.dot: w for w in self.of(key)}
        return [f"{w.dot} saw {d} but has a smaller HLC" for w in ws.values() for d in w.seen
                if d in ws and ws[d].hlc >= w.hlc]


def kind_of(key: str) -> str:
    kind = key.split("/", 1)[0]
    return "mv" if kind == "mvreg" else kind   # an MV-Register CRDT behaves as multi_value


def actual(read: Read | None, kind: str) -> Any:
    if kind == "lww":
        if read is None or read.deleted:
            return ("absent",)
        s = read.siblings[0]
        return ("value", read.value, (s["origin"], s["counter"]))
    if kind == "mv":
        return set() if read is None else {(s["origin"], s["counter"]) for s in read.siblings}
    if kind == "pncounter":
        return 0 if read is None else read.value
    if kind == "orset":
        return set() if read is None else {((s["origin"], s["counter"]), s["value"]) for s in read.siblings}
    raise ValueError(kind)


def check_nodes(nodes: Iterable[Node], history: History) -> list[str]:
    """Problems found (empty = every replica reads exactly what the history implies)."""
    problems: list[str] = []
    nodes = list(nodes)
    for key in sorted(history.keys()):
        kind = kind_of(key)
        want = history.expected(key, kind)
        for node in nodes:
            got = actual(node.read(key), kind)
            if got != want:
                problems.append(f"{node.node_id} {key}: read {got!r}, expected {want!r}")
        if kind == "lww":
            problems += history.causal_lww_ok(key)
    return problems

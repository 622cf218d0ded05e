"""Pairwise (all-pairs) selection of configuration cells.

Every pair of values from two different dimensions appears in at least one cell.
Deterministic (greedy, AETG-like): the same options give the same cells, in the
same order. When new strategies appear (swim/phi, multi_value/crdt, curve) only
OPTIONS grows; the number of cells grows roughly with the product of the two
largest dimensions instead of the product of all of them.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

# The option values the integration matrix exercises (`gossipctl plugins` lists more: rumor,
# static, max_value, ...; see integration/README.md for what is in and why).
OPTIONS: dict[str, list[str]] = {
    "dissemination": ["push", "pull", "hybrid"],
    "failure_detection": ["heartbeat", "swim", "phi"],
    "conflict_resolution": ["lww", "multi_value", "crdt"],
    "security": ["none", "curve"],
}

Cell = dict[str, str]

# Cells beyond the pairwise set: configurations that differ in more than a strategy name. The
# overlay is not a pairwise dimension - a partial view changes what "every node sees every
# member" means - so its one cell is added by hand (integration/config.py fills its tables).
EXTRA_CELLS: list[Cell] = [
    {"dissemination": "plumtree", "failure_detection": "swim", "conflict_resolution": "lww", "security": "none",
     "overlay": "hyparview"},
]


def _pairs(options: Mapping[str, Sequence[str]]) -> set[tuple]:
    dims = list(options)
    return {
        (a, va, b, vb)
        for a, b in itertools.combinations(dims, 2)
        for va in options[a]
        for vb in options[b]
    }


def _cell_pairs(cell: Mapping[str, str], dims: Sequence[str]) -> set[tuple]:
    return {(a, cell[a], b, cell[b]) for a, b in itertools.combinations(dims, 2)}


def _pair(dims: Sequence[str], d: str, v: str, e: str, ve: str) -> tuple:
    """The canonical (dimension order) key of the pair d=v, e=ve."""
    return (d, v, e, ve) if dims.index(d) < dims.index(e) else (e, ve, d, v)


def pairwise(options: Mapping[str, Sequence[str]]) -> list[Cell]:
    """Return cells (dicts dimension -> value) covering every pair of values."""
    dims = list(options)
    for d in dims:
        if not options[d]:
            raise ValueError(f"dimension {d!r} has no values")
        if len(set(options[d])) != len(options[d]):
            raise ValueError(f"dimension {d!r} has duplicate values")
    if len(dims) == 1:
        return [{dims[0]: v} for v in options[dims[0]]]

    uncovered = _pairs(options)
    cells: list[Cell] = []
    while uncovered:
        # Seed with the first uncovered pair (deterministic order), then fill the
        # remaining dimensions one by one with the value covering most new pairs.
        a, va, b, vb = min(uncovered, key=lambda p: (dims.index(p[0]), dims.index(p[2]),
                                                      options[p[0]].index(p[1]),
                                                      options[p[2]].index(p[3])))
        cell: Cell = {a: va, b: vb}
        for d in dims:
            if d in cell:
                continue
            best, best_gain = options[d][0], -1
            for v in options[d]:
                gain = sum(1 for e, ve in cell.items() if _pair(dims, d, v, e, ve) in uncovered)
                if gain > best_gain:
                    best, best_gain = v, gain
            cell[d] = best
        ordered = {d: cell[d] for d in dims}
        uncovered -= _cell_pairs(ordered, dims)
        cells.append(ordered)
    return cells


def covers_all_pairs(cells: Sequence[Mapping[str, str]], options: Mapping[str, Sequence[str]]) -> bool:
    dims = list(options)
    covered: set[tuple] = set()
    for c in cells:
        covered |= _cell_pairs(c, dims)
    return _pairs(options) <= covered


def cell_id(cell: Mapping[str, str]) -> str:
    """Short, stable test id, e.g. 'push-heartbeat-lww-none'."""
    return "-".join(cell.values())


def cells(options: Mapping[str, Sequence[str]] | None = None) -> list[Cell]:
    """The pairwise cells of `options` (default: OPTIONS, plus EXTRA_CELLS)."""
    if options is not None:
        return pairwise(options)
    return pairwise(OPTIONS) + [dict(c) for c in EXTRA_CELLS]


if __name__ == "__main__":
    for c in cells():
        print(cell_id(c))

"""B14: bytes of causal metadata per stored entry as the number of writers of a key grows.

    python benchmarks/b14_causal_metadata.py                 # writers 3, 10, 30, 100 (seconds)

For W writers (distinct node ids) we build the version a replica keeps after every writer has
written the same key, and measure its wire size (orjson, as in a delta) minus the bytes of the
key and of the user value(s): what remains is causal metadata - dot, HLC, kind, causal
context (one entry per writer), sibling dots, counter slots, OR-Set tags. Scenarios:

* sequential: writers take turns, each having seen the previous version (one version kept);
* concurrent: all write at once; the kept versions are the W concurrent states (summed), then
  one writer resolves them (blind put / merge) and one version remains.

Writes benchmarks/out/b14.csv.
"""
from __future__ import annotations

import argparse

import msgspec
import orjson
from common import REGISTRY, load_note, print_table, write_csv

from gossipmq.core.config import parse_config
from gossipmq.core.messages import Entry
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op

DOC = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "mv/", "resolver": "multi_value", "max_siblings": 1000},
    {"prefix": "cnt/", "resolver": "crdt", "type": "pncounter"},
    {"prefix": "set/", "resolver": "crdt", "type": "orset"}]}}
CASES = {"lww": ("k", Op("put", "v" * 16)), "multi_value": ("mv/k", Op("put", "v" * 16)),
         "crdt pncounter": ("cnt/k", Op("incr", 1)), "crdt orset": ("set/k", None)}


def size(e: Entry) -> int:
    return len(orjson.dumps(msgspec.to_builtins(e)))


def user_bytes(e: Entry, kind: str) -> int:
    """Bytes of the key plus the values a client reads (what is *not* metadata)."""
    key = len(orjson.dumps(e.key))
    if kind == "lww":
        return key + len(orjson.dumps(e.value))
    if kind == "multi_value":
        return key + sum(len(orjson.dumps(s[3])) for s in e.value)
    if kind == "crdt pncounter":
        return key + len(orjson.dumps(sum(e.value["p"].values()) - sum(e.value["n"].values())))
    return key + sum(len(orjson.dumps(m)) for m in e.value["e"])


def nodes(w: int) -> list[Node]:
    cfg = parse_config(DOC, REGISTRY, "<b14>")
    return [Node.from_config(cfg.with_node(id=f"node-{i:03d}", advertise=f"mem://{i}"), REGISTRY,
                             incarnation=1_700_000_000_000 + i) for i in range(w)]


def op_for(kind: str, i: int) -> Op:
    op = CASES[kind][1]
    return op if op is not None else Op("sadd", f"m{i:03d}")


def sequential(kind: str, w: int) -> Entry:
    key, last = CASES[kind][0], None
    for i, n in enumerate(nodes(w)):
        if last is not None:
            n.store.apply(last)
        last, _ = n.mutate(float(i), key, op_for(kind, i))
    assert last is not None
    return last


def concurrent(kind: str, w: int) -> tuple[int, int, Entry]:
    key, ns = CASES[kind][0], nodes(w)
    written = [n.mutate(1.0, key, op_for(kind, i))[0] for i, n in enumerate(ns)]
    for e in written[1:]:
        ns[0].store.apply(e)
    kept = ns[0].store.versions(key)
    meta = sum(size(e) - user_bytes(e, kind) for e in kept)
    resolved, _ = ns[0].mutate(2.0, key, op_for(kind, w))
    return len(kept), meta, resolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="3,10,30,100")
    args = parser.parse_args()
    print(f"# B14 causal metadata bytes per entry; {load_note()}")
    rows = []
    for kind in CASES:
        for w in (int(x) for x in args.writers.split(",")):
            seq = sequential(kind, w)
            kept, conc_meta, resolved = concurrent(kind, w)
            rows.append({"resolver": kind, "writers": w,
                         "sequential_meta_bytes": size(seq) - user_bytes(seq, kind),
                         "sequential_context_entries": len(seq.vv),
                         "concurrent_versions_kept": kept, "concurrent_meta_bytes_total": conc_meta,
                         "resolved_meta_bytes": size(resolved) - user_bytes(resolved, kind)})
    print_table(["resolver", "writers", "sequential: meta B/entry", "context entries",
                 "concurrent: versions kept", "concurrent: meta B (all kept)", "after resolve: meta B"],
                [[r["resolver"], r["writers"], r["sequential_meta_bytes"], r["sequential_context_entries"],
                  r["concurrent_versions_kept"], r["concurrent_meta_bytes_total"], r["resolved_meta_bytes"]]
                 for r in rows])
    write_csv("b14.csv", rows)


if __name__ == "__main__":
    main()

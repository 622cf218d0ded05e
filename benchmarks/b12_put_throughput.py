"""B12: local write throughput (puts/s) of one node, memory vs SQLite storage.

    python benchmarks/b12_put_throughput.py                 # ~1 min
    python benchmarks/b12_put_throughput.py --puts 20000 --repeats 3

One kernel, no network: each put goes through the resolver, the store (checksum, Merkle leaf,
dot index) and, with SQLite, a commit before it counts as acknowledged, exactly as the ZeroMQ
runtime does before replying. Rows: memory; sqlite with a commit per put (synchronous=normal:
survives kill -9; =full: also power loss, an fsync per commit); sqlite committing every 100
puts (what the background flush of replicated versions costs per version). Keys cycle over
10,000 names, values are 32-byte strings. Writes benchmarks/out/b12.csv.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import REGISTRY, load_note, print_table, write_csv

from gossipmq.core.config import StorageSection, parse_config
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op
from gossipmq.transports.storage import attach

DOC = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "mv/", "resolver": "multi_value"}, {"prefix": "cnt/", "resolver": "crdt", "type": "pncounter"}]}}


def fresh_node(storage: StorageSection) -> tuple[Node, Any]:
    cfg = replace(parse_config(DOC, REGISTRY, "<b12>"), storage=storage)
    node = Node.from_config(cfg.with_node(id="bench", advertise="mem://bench"), REGISTRY, incarnation=1)
    return node, attach(node, storage)


def run(label: str, puts: int, storage: StorageSection, every: int, key_prefix: str, verb: str) -> float:
    node, db = fresh_node(storage)
    value = "x" * 32
    t0 = time.perf_counter()
    for i in range(puts):
        op = Op("incr", 1) if verb == "incr" else Op("put", value)
        node.mutate(float(i), f"{key_prefix}{i % 10_000}", op)
        if db is not None and (i + 1) % every == 0:
            db.flush(node)
    if db is not None:
        db.flush(node)
        db.close()
    return puts / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# B12 put throughput, {args.puts} puts per run, median of {args.repeats}; {load_note()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("memory", "lww", StorageSection(), 1, args.puts),
            ("memory", "multi_value", StorageSection(), 1, args.puts),
            ("memory", "crdt pncounter (incr)", StorageSection(), 1, args.puts),
            ("sqlite normal, commit per put", "lww", "normal", 1, args.puts // 4),
            ("sqlite normal, commit per put", "multi_value", "normal", 1, args.puts // 4),
            ("sqlite full, commit per put", "lww", "full", 1, max(200, args.puts // 40)),
            ("sqlite normal, commit per 100", "lww", "normal", 100, args.puts),
        ]
        for i, (storage_label, resolver, sync, every, n) in enumerate(cases):
            rates = []
            for r in range(args.repeats):
                section = sync if isinstance(sync, StorageSection) else StorageSection(
                    backend="sqlite", path=str(Path(tmp) / f"b12-{i}-{r}.db"), synchronous=sync)
                prefix = {"lww": "k/", "multi_value": "mv/"}.get(resolver, "cnt/")
                rates.append(run(storage_label, n, section, every, prefix, "incr" if "incr" in resolver else "put"))
            rows.append({"storage": storage_label, "resolver": resolver, "puts": n,
                         "puts_per_s": round(statistics.median(rates)), "min": round(min(rates)),
                         "max": round(max(rates))})
    print_table(["storage", "resolver", "puts/run", "puts/s (median)", "min", "max"],
                [[r["storage"], r["resolver"], r["puts"], r["puts_per_s"], r["min"], r["max"]] for r in rows])
    print(f"# {load_note()}")
    write_csv("b12.csv", rows)


if __name__ == "__main__":
    main()

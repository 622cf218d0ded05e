"""B13: memory one replica needs per key, extrapolated to 1M keys (or measured at 1M).

    python benchmarks/b13_memory_per_key.py                  # 200k keys per resolver, ~1 min
    python benchmarks/b13_memory_per_key.py --keys 1000000   # the real 1M (~1.5 GB, a few minutes)

A kernel's store (versions, dot index, Merkle buckets, live set) after N puts of distinct keys
with 16-byte values written by 3 origins (so each causal context has 3 entries), measured as
the growth of Python's traced allocations (tracemalloc) and of the process RSS. Writes
benchmarks/out/b13.csv.
"""
from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc

from common import REGISTRY, load_note, print_table, write_csv

from gossipmq.core.config import parse_config
from gossipmq.transports.memory import make_nodes
from gossipmq.core.resolution import Op

DOC = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "mv/", "resolver": "multi_value"}, {"prefix": "cnt/", "resolver": "crdt", "type": "pncounter"}]}}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(prefix: str, verb: str, keys: int) -> tuple[float, float, float]:
    cfg = parse_config(DOC, REGISTRY, "<b13>")
    nodes = make_nodes(cfg, REGISTRY, 3)
    target = nodes[0]
    gc.collect()
    tracemalloc.start()
    base, base_rss = tracemalloc.get_traced_memory()[0], rss()
    t0 = time.perf_counter()
    value = "v" * 16
    for i in range(keys):
        key = f"{prefix}{i:08d}"
        writer = nodes[i % 3]
        entry, _ = writer.mutate(float(i), key, Op("incr", 1) if verb == "incr" else Op("put", value))
        if writer is not target:
            target.store.apply(entry)
            writer.store.purge(key)   # keep only the measured replica's memory growing
    elapsed = time.perf_counter() - t0
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / keys, (rss() - base_rss) / keys, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    args = parser.parse_args()
    print(f"# B13 memory per key, {args.keys} keys per resolver; {load_note()}")
    rows = []
    for label, prefix, verb in (("lww", "k/", "put"), ("multi_value", "mv/", "put"),
                                ("crdt pncounter", "cnt/", "incr")):
        traced, resident, elapsed = measure(prefix, verb, args.keys)
        rows.append({"resolver": label, "keys": args.keys, "bytes_per_key_traced": round(traced),
                     "bytes_per_key_rss": round(resident), "mb_per_1m_keys": round(traced * 1e6 / 2**20),
                     "seconds": round(elapsed, 1)})
    print_table(["resolver", "keys measured", "bytes/key (traced)", "bytes/key (RSS)", "MiB per 1M keys", "s"],
                [[r["resolver"], r["keys"], r["bytes_per_key_traced"], r["bytes_per_key_rss"], r["mb_per_1m_keys"],
                  r["seconds"]] for r in rows])
    if args.keys < 1_000_000:
        print(f"# scaled down: measured at {args.keys} keys and extrapolated linearly to 1M")
    print(f"# {load_note()}")
    write_csv("b13.csv", rows)


if __name__ == "__main__":
    main()

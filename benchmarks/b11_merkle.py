"""B11: Merkle anti-entropy repair cost - bytes, messages, hashes and round trips to reconcile
d differences among N keys, against shipping every key's identity.

    python benchmarks/b11_merkle.py                      # N = 10^6 keys (~1 min, ~1.5 GB)
    python benchmarks/b11_merkle.py --keys 100000 --diffs 1,10,1000 --depth 4

Two real kernels (rumor dissemination, so nothing but anti-entropy moves data: the stores are
loaded directly, no rumor is hot) share N keys; then d keys differ: half are newer versions
written on B, half are deletes (tombstones) on A. Node A starts one Merkle exchange; we count
every anti-entropy message until both roots agree. Latency is a fixed 5 ms, so round trips =
(last send - first send) / 10 ms + 1/2 (one-way hops / 2). Writes benchmarks/out/b11.csv.
"""
from __future__ import annotations

import argparse
import random
import time

import msgspec
from common import REGISTRY, load_note, print_table, write_csv

from gossipmq.core.anti_entropy import MerkleKeys
from gossipmq.core.codec import HEADER
from gossipmq.core.config import parse_config
from gossipmq.transports.simulator import Scenario, Simulation

LATENCY_MS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--diffs", default="1,1000")
    parser.add_argument("--branching", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    print(f"# B11 started; {load_note()}")
    cfg = parse_config({"dissemination": {"strategy": "rumor", "interval_ms": 60_000},
                        "failure_detection": {"strategy": "static"},
                        "anti_entropy": {"interval_ms": 1000, "branching": args.branching, "depth": args.depth}},
                       REGISTRY, "<b11>")
    sim = Simulation(cfg, REGISTRY, Scenario(nodes=2, rounds=1, latency_ms=(LATENCY_MS, LATENCY_MS)))
    a, b = sim.nodes["sim://n0"], sim.nodes["sim://n1"]
    b.strategies["anti_entropy"].on_timer = lambda ctx, name: None   # only A starts exchanges
    started = time.perf_counter()
    entries = [a.store.write(f"user/{i:08d}", i, False, "w", i + 1, (i + 1) << 16) for i in range(args.keys)]
    for entry in entries:
        b.store.apply(entry)
    print(f"  loaded {args.keys} keys on both nodes in {time.perf_counter() - started:.1f} s")
    tree = a.store.merkle
    naive = len(HEADER) + len(msgspec.json.encode(MerkleKeys([], [e.key for e in entries],
                                                             [a.store.key_identity(e.key) for e in entries])))
    rng = random.Random(1)
    counter = 10 ** 9
    rows = []
    for d in [int(x) for x in args.diffs.split(",")]:
        for j, i in enumerate(rng.sample(range(args.keys), d)):
            counter += 1
            store, origin = (b.store, "n1") if j % 2 == 0 else (a.store, "n0")
            store.write(f"user/{i:08d}", None if j % 2 else "changed", bool(j % 2), origin, counter, counter << 16)
        expected, _ = a.store.merkle.diff(b.store.merkle)
        sent: list[tuple[float, str, int]] = []
        sim.net.on_send = lambda src, send: sent.append(
            (sim.net.now, send.envelope.type, len(HEADER) + len(msgspec.json.encode(send.envelope))))
        stats_before = {k: a.stats[k] + b.stats[k] for k in ("ae_hashes_out", "ae_keys_out", "ae_entries_out")}
        wall = time.perf_counter()
        ok = sim.net.wait_for(lambda: a.store.checksum() == b.store.checksum(), timeout=10.0)
        wall = time.perf_counter() - wall
        ae = [(at, size) for at, kind, size in sent if kind.startswith("merkle_")]
        # first send to last delivery, in one-way hops; two hops make a round trip
        hops = (ae[-1][0] - ae[0][0]) * 1000 / LATENCY_MS + 1 if ae else 0
        rows.append({
            "keys": args.keys, "d": d, "differing_keys": len(expected), "repaired": ok,
            "messages": len(ae), "bytes": sum(size for _, size in ae),
            "hashes": a.stats["ae_hashes_out"] + b.stats["ae_hashes_out"] - stats_before["ae_hashes_out"],
            "key_ids": a.stats["ae_keys_out"] + b.stats["ae_keys_out"] - stats_before["ae_keys_out"],
            "entries": a.stats["ae_entries_out"] + b.stats["ae_entries_out"] - stats_before["ae_entries_out"],
            "round_trips": round(hops / 2, 1),
            "naive_bytes": naive, "tree": f"{args.branching}^{args.depth}", "cpu_s": round(wall, 3)})
        print(f"  {rows[-1]}", flush=True)
        sim.net.run_for(1.0)
    write_csv("b11.csv", rows)
    print(f"\n# B11: N = {args.keys} keys, tree {args.branching}^{args.depth} = {tree.leaves} leaves; {load_note()}")
    print_table(["d", "differing keys", "repaired", "messages", "round trips", "hashes", "key ids", "entries",
                 "bytes", "all key ids (naive)", "bytes / naive"],
                [[r["d"], r["differing_keys"], r["repaired"], r["messages"], r["round_trips"], r["hashes"],
                  r["key_ids"], r["entries"], r["bytes"], r["naive_bytes"], f"{r['bytes'] / r['naive_bytes']:.5f}"]
                 for r in rows])


if __name__ == "__main__":
    main()

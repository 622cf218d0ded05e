"""B15: time for a 5-node cluster of real processes to converge after 10,000 concurrent,
conflicting writes, per resolver.

    python benchmarks/b15_conflict_convergence.py                  # ~1-2 min
    python benchmarks/b15_conflict_convergence.py --writes 10000 --keys 100 --repeats 3

Five `gossipctl run` processes on 127.0.0.1 (hybrid, fanout 2, 200 ms rounds). Five client
threads, one per node, write as fast as their node acknowledges: 10,000 writes in all on 100
keys (so every key is written ~100 times from all five nodes, mostly concurrently). Then we
poll every node's store checksum every 20 ms; "converged" is the first poll where all five are
equal. For the CRDT counter we also check the final value is the sum of every increment.
Writes benchmarks/out/b15.json.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from procs import Cluster, load, save

from gossipmq.transports.control import request

CONFIG = """
[dissemination]
strategy = "hybrid"
fanout = 2
interval_ms = 200
[failure_detection]
strategy = "heartbeat"
interval_ms = 200
suspect_after_ms = 3000
dead_after_ms = 6000
[conflict_resolution]
strategy = "lww"
[[conflict_resolution.rules]]
prefix = "mv/"
resolver = "multi_value"
max_siblings = 16
[[conflict_resolution.rules]]
prefix = "cnt/"
resolver = "crdt"
type = "pncounter"
"""
CASES = [("lww", "lww/", "put"), ("multi_value", "mv/", "put"), ("crdt pncounter", "cnt/", "incr")]


def write_phase(c: Cluster, prefix: str, verb: str, writes: int, keys: int) -> float:
    per_node = writes // len(c.ids)
    errors: list[str] = []

    def client(i: int, node: str) -> None:
        try:
            for j in range(per_node):
                key = f"{prefix}{(i * 7 + j) % keys}"
                body: dict[str, Any] = {"cmd": verb, "key": key, "value": 1 if verb == "incr" else f"{node}-{j}"}
                request(c.ctl[node], body, timeout=10)
        except Exception as exc:  # reported after the join
            errors.append(f"{node}: {exc}")

    threads = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(c.ids)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"write phase failed: {errors[:3]}")
    return time.monotonic() - t0


def converge_time(c: Cluster, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len({request(c.ctl[n], {"cmd": "status"}, timeout=5)["checksum"] for n in c.ids}) == 1:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise TimeoutError(f"no convergence within {timeout}s (logs in {c.dir})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"# B15 5 processes, {args.writes} concurrent writes on {args.keys} keys; {load()}")
    results: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        cfg = Path(f"/tmp/gmq-b15-{repeat}.toml")
        cfg.write_text(CONFIG)
        c = Cluster(cfg, 5)
        try:
            for n in c.ids:
                c.start(n)
            c.wait(lambda: c.converged(), 30, "5 alive members everywhere")
            for label, prefix, verb in CASES:
                wrote = write_phase(c, f"{prefix}r{repeat}/", verb, args.writes, args.keys)
                conv = converge_time(c)
                row: dict[str, Any] = {"resolver": label, "repeat": repeat, "writes": args.writes,
                                       "write_s": round(wrote, 2), "writes_per_s": round(args.writes / wrote),
                                       "converge_after_last_ack_s": round(conv, 3)}
                if verb == "incr":
                    total = sum(request(c.ctl["n0"], {"cmd": "get", "key": f"{prefix}r{repeat}/{k}"})["value"]
                                for k in range(args.keys))
                    row["counter_sum_ok"] = total == args.writes // 5 * 5
                if prefix == "mv/":
                    sibs = [len(request(c.ctl["n0"], {"cmd": "get", "key": f"{prefix}r{repeat}/{k}"})["value"])
                            for k in range(args.keys)]
                    row["siblings_mean"] = round(statistics.mean(sibs), 2)
                row["cpu_s_per_node"] = round(statistics.mean(c.cpu_seconds(n) for n in c.ids), 1)
                results.append(row)
                print(row)
        finally:
            c.close()
    print("| resolver | writes | write phase (s) | writes/s | converged after last ack (s) |")
    print("|---|---|---|---|---|")
    for label, _, _ in CASES:
        rows = [r for r in results if r["resolver"] == label]
        print(f"| {label} | {args.writes} | {statistics.median(r['write_s'] for r in rows):.2f} | "
              f"{statistics.median(r['writes_per_s'] for r in rows):.0f} | "
              f"{statistics.median(r['converge_after_last_ack_s'] for r in rows):.3f} |")
    print(f"# {load()}")
    save("b15", {"load": load(), "results": results})


if __name__ == "__main__":
    main()

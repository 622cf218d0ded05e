"""B13: memory a replica needs per stored key.

    python benchmarks/b13_memory_per_key.py                          # both parts, 10^4..10^6 keys, ~10 min
    python benchmarks/b13_memory_per_key.py --sizes 10000,100000 --keys 50000 --force   # quick
    python benchmarks/b13_memory_per_key.py --keys 0 --sizes 1000000 --merkle-off        # part 2 only, with the tree's share

Part 1, resolvers (as before): a kernel's store after N puts of distinct keys with 16-byte values
(one shared string) written by 3 origins (so each causal context has 3 entries), per resolver,
measured as the growth of Python's traced allocations (tracemalloc) and of the process RSS,
extrapolated to 1M keys. Writes benchmarks/out/b13.csv.

Part 2, issue #14's figure: bytes per stored key of *overhead* - value bytes excluded - at 10^4,
10^5 and 10^6 keys with 100-byte values, every value its own string as a real node holds them,
Merkle tree on (configs/hybrid.toml's shape). Each (size, path, method) runs in a fresh process:
"rss" is the growth of that process's resident set (/proc/self/statm) with nothing else traced;
"traced" the growth of tracemalloc's traced memory (tracemalloc itself inflates RSS, hence
separate processes). Paths: "received" - a node that decoded every key from real syn_ack frames
(64 entries each, real codec) and applied it, as 4 of 5 nodes in B20 hold them; "local" - the
writer, every key through Node.put. Overhead = (growth - keys x value bytes) / keys; the str
object's own header counts as overhead. --merkle-off adds rows with the tree replaced by a no-op
(what the tree costs). The goal: <= 300 B/key at 10^6 keys (today ~1,000 B with values).
Writes benchmarks/out/b13_overhead.json and .csv.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REGISTRY,
    LoadGuard,
    Progress,
    add_guard_options,
    figure,
    load_note,
    print_figures,
    print_table,
    read_loadavg,
    save_report,
    write_csv,
)

from gossipmq.core.config import load_config, parse_config
from gossipmq.core.resolution import Op
from gossipmq.transports.memory import make_nodes

ROOT = Path(__file__).resolve().parents[1]
DOC = {"conflict_resolution": {"strategy": "lww", "rules": [
    {"prefix": "mv/", "resolver": "multi_value"}, {"prefix": "cnt/", "resolver": "crdt", "type": "pncounter"}]}}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- part 1: resolvers --------------------------------------------------------------------
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


def resolvers(keys: int) -> list[dict[str, Any]]:
    print(f"\n## B13 part 1: memory per key by resolver, {keys} keys per resolver (16-byte shared value); "
          f"{load_note()}")
    rows = []
    for label, prefix, verb in (("lww", "k/", "put"), ("multi_value", "mv/", "put"),
                                ("crdt pncounter", "cnt/", "incr")):
        traced, resident, elapsed = measure(prefix, verb, keys)
        rows.append({"resolver": label, "keys": keys, "bytes_per_key_traced": round(traced),
                     "bytes_per_key_rss": round(resident), "mb_per_1m_keys": round(traced * 1e6 / 2**20),
                     "seconds": round(elapsed, 1)})
    print_table(["resolver", "keys measured", "bytes/key (traced)", "bytes/key (RSS)", "MiB per 1M keys", "s"],
                [[r["resolver"], r["keys"], r["bytes_per_key_traced"], r["bytes_per_key_rss"], r["mb_per_1m_keys"],
                  r["seconds"]] for r in rows])
    if keys < 1_000_000:
        print(f"# scaled down: measured at {keys} keys and extrapolated linearly to 1M")
    write_csv("b13.csv", rows)
    return rows


# ---- part 2: overhead per key, one fresh process per measurement --------------------------
class NoMerkle:
    """Stands in for the Merkle tree to show what it costs (the store only calls flip)."""

    root = 0

    def flip(self, key: str, delta: int, *, present: bool) -> None:
        pass


def child(keys: int, path: str, method: str, value_bytes: int, merkle: bool, config: Path) -> dict[str, Any]:
    """Grow one replica to `keys` keys; report the growth of RSS or of traced memory."""
    from gossipmq.core.codec import decode_frames, encode_envelope
    from gossipmq.core.messages import Entry, Envelope, SynAck
    from gossipmq.core.node import Node
    cfg = load_config(config, REGISTRY)

    def node(node_id: str, port: int) -> Node:
        addr = f"tcp://127.0.0.1:{port}"
        n = Node.from_config(cfg.with_node(id=node_id, bind=addr, advertise=addr), REGISTRY, incarnation=1)
        if not merkle:
            n.store.merkle = NoMerkle()  # type: ignore[assignment]
        return n

    now = 1000.0
    writer, target = node("w", 1), node("r", 2)
    writer.start(now)
    target.start(now)
    pad = "v" * (value_bytes - 10)
    origin = writer.origin
    if path == "local":
        target = writer
    gc.collect()
    if method == "traced":
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if method == "traced" else rss()
    t0 = time.perf_counter()
    for start in range(0, keys, 64):
        count = min(64, keys - start)
        if path == "local":
            for i in range(start, start + count):
                writer.put(now, f"b13/{i:010d}", f"{i:010d}{pad}")
            continue
        # a 64-entry delta as the writer would send it; only the receiver keeps anything
        hlc = int(now * 1000) << 16
        batch = [Entry(f"b13/{i:010d}", f"{i:010d}{pad}", False, origin, i + 1, hlc + i, {origin: i + 1})
                 for i in range(start, start + count)]
        delta = Envelope(type="syn_ack", src="w", addr=writer.address, inc=writer.inc, body=SynAck(None, batch, {}))
        target.handle_message(now, decode_frames(encode_envelope(delta), target.bodies, target.gossip.max_frame_bytes,
                                                 limits=target.limits))
        now += 0.0001
    elapsed = time.perf_counter() - t0
    if path != "local":
        del writer
    gc.collect()
    grown = (tracemalloc.get_traced_memory()[0] if method == "traced" else rss()) - base
    if method == "traced":
        tracemalloc.stop()
    if target.store.live_keys != keys:
        raise RuntimeError(f"the replica holds {target.store.live_keys} keys, expected {keys}")
    return {"keys": keys, "path": path, "method": method, "merkle": merkle, "value_bytes": value_bytes,
            "grown_bytes": grown, "bytes_per_key": grown / keys, "overhead_per_key": (grown - keys * value_bytes) / keys,
            "seconds": elapsed, "rss_mib_end": rss() / 2**20}


def run_child(keys: int, path: str, method: str, args: argparse.Namespace, merkle: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--child-keys", str(keys), "--path", path, "--method", method,
           "--value-bytes", str(args.value_bytes), "--config", str(args.config)] + ([] if merkle else ["--merkle-off"])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {cmd} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead(args: argparse.Namespace, guard: LoadGuard) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    paths = args.paths.split(",")
    variants = [True] + ([False] if args.merkle_off else [])
    jobs = [(k, p, meth, mk) for k in sizes for mk in variants for p in paths for meth in ("rss", "traced")]
    print(f"\n## B13 part 2: overhead per stored key ({args.value_bytes}-byte values excluded), sizes {sizes}, "
          f"paths {paths}; one fresh process per cell", flush=True)
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    progress = Progress("B13 part 2", total=len(jobs), every=0)
    for j, (keys, path, method, merkle) in enumerate(jobs):
        progress.update(j, f"cells; now {keys:,} keys, {path}, {method}, merkle {'on' if merkle else 'off'}")
        with guard.measure(f"B13 {keys} keys {path} {method} merkle={merkle}") as m:
            row = {"keys": keys, "path": path, "method": method, "merkle": merkle, "refused": m.refused}
            if not m.refused:
                row.update(run_child(keys, path, method, args, merkle))
        row.update(load=m.loads(), forced=m.forced, measurement=m)
        rows.append(row)
    progress.close()
    table = []
    for keys in sizes:
        for merkle in variants:
            for path in paths:
                cell = {r["method"]: r for r in rows if (r["keys"], r["path"], r["merkle"]) == (keys, path, merkle)}
                r_rss, r_tr = cell.get("rss", {}), cell.get("traced", {})

                def val(r: dict[str, Any], field: str) -> str:
                    return "refused" if r.get("refused") else f"{r[field]:,.0f}" if field in r else "-"
                table.append([f"{keys:,}", path, "on" if merkle else "off", val(r_rss, "bytes_per_key"),
                              val(r_rss, "overhead_per_key"), val(r_tr, "overhead_per_key"),
                              f"{r_rss.get('seconds', 0) + r_tr.get('seconds', 0):.1f}",
                              f"{r_rss.get('load', '')} / {r_tr.get('load', '')}"])
    print_table(["keys", "path", "Merkle", "RSS B/key (values incl.)", "overhead B/key (RSS)",
                 "overhead B/key (traced)", "s", "load 1-min rss / traced"], table)
    biggest = max(sizes)
    note = "" if biggest >= 1_000_000 else f"at {biggest:,} keys, not 10^6"
    head = {r["method"]: r for r in rows if r["keys"] == biggest and r["path"] == paths[0] and r["merkle"]}
    for fid, method, field in (("b13_overhead_1m", "rss", "overhead_per_key"),
                               ("b13_overhead_1m_traced", "traced", "overhead_per_key"),
                               ("b13_rss_per_key", "rss", "bytes_per_key")):
        r = head.get(method)
        if r is not None:
            figures.append(figure(fid, r.get(field), r["measurement"], f"{paths[0]} path" + (f", {note}" if note
                                                                                               else ""),
                                  comparable=biggest >= 1_000_000))
    for r in rows:
        r.pop("measurement", None)
    write_csv("b13_overhead.csv", [{k: v for k, v in r.items() if k != "load"} | {"load": r["load"]} for r in rows])
    return rows, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolver-keys", "--keys", dest="resolver_keys", type=int, default=200_000,
                    help="part 1: keys per resolver (0 = skip part 1)")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="part 2: key counts (0 = skip part 2)")
    ap.add_argument("--paths", default="received,local", help="part 2: received and/or local (first = headline)")
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--merkle-off", action="store_true", help="part 2: also measure with a no-op Merkle tree")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "hybrid.toml")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-keys", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    add_guard_options(ap)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child_keys, args.path, args.method, args.value_bytes, not args.merkle_off, args.config)))
        return
    guard = LoadGuard(args.force, args.settle)
    print(f"# B13 memory per key; {read_loadavg()['raw']} (/proc/loadavg)")
    part1: list[dict[str, Any]] = []
    if args.resolver_keys:
        with guard.measure("B13 part 1 (resolvers)") as m:
            if not m.refused:
                part1 = resolvers(args.resolver_keys)
    rows, figures = overhead(args, guard) if args.sizes != "0" else ([], [])
    if figures:
        print_figures(figures, "B13 against issue #14")
    print(f"saved {save_report('b13_overhead', args, figures, guard, resolvers=part1, cells=rows)}")
    print(f"# {read_loadavg()['raw']} (/proc/loadavg at the end)")


if __name__ == "__main__":
    main()

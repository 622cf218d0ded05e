"""The kernel's per-message cost on its hot paths, no runtime (issue #16: the seams refactor must
not slow the kernel). Microseconds per operation, median of `--repeats` runs, with the real codec:

  put        Node.put of a new key (resolver, dot, HLC, Merkle leaf, broadcast bookkeeping)
  syn        a peer's syn answered with a 64-entry delta (digest compare, delta, envelope)
  encode     that syn_ack encoded to frames, per entry
  apply      decode + apply of the 64-entry delta on a receiver, per entry
  ping       a SWIM ping handled (piggybacked claims, ack out)
  timer      one dissemination round timer (peer selection, a syn out per peer)

    python benchmarks/kernel_cost.py                 # this checkout
    python benchmarks/kernel_cost.py --json out.json

To compare with an older commit, install that tree somewhere and name it as the baseline; both
sides then run in fresh processes, alternating, and the table shows each side's median and the
ratio (this checkout / baseline). Only APIs both sides of the refactor have are used:

    git worktree add /tmp/base fdd156c && pip install --no-deps --target /tmp/base-pkg /tmp/base
    python benchmarks/kernel_cost.py --baseline /tmp/base-pkg --rounds 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.config import parse_config
from gossipmq.core.effects import Send
from gossipmq.core.messages import Envelope, Syn
from gossipmq.core.node import Node
from gossipmq.core.plugins import build_registry, make_plugin_manager

REGISTRY = build_registry(make_plugin_manager())
DOC = {"dissemination": {"strategy": "hybrid", "fanout": 3, "interval_ms": 200},
       "failure_detection": {"strategy": "swim"}}


def node(node_id: str, members: int = 0) -> Node:
    cfg = parse_config({**DOC, "node": {"id": node_id, "bind": f"tcp://127.0.0.1:{1000 + len(node_id)}"}}, REGISTRY)
    n = Node.from_config(cfg, REGISTRY, incarnation=1)
    n.start(1000.0)
    return n


def one_run(batches: int, batch: int) -> dict[str, float]:
    writer, receiver = node("w"), node("r")
    # a 20-member view on the writer, so rounds and pings have someone to pick and claims to carry
    from gossipmq.core.messages import MemberUpdate
    peers = [MemberUpdate(f"p{i}", f"tcp://127.0.0.1:{2000 + i}", 1, "alive", 0, {}) for i in range(19)]
    hello = Envelope(type="join_ack", src="p0", addr=peers[0].addr, inc=1,
                     body=writer.bodies["join_ack"](peers), members=[])
    writer.handle_message(1000.0, hello)
    now = 1000.0
    t = dict.fromkeys(("put", "syn", "encode", "apply", "ping", "timer"), 0.0)
    counts = dict.fromkeys(t, 0)
    value = "x" * 100
    warm = max(1, batches // 10)
    ping_type = next((name for name in writer.bodies if name == "ping"), None)
    for j in range(batches):
        origin = getattr(writer, "origin", writer.node_id)   # per-life origins came with the refactor
        mark = writer.store.watermarks.get(origin, 0)
        keys = [f"k/{j}/{i}" for i in range(batch)]
        t0 = time.perf_counter()
        for key in keys:
            writer.put(now, key, value)
        t1 = time.perf_counter()
        syn = Envelope(type="syn", src="r", addr=receiver.address, inc=receiver.inc,
                       body=Syn("push-pull", {origin: mark} if mark else {}))
        sends = [e for e in writer.handle_message(now, syn) if isinstance(e, Send) and e.envelope.type == "syn_ack"]
        t2 = time.perf_counter()
        frames = encode_envelope(sends[0].envelope)
        t3 = time.perf_counter()
        receiver.handle_message(now, decode_frames(frames, receiver.bodies, receiver.gossip.max_frame_bytes,
                                                   limits=receiver.limits))
        t4 = time.perf_counter()
        if ping_type is not None:
            body = writer.bodies[ping_type]
            ping = Envelope(type=ping_type, src="p1", addr=peers[1].addr, inc=1,
                            body=ping_body(body, j), members=[])
            t5 = time.perf_counter()
            writer.handle_message(now, ping)
            t6 = time.perf_counter()
        round_timer = _round_timer()
        t7 = time.perf_counter()
        writer.handle_timer(now, round_timer)
        t8 = time.perf_counter()
        if j >= warm:
            t["put"] += t1 - t0
            counts["put"] += batch
            t["syn"] += t2 - t1
            counts["syn"] += 1
            t["encode"] += t3 - t2
            t["apply"] += t4 - t3
            counts["encode"] += batch
            counts["apply"] += batch
            if ping_type is not None:
                t["ping"] += t6 - t5
                counts["ping"] += 1
            t["timer"] += t8 - t7
            counts["timer"] += 1
        now += 0.001
    return {name: (t[name] / counts[name] * 1e6 if counts[name] else float("nan")) for name in t}


def ping_body(body: Any, seq: int) -> Any:
    """A SWIM ping body for this node (`seq` is its one required field in every version)."""
    return body(seq=seq + 1, target="w")


def _round_timer() -> Any:
    """The dissemination round timer: a typed value since the seams refactor, a string before."""
    import gossipmq.core.node as kernel
    if not os.path.exists(os.path.join(os.path.dirname(kernel.__file__), "timers.py")):
        return "dissemination:round"
    from gossipmq.core.timers import Timer
    return Timer("dissemination", "round", None)


def measure(args: argparse.Namespace) -> dict[str, float]:
    runs = [one_run(args.batches, args.batch) for _ in range(args.repeats)]
    return {name: round(statistics.median(r[name] for r in runs), 2) for name in runs[0]}


def in_process(pythonpath: str | None, args: argparse.Namespace) -> dict[str, float]:
    """Figures from a fresh interpreter (the baseline's package first on its path)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, __file__, "--raw", "--batches", str(args.batches), "--batch",
                          str(args.batch), "--repeats", str(args.repeats)],
                         env=env, check=True, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout)


def compare(args: argparse.Namespace) -> dict[str, Any]:
    here: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    for i in range(args.rounds):
        print(f"  round {i + 1}/{args.rounds}", file=sys.stderr, flush=True)
        base.append(in_process(args.baseline, args))
        here.append(in_process(None, args))
    names = list(here[0])
    table = {name: {"baseline": round(statistics.median(r[name] for r in base), 2),
                    "this": round(statistics.median(r[name] for r in here), 2)} for name in names}
    for row in table.values():
        row["ratio"] = round(row["this"] / row["baseline"], 3) if row["baseline"] else float("nan")
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", help="an installed older tree (pip install --target DIR) to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="alternating baseline/this runs with --baseline")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)   # one JSON line (used by --baseline)
    args = ap.parse_args()
    if args.raw:
        print(json.dumps(measure(args)))
        return 0
    load = os.getloadavg()[0]
    if args.baseline:
        table = compare(args)
        print(f"kernel per-message cost (us), median of {args.rounds} alternating rounds x {args.repeats} runs "
              f"(load {load:.2f} -> {os.getloadavg()[0]:.2f})")
        print(f"  {'':7s} {'baseline':>9s} {'this':>9s} {'ratio':>7s}")
        for name, row in table.items():
            print(f"  {name:7s} {row['baseline']:9.2f} {row['this']:9.2f} {row['ratio']:7.3f}")
        result: dict[str, Any] = {"table_us": table, "baseline": args.baseline}
    else:
        figures = measure(args)
        print(f"kernel per-message cost, median of {args.repeats} runs "
              f"(us; load {load:.2f} -> {os.getloadavg()[0]:.2f})")
        for name, value in figures.items():
            print(f"  {name:7s} {value:8.2f}")
        result = {"figures_us": figures}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "load": [load, os.getloadavg()[0]], "args": vars(args)}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

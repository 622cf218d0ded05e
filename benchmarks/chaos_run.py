"""The long chaos run of issue #10: 5 real nodes, kill -9/restart, SIGSTOP, partitions and 5 %
message loss while a client writes lww, multi-value, pncounter and OR-Set keys (`--ack majority`
on the memory backend). Prints, per backend, the operations acknowledged, those lost (must be 0)
and the time to converge after the last fault; writes benchmarks/out/chaos.json.

    python benchmarks/chaos_run.py --minutes 10 --backends memory,sqlite
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.chaos import run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="chaos duration per backend")
    ap.add_argument("--backends", default="memory,sqlite")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for backend in args.backends.split(","):
        start_load = os.getloadavg()
        print(f"== {backend}: {args.minutes:g} min of chaos (load {start_load[0]:.2f})", flush=True)
        outcome = run(backend, args.minutes * 60, seed=args.seed, progress=lambda s: print("  " + s, flush=True))
        row = {**outcome.as_dict(), "load_start": round(start_load[0], 2), "load_end": round(os.getloadavg()[0], 2)}
        rows.append(row)
        print(json.dumps(row, indent=2), flush=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "chaos.json").write_text(json.dumps(rows, indent=2))
    print("\n| backend | ops acknowledged / attempted | lost | faults | converged after last fault |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['ops_acknowledged']} / {r['ops_attempted']} | {r['acknowledged_lost']} | "
              f"{r['faults']} | {r['converged_after_last_fault_s']} s |")
    return 1 if any(r["acknowledged_lost"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

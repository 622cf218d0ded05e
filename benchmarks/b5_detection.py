"""B5 detection latency on real processes: SIGKILL one of N `gossipctl run` nodes on loopback
and time (from the kill) the first suspicion anywhere, the first 'dead' verdict and 'dead'
at every survivor. Repeated for --trials victims (each restarted before the next trial).

    python benchmarks/b5_detection.py --nodes 10 --trials 5 --config configs/lan.toml

Times come from the nodes' own log lines (ms resolution, same host clock as the kill).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Cluster, load, pct, save  # noqa: E402


def trial(cluster: Cluster, victim: str) -> dict[str, float]:
    survivors = [n for n in cluster.ids if n != victim]
    inc = next(m["incarnation"] for m in cluster.call(survivors[0], "members") if m["id"] == victim)
    killed = cluster.kill(victim)
    cluster.wait(lambda: all(any(m["id"] == victim and m["status"] == "dead" for m in cluster.call(s, "members"))
                             for s in survivors), 90, f"{victim} dead everywhere", interval=0.5)
    events = [e for s in survivors for e in cluster.events(s) if e[2] == victim and e[5] == inc and e[0] >= killed - 0.01]
    suspected = [e[0] - killed for e in events if e[3] == "suspected"]
    failed = {e[1]: e[0] - killed for e in events if e[3] == "failed"}
    return {"first_suspicion_s": min(suspected) if suspected else float("nan"),
            "dead_at_one_s": min(failed.values()), "dead_at_all_s": max(failed.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--config", type=Path, default=Path("configs/lan.toml"))
    ap.add_argument("--name", default="b5_detection_real")
    args = ap.parse_args()
    cluster = Cluster(args.config, args.nodes)
    rows, load_before = [], load()
    try:
        for node_id in cluster.ids:
            cluster.start(node_id)
        cluster.wait(lambda: cluster.converged(), 60, "membership to converge", 0.5)
        for t in range(args.trials):
            victim = cluster.ids[1 + t % (args.nodes - 1)]
            row = trial(cluster, victim)
            row["victim"] = victim  # type: ignore[assignment]
            rows.append(row)
            print(f"trial {t + 1}: {victim} first suspicion {row['first_suspicion_s']:.2f}s, dead at one "
                  f"{row['dead_at_one_s']:.2f}s, dead at all {row['dead_at_all_s']:.2f}s", flush=True)
            cluster.start(victim)
            cluster.wait(lambda: cluster.converged(), 60, "the restarted victim to be alive everywhere", 0.5)
    finally:
        cluster.close()
    summary = {}
    print(f"\nB5 real processes: {args.nodes} nodes, {args.config}, {args.trials} kills; {load_before} before, "
          f"{load()} after")
    print(f"{'metric':<20}{'mean':>8}{'median':>8}{'p99/max':>9}")
    for key in ("first_suspicion_s", "dead_at_one_s", "dead_at_all_s"):
        values = [r[key] for r in rows]
        summary[key] = {"mean": statistics.mean(values), "median": statistics.median(values), "max": max(values)}
        print(f"{key:<20}{summary[key]['mean']:>8.2f}{summary[key]['median']:>8.2f}{pct(values, 0.99):>9.2f}")
    path = save(args.name, {"nodes": args.nodes, "config": str(args.config), "trials": rows, "summary": summary,
                            "load_before": load_before, "load_after": load(), "when": time.ctime()})
    print(f"saved {path}")


if __name__ == "__main__":
    main()

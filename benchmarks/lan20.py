"""The LAN-preset targets on 20 real node processes on loopback (one seed):

* membership converged <= 1.5 s after the last node starts (its "listening" log line);
* kill -9 of one node -> dead at every survivor <= 8 s (median of 3);
* no healthy node suspected at any time during the run;
* idle CPU <= 0.5 % of a core per node and resident memory <= 30 MiB per node.

    python benchmarks/lan20.py --nodes 20 --kills 3 --idle 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Cluster, load, save  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement")
    ap.add_argument("--config", type=Path, default=Path("configs/lan.toml"))
    args = ap.parse_args()
    cluster = Cluster(args.config, args.nodes)
    result: dict[str, object] = {"nodes": args.nodes, "config": str(args.config), "load_before": load()}
    kills: list[dict[str, float]] = []
    try:
        cluster.start(cluster.ids[0])
        cluster.wait(lambda: cluster.call(cluster.ids[0], "status"), 30, "the seed to answer", 0.1)
        for node_id in cluster.ids[1:]:
            cluster.start(node_id)
        cluster.wait(lambda: all(cluster.listening_at(n) for n in cluster.ids), 60, "every node to listen", 0.2)
        cluster.wait(lambda: cluster.converged(), 60, "membership to converge", 0.5)
        last_start = max(cluster.listening_at(n) or 0.0 for n in cluster.ids)
        full_at = []
        for n in cluster.ids:
            joined = {}
            for t, _, member, reason, status, _ in cluster.events(n):
                if status == "alive" and member not in joined:
                    joined[member] = t
            full_at.append(max(joined.values()))
        result["converged_after_last_start_s"] = max(full_at) - last_start
        result["start_spread_s"] = last_start - (cluster.listening_at(cluster.ids[0]) or last_start)
        print(f"converged {result['converged_after_last_start_s']:.2f}s after the last node started "
              f"(starts spread over {result['start_spread_s']:.1f}s)", flush=True)
        time.sleep(5)
        cpu0 = {n: cluster.cpu_seconds(n) for n in cluster.ids}
        t0 = time.monotonic()
        time.sleep(args.idle)
        span = time.monotonic() - t0
        cpu = [100 * (cluster.cpu_seconds(n) - cpu0[n]) / span for n in cluster.ids]
        rss = [cluster.rss_mib(n) for n in cluster.ids]
        result.update(idle_cpu_pct_mean=statistics.mean(cpu), idle_cpu_pct_max=max(cpu),
                      rss_mib_mean=statistics.mean(rss), rss_mib_max=max(rss), idle_load=load())
        print(f"idle CPU per node {statistics.mean(cpu):.2f}% mean / {max(cpu):.2f}% max of a core; RSS "
              f"{statistics.mean(rss):.1f} MiB mean / {max(rss):.1f} max", flush=True)
        killed_lives: set[tuple[str, int]] = set()
        for k in range(args.kills):
            victim = cluster.ids[1 + k * 5 % (args.nodes - 1)]
            survivors = [n for n in cluster.ids if n != victim]
            inc = next(m["incarnation"] for m in cluster.call(survivors[0], "members") if m["id"] == victim)
            killed_lives.add((victim, inc))
            t_kill = cluster.kill(victim)
            cluster.wait(lambda: all(any(m["id"] == victim and m["status"] == "dead"
                                         for m in cluster.call(s, "members")) for s in survivors),
                         60, f"{victim} dead everywhere", 0.5)
            dead = {e[1]: e[0] - t_kill for s in survivors for e in cluster.events(s)
                    if e[2] == victim and e[5] == inc and e[3] == "failed" and e[0] >= t_kill}
            kills.append({"victim": victim, "dead_at_one_s": min(dead.values()), "dead_at_all_s": max(dead.values())})
            print(f"kill {k + 1}: {victim} dead at every survivor after {max(dead.values()):.2f}s", flush=True)
            cluster.start(victim)
            cluster.wait(lambda: cluster.converged(), 60, "the restarted victim", 0.5)
        events = [e for n in cluster.ids for e in cluster.events(n)]
        false = [e for e in events if e[3] in ("suspected", "failed") and (e[2], e[5]) not in killed_lives]
        result.update(kills=kills, dead_all_median_s=statistics.median(k["dead_at_all_s"] for k in kills),
                      false_suspicions=len([e for e in false if e[3] == "suspected"]),
                      false_deaths=len([e for e in false if e[3] == "failed"]), load_after=load())
    finally:
        cluster.close()
    targets = [("converged after last start (s)", result["converged_after_last_start_s"], "<= 1.5"),
               ("kill -9 -> dead everywhere, median (s)", result["dead_all_median_s"], "<= 8"),
               ("healthy nodes suspected", result["false_suspicions"], "0"),
               ("idle CPU per node (% of a core, mean)", result["idle_cpu_pct_mean"], "<= 0.5"),
               ("RSS per node (MiB, max)", result["rss_mib_max"], "<= 30")]
    print(f"\n20-node LAN targets ({result['load_before']} before, {result['load_after']} after)")
    for name, value, target in targets:
        print(f"{name:<42}{value:>8.2f}  target {target}")
    print(f"saved {save('lan20', result)}")


if __name__ == "__main__":
    main()

"""B1 + B2: rounds to reach every node, payload copies and contacts, per mode and fanout.

    python benchmarks/b1_rounds.py                       # n = 100, 1000 (30 seeds), 10000 (5 seeds)
    python benchmarks/b1_rounds.py --sizes 100,1000 --seeds 30 --big-seeds 5

Every run is one `Simulation` (real kernels, configured plugins, synchronous rounds, 5 ms
fixed latency, static membership) with one update injected at round 0 on a random node, run
until every node has it. Writes benchmarks/out/b1_runs.csv (one row per run),
b1_summary.csv and b1_rounds.png (median rounds vs n beside the reference).
"""
from __future__ import annotations

import argparse
import time

from common import (
    OUT,
    REFERENCE,
    REFERENCE_COPIES_N1000,
    REGISTRY,
    load_note,
    median,
    percentile,
    print_table,
    sim_config,
    write_csv,
)

from gossipmq.transports.simulator import Scenario, Simulation

MODES = [("push", 1), ("push", 3), ("pull", 1), ("pull", 3), ("hybrid", 1), ("hybrid", 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per cell for n <= 1000")
    parser.add_argument("--big-seeds", type=int, default=5, help="seeds per cell for n > 1000")
    parser.add_argument("--max-rounds", type=int, default=80)
    parser.add_argument("--modes", default=",".join(f"{m}/{k}" for m, k in MODES),
                        help="cells to run, e.g. pull/1,hybrid/3")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = [(m, int(k)) for m, k in (cell.split("/") for cell in args.modes.split(","))]
    MODES[:] = [cell for cell in MODES if cell in wanted]
    print(f"# B1/B2 started; {load_note()}")
    runs = []
    for n in sizes:
        seeds = args.seeds if n <= 1000 else args.big_seeds
        for mode, k in MODES:
            cfg = sim_config({"strategy": mode, "fanout": k})
            started = time.perf_counter()
            for seed in range(seeds):
                result = Simulation(cfg, REGISTRY, Scenario(nodes=n, rounds=args.max_rounds, seed=seed)).run(
                    stop_when_informed=True)
                rows = result.rows
                runs.append({"n": n, "mode": mode, "fanout": k, "seed": seed, "rounds": result.rounds_to_all,
                             "payload_copies": rows[-1]["payload_copies"],
                             "contacts_per_node": round(sum(r["contacts"] for r in rows), 2),
                             "messages": sum(r["messages"] for r in rows), "bytes": sum(r["bytes"] for r in rows),
                             "wall_s": round(result.wall_s, 3)})
            print(f"  n={n} {mode}/{k}: {seeds} seeds in {time.perf_counter() - started:.1f} s", flush=True)
    tag = "" if len(MODES) == 6 and sizes == [100, 1000, 10000] else "_" + "_".join(
        [f"{m}{k}" for m, k in MODES] + [str(n) for n in sizes])
    write_csv(f"b1_runs{tag}.csv", runs)

    summary = []
    for n in sizes:
        for mode, k in MODES:
            cell = [r for r in runs if r["n"] == n and r["mode"] == mode and r["fanout"] == k]
            rounds = [r["rounds"] for r in cell]
            ref = REFERENCE[(mode, k)].get(n)
            med, p99 = median(rounds), percentile(rounds, 0.99)
            copies = median([r["payload_copies"] for r in cell])
            ref_copies = REFERENCE_COPIES_N1000.get((mode, k)) if n == 1000 else None
            summary.append({
                "n": n, "mode": mode, "fanout": k, "seeds": len(cell), "median": med, "p99": p99,
                "ref_median": ref[0] if ref else "", "ref_p99": ref[1] if ref else "",
                "rounds_ok": bool(ref and med <= ref[0] + 1 and p99 <= ref[1] + 1),
                "copies_per_node": round(copies, 3), "ref_copies": ref_copies or "",
                "contacts_per_node": round(median([r["contacts_per_node"] for r in cell]), 2),
                "messages_per_node": round(median([r["messages"] for r in cell]) / n, 2),
                "bytes_per_node": round(median([r["bytes"] for r in cell]) / n),
            })
    write_csv(f"b1_summary{tag}.csv", summary)
    print(f"\n# B1: rounds to reach all n (median / p99); reference = ideal model in issue #3; {load_note()}")
    print_table(["mode, fanout"] + [f"n={n} sim" for n in sizes] + [f"n={n} ref" for n in sizes] + ["within +1"],
                [[f"{m}, {k}"]
                 + [f"{s['median']:g} / {s['p99']:g}" for s in summary if s["mode"] == m and s["fanout"] == k]
                 + [f"{s['ref_median']} / {s['ref_p99']}" for s in summary if s["mode"] == m and s["fanout"] == k]
                 + [all(s["rounds_ok"] for s in summary if s["mode"] == m and s["fanout"] == k)]
                 for m, k in MODES])
    print("\n# B2: per node per update, median over seeds: payload copies (reference at n=1000), contacts, "
          "messages, bytes")
    print_table(["n", "mode, fanout", "copies", "ref copies", "contacts", "messages", "bytes"],
                [[s["n"], f"{s['mode']}, {s['fanout']}", s["copies_per_node"], s["ref_copies"],
                  s["contacts_per_node"], s["messages_per_node"], s["bytes_per_node"]] for s in summary])
    if not tag:
        _plot(summary, sizes)


def _plot(summary: list[dict], sizes: list[int]) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (mode, k) in enumerate(MODES):
        cells = [s for s in summary if s["mode"] == mode and s["fanout"] == k]
        color = f"C{i}"
        ax.plot([s["n"] for s in cells], [s["median"] for s in cells], marker="o", color=color,
                label=f"{mode}, k={k} (sim)")
        ax.plot([s["n"] for s in cells], [s["ref_median"] for s in cells], linestyle="--", color=color, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("n (nodes)")
    ax.set_ylabel("median rounds to reach all (dashed: reference)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(OUT / "b1_rounds.png", dpi=110)
    print(f"\nwrote {OUT / 'b1_runs.csv'}, {OUT / 'b1_summary.csv'}, {OUT / 'b1_rounds.png'}")


if __name__ == "__main__":
    main()

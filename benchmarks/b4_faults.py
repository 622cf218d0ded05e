"""B4: delivery under message loss and crashed nodes, with and without Merkle anti-entropy.

    python benchmarks/b4_faults.py                 # n = 1000, 30 rounds, 5 seeds
    python benchmarks/b4_faults.py --nodes 500 --seeds 3

Modes: hybrid (push-pull digests, fanout 1) and rumor (blind counter, memberlist limit,
fanout 1). Anti-entropy "on" = one Merkle exchange per node per round. Delivered = fraction
of live nodes holding the update after the last round (mean over seeds); "all by" = median
round at which every live node had it (- when some seed never got there). Writes
benchmarks/out/b4.csv.
"""
from __future__ import annotations

import argparse

from common import REGISTRY, load_note, median, print_table, sim_config, write_csv

from gossipmq.transports.simulator import Scenario, Simulation

FAULTS = [("loss", 0.01), ("loss", 0.05), ("loss", 0.10), ("loss", 0.30), ("crash", 0.20), ("crash", 0.50)]
MODES = [("hybrid", {"strategy": "hybrid", "fanout": 1}), ("rumor", {"strategy": "rumor", "fanout": 1})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(f"# B4 started; {load_note()}")
    rows = []
    for name, dissemination in MODES:
        for ae in (False, True):
            cfg = sim_config(dissemination, {"interval_ms": 1000} if ae else None)
            for fault, level in FAULTS:
                delivered, all_by = [], []
                for seed in range(args.seeds):
                    scenario = Scenario(nodes=args.nodes, rounds=args.rounds, seed=seed,
                                        loss=level if fault == "loss" else 0.0,
                                        crash=level if fault == "crash" else 0.0, count_bytes=False)
                    result = Simulation(cfg, REGISTRY, scenario).run()
                    delivered.append(result.rows[-1]["informed"])
                    all_by.append(result.rounds_to_all)
                done = [r for r in all_by if r is not None]
                rows.append({"mode": name, "anti_entropy": "on" if ae else "off", "fault": f"{fault} {level:.0%}",
                             "delivered": round(sum(delivered) / len(delivered), 4),
                             "seeds_all": f"{len(done)}/{args.seeds}",
                             "all_by_round": median(done) if len(done) == args.seeds else "-"})
                print(f"  {rows[-1]}", flush=True)
    write_csv("b4.csv", rows)
    print(f"\n# B4: n={args.nodes}, {args.rounds} rounds, {args.seeds} seeds, fanout 1; {load_note()}")
    print_table(["mode", "anti-entropy", "fault", "delivered", "seeds reaching all", "all by round (median)"],
                [[r["mode"], r["anti_entropy"], r["fault"], r["delivered"], r["seeds_all"], r["all_by_round"]]
                 for r in rows])


if __name__ == "__main__":
    main()

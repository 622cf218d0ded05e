"""B18: resilience - the share of survivors a write reaches when 10 / 30 / 50 / 80 % of the
nodes crash at once, and how many rounds the overlay and the tree take to heal (issue #15).

    python benchmarks/b18_resilience.py                   # n = 1000
    python benchmarks/b18_resilience.py --nodes 10000     # the lead's run

Per cell: the overlay and (for Plumtree) its tree are built first (3 warm-up writes, one
per round); then the given fraction of all nodes crash-stops at once, and a survivor writes
once per round for `--rounds` rounds. Reported: the share of survivors the first write after
the crash reaches within 2 s (10 rounds; "first"), the share the last write reaches ("after
heal"), and the first round after the crash whose write reaches every survivor within 2 s
("rounds to heal"). No failure detector runs; with HyParView a send to a crashed node is
refused one round trip later (as TCP would), which is how the paper's nodes notice - each
neighbour is then replaced from the passive view. Reference (HyParView paper, fig. 4):
~100 % of survivors after healing for up to 80 % failures; push-pull over the full member list
always delivers (crashed nodes only waste contacts). Writes benchmarks/out/b18.json and
benchmarks/out/b18.png.
"""
from __future__ import annotations

import argparse

from common import OUT, REGISTRY, load_note, print_table
from scale_common import config, hyparview_for, plot, save, scenario

from gossipmq.transports.simulator import Simulation

CELLS = {
    "plumtree, hyparview": ({"strategy": "plumtree"}, True),
    "push-pull k=3, hyparview": ({"strategy": "hybrid", "fanout": 3}, True),
    "plumtree, full": ({"strategy": "plumtree"}, False),
    "push-pull k=3, full": ({"strategy": "hybrid", "fanout": 3}, False),
}
WINDOW_S = 2.0


def run(cell: str, n: int, fraction: float, rounds: int, seed: int) -> dict:
    dissemination, partial = CELLS[cell]
    membership = {**hyparview_for(n), "shuffle_interval_ms": 2000} if partial else None
    sim = Simulation(config(dissemination, membership), REGISTRY,
                     scenario(n, seed=seed, warmup_rounds=5, warmup_updates=3))
    sim.warm_up()
    sim.crash_now(fraction)
    crashed_at = sim.net.now
    writes: list[tuple[int, str, float]] = []
    for r in range(rounds):
        sim.advance(crashed_at + r * sim.interval)
        survivors = sim.live_addresses()
        writes += [(r, key, sim.net.now) for key in sim.inject([survivors[sim.rng.randrange(len(survivors))]])]
    sim.advance(crashed_at + rounds * sim.interval + WINDOW_S)
    reach = []
    for r, key, _ in writes:
        u = sim.tracked[key]
        within = {a for a in sim.informed[u] - sim.crashed}
        reach.append((r, len(within) / len(sim.live_addresses())))
    healed = next((r for r, share in reach if share == 1.0), None)
    live = len(sim.live_addresses())
    sim.net.nodes.clear()
    return {"cell": cell, "n": n, "crashed": fraction, "survivors": live, "first": round(reach[0][1], 4),
            "after_heal": round(reach[-1][1], 4), "rounds_to_heal": healed,
            "min_reach": round(min(share for _, share in reach), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.8])
    parser.add_argument("--rounds", type=int, default=40, help="rounds of writes after the crash (200 ms each)")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# B18 started; {load_note()}", flush=True)
    rows = []
    for cell in args.cells:
        for fraction in args.fractions:
            row = run(cell, args.nodes, fraction, args.rounds, args.seed)
            rows.append(row)
            print(f"  {row}", flush=True)
    note = load_note()
    print(f"\n# B18: n = {args.nodes}, crash at once after the tree formed; a write per round from a survivor, "
          f"each given {WINDOW_S:g} s; {note}")
    print_table(["cell", "crashed", "first write after the crash", "write after healing", "rounds to heal",
                 "reference"],
                [[r["cell"], f"{r['crashed']:.0%}", r["first"], r["after_heal"], r["rounds_to_heal"],
                  "~1.0 after healing (HyParView paper)"] for r in rows])
    save("b18.json", {"rows": rows, "load": note, "args": vars(args)})

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        for cell in args.cells:
            cells = [r for r in rows if r["cell"] == cell]
            ax.plot([100 * r["crashed"] for r in cells], [r["first"] for r in cells], marker="o",
                    label=f"{cell}: first write")
            ax.plot([100 * r["crashed"] for r in cells], [r["after_heal"] for r in cells], marker="s",
                    linestyle="--", label=f"{cell}: after healing")
        ax.set_xlabel("nodes crashed at once (%)")
        ax.set_ylabel("share of survivors reached")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"B18: resilience, n = {args.nodes}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    png = plot(OUT / "b18.png", draw)
    if png:
        print(f"wrote {png}")


if __name__ == "__main__":
    main()

"""B19: topology - 3 zones, cross-zone links 10x slower: cross-zone bytes per write and time to
the last node, for uniform, tag-aware and latency-aware dissemination (issue #15).

    python benchmarks/b19_topology.py                    # n = 1000
    python benchmarks/b19_topology.py --nodes 3000

Node i sits in zone i % 3 (tag zone=z0..z2); a message takes 5 ms inside a zone and 50 ms
between zones. Every cell runs SWIM (its pings and acks carry Vivaldi coordinates; 60 s of
probing train them before anything is written) so all cells pay the same probing; the figures
count dissemination messages only (syn/syn_ack/ack, pt_*). Six writers, two per zone, first
write 4 times each one round apart (Plumtree builds their trees and, in latency mode, reshapes
them per writer), then 3 times each measured. Cells:

* push-pull k=3 with `uniform` and with `tag_aware` peers (prefer the own zone, 10 % remote);
* Plumtree over the full overlay with its neighbours picked `uniform`, `tag_aware` or
  `nearest` (Vivaldi; `repick_ms = 5000` lets the picks made at start, before any coordinate
  existed, move toward the nearest during the training), without and with the latency
  optimisation (per-writer trees);
* Plumtree over HyParView (random active views) without and with the latency optimisation.

Writes benchmarks/out/b19.json and benchmarks/out/b19.png.
"""
from __future__ import annotations

import argparse
import statistics

from common import OUT, REGISTRY, load_note, print_table
from scale_common import TypeBytes, broadcast, config, hyparview_for, plot, save, scenario

from gossipmq.transports.simulator import Simulation

TAG = {"strategy": "tag_aware", "match": ["zone"], "mode": "prefer", "remote_share": 0.1}
CELLS: dict[str, tuple[dict, dict | None, bool]] = {
    # name: (dissemination, peer selection, hyparview)
    "push-pull k=3, uniform": ({"strategy": "hybrid", "fanout": 3}, None, False),
    "push-pull k=3, tag-aware": ({"strategy": "hybrid", "fanout": 3}, TAG, False),
    "plumtree, uniform": ({"strategy": "plumtree", "optimization": "off"}, None, False),
    "plumtree, tag-aware": ({"strategy": "plumtree", "optimization": "off"}, TAG, False),
    "plumtree, uniform + latency opt.": ({"strategy": "plumtree", "optimization": "latency"}, None, False),
    "plumtree, nearest + latency opt.": ({"strategy": "plumtree", "optimization": "latency", "repick_ms": 5000},
                                         {"strategy": "nearest", "random_share": 0.25}, False),
    "plumtree, nearest": ({"strategy": "plumtree", "optimization": "off", "repick_ms": 5000},
                          {"strategy": "nearest", "random_share": 0.25}, False),
    "plumtree, hyparview": ({"strategy": "plumtree", "optimization": "off"}, None, True),
    "plumtree, hyparview + latency opt.": ({"strategy": "plumtree", "optimization": "latency"}, None, True),
}
SWIM = {"strategy": "swim", "probe_interval_ms": 1000, "probe_timeout_ms": 300}


def run(cell: str, n: int, seed: int, train_s: float) -> dict:
    dissemination, selector, partial = CELLS[cell]
    cfg = config(dissemination, hyparview_for(n) if partial else None, detector=SWIM, peer_selection=selector)
    sim = Simulation(cfg, REGISTRY, scenario(n, seed=seed, zones=3, latency_ms=(5.0, 5.0), cross_zone_ms=(50.0, 50.0),
                                             detector=True))
    meter = TypeBytes(sim)
    sim.advance(train_s)                     # SWIM probes train the coordinates
    writers = [sim.addresses[i] for i in (0, 3, 1, 4, 2, 5)]   # zones 0, 0, 1, 1, 2, 2
    for _ in range(4):
        for w in writers:
            broadcast(sim, [w], rounds=30, meter=meter)
    results = [broadcast(sim, [w], rounds=30, meter=meter) for _ in range(3) for w in writers]
    node = sim.nodes[sim.addresses[0]]
    rtt_near = node.coordinates.rtt("n3")
    rtt_far = node.coordinates.rtt("n1")
    swaps = sum(nd.stats.get("plumtree_optimizations", 0) for nd in sim.nodes.values())
    sim.net.nodes.clear()

    def mean(key: str) -> float | None:
        values = [r[key] for r in results if r[key] is not None]
        return round(statistics.mean(values), 2) if values else None
    return {"cell": cell, "n": n, "cross_zone_bytes_per_node": mean("cross_zone_bytes_per_node"),
            "bytes_per_node": mean("bytes_per_node"), "copies_per_node": mean("copies_per_node"),
            "ms_to_all": mean("ms_to_all"), "ms_to_all_max": max((r["ms_to_all"] or 0) for r in results),
            "reached": min(r["reached"] for r in results), "swaps": swaps,
            "vivaldi_rtt_ms": {"same zone": round(1000 * rtt_near, 1) if rtt_near else None,
                               "other zone": round(1000 * rtt_far, 1) if rtt_far else None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--train-s", type=float, default=60.0, help="virtual seconds of SWIM probing first")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# B19 started; {load_note()}", flush=True)
    rows = []
    for cell in args.cells:
        row = run(cell, args.nodes, args.seed, args.train_s)
        rows.append(row)
        print(f"  {row}", flush=True)
    note = load_note()
    print(f"\n# B19: n = {args.nodes}, 3 zones, 5 ms inside / 50 ms across, per node per write; {note}")
    print_table(["cell", "cross-zone bytes", "all bytes", "copies", "ms to all (mean)", "ms to all (max)",
                 "reached", "optimisation swaps"],
                [[r["cell"], r["cross_zone_bytes_per_node"], r["bytes_per_node"], r["copies_per_node"],
                  r["ms_to_all"], r["ms_to_all_max"], r["reached"], r["swaps"]] for r in rows])
    save("b19.json", {"rows": rows, "load": note, "args": vars(args)})

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        names = [r["cell"] for r in rows]
        ys = range(len(rows))
        ax.barh([y + 0.2 for y in ys], [r["cross_zone_bytes_per_node"] or 0 for r in rows], height=0.4,
                label="cross-zone bytes per node per write")
        ax2 = ax.twiny()
        ax2.barh([y - 0.2 for y in ys], [r["ms_to_all"] or 0 for r in rows], height=0.4, color="tab:orange",
                 label="ms to the last node")
        ax.set_yticks(list(ys), names, fontsize=7)
        ax.set_xlabel("cross-zone bytes per node per write (blue)")
        ax2.set_xlabel("ms to the last node (orange)")
        ax.set_title(f"B19: 3 zones, 10x cross-zone latency, n = {args.nodes}", fontsize=9)
    png = plot(OUT / "b19.png", draw, size=(8, 5))
    if png:
        print(f"wrote {png}")


if __name__ == "__main__":
    main()

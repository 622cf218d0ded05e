"""B16: broadcast cost and latency - push-pull, rumor and Plumtree over the full overlay and
HyParView, at n = 1,000 / 10,000 / 100,000 (issue #15).

    python benchmarks/b16_broadcast.py                       # n = 1000 and 10000
    python benchmarks/b16_broadcast.py --sizes 100000        # the lead's timed run (~10 min)
    python benchmarks/b16_broadcast.py --sizes 1000 --modes plumtree

Per cell: the simulator (no failure detector, 5 ms links, 200 ms rounds for every mode - a
push-pull or rumor round, Plumtree's IHAVE batching), then writes spread one at a time from
random nodes: the first ones *build* Plumtree's tree (`first` columns: the flood), the later
ones are the steady state. Measured per node per write: payload copies (transmissions of the
entry, the issue's metric), dissemination messages and bytes (syn/syn_ack/ack, rumor, pt_*;
not SWIM or membership) from the write until 2 rounds after the last node has it (so Plumtree's
batched IHAVEs count, and two rounds of push-pull's idle digests), rounds and milliseconds until
the last node has it. References:
push-pull k=3 copies 2.15 and its mean-field rounds (B2/B1), rumor L = 4 ceil(log10(n + 1))
transmissions per node (memberlist's limit), Plumtree's goal <= 1.05 copies in steady state
and a tree's depth (about log_(d-1) n hops of 5 ms). Writes benchmarks/out/b16.json and
benchmarks/out/b16.png.
"""
from __future__ import annotations

import argparse
import math
import time

from common import OUT, REGISTRY, load_note, print_table
from scale_common import MODES, TypeBytes, broadcast, config, hyparview_for, plot, reference_rounds, save, scenario

from gossipmq.transports.simulator import Simulation


def reference(mode: str, n: int, degree: int) -> tuple[str, str]:
    """(copies, rounds or ms) references for a cell."""
    if mode.startswith("push-pull"):
        return "2.15", f"{reference_rounds('push-pull', n, 3)} rounds"
    if mode == "rumor":
        return f"L = {4 * math.ceil(math.log10(n + 1))}", f"{reference_rounds('rumor', n, 3)} rounds (push)"
    depth = math.ceil(math.log(n) / math.log(max(2, degree - 1)))
    return "<= 1.05 (goal)", f"~{depth} hops = {5 * depth} ms"


def run_cell(mode: str, overlay: str, n: int, writes: int, seed: int) -> dict:
    membership = hyparview_for(n) if overlay == "hyparview" else None
    cfg = config(MODES[mode], membership)
    t0 = time.perf_counter()
    sim = Simulation(cfg, REGISTRY, scenario(n, seed=seed))
    meter = TypeBytes(sim)
    sim.advance(0.0)
    results = []
    for _ in range(writes):
        writer = sim.live_addresses()[sim.rng.randrange(n)]
        results.append(broadcast(sim, [writer], rounds=60, meter=meter))
    wall = time.perf_counter() - t0
    first, steady = results[0], results[min(2, len(results) - 1):]

    def mean(key: str) -> float | None:
        values = [r[key] for r in steady if r[key] is not None]
        return round(sum(values) / len(values), 4) if values else None
    degree = None
    if mode == "plumtree":     # the tree's neighbours: the active view, or picks plus those who picked us
        degrees = [len(node.dissemination.tree.neighbors) for node in sim.nodes.values()]
        degree = round(sum(degrees) / len(degrees), 2)
    ref_copies, ref_time = reference(mode, n, round(degree or 5))
    sim.net.nodes.clear()
    return {"mode": mode, "overlay": overlay, "n": n, "writes": writes, "degree": degree,
            "first_copies": first["copies_per_node"], "first_messages": first["messages_per_node"],
            "copies": mean("copies_per_node"), "messages": mean("messages_per_node"), "bytes": mean("bytes_per_node"),
            "rounds_to_all": mean("rounds_to_all"), "ms_to_all": mean("ms_to_all"),
            "reached": min(r["reached"] for r in results), "ref_copies": ref_copies, "ref_time": ref_time,
            "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--overlays", nargs="+", default=["full", "hyparview"], choices=["full", "hyparview"])
    parser.add_argument("--writes", type=int, default=6, help="writes per cell, one at a time (first 2 = warm-up)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# B16 started; {load_note()}", flush=True)
    rows = []
    for n in args.sizes:
        for mode in args.modes:
            for overlay in args.overlays:
                row = run_cell(mode, overlay, n, args.writes, args.seed)
                rows.append(row)
                print(f"  {row}", flush=True)
    note = load_note()
    print(f"\n# B16: broadcast cost per node per write (steady state = writes 3..{args.writes}); {note}")
    print_table(["n", "mode", "overlay", "copies (first write)", "copies (steady)", "reference", "messages",
                 "bytes", "rounds to all", "ms to all", "reference time", "reached"],
                [[r["n"], r["mode"], r["overlay"], r["first_copies"], r["copies"], r["ref_copies"], r["messages"],
                  r["bytes"], r["rounds_to_all"], r["ms_to_all"], r["ref_time"], r["reached"]] for r in rows])
    save("b16.json", {"rows": rows, "load": note, "args": vars(args)})

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        for mode in args.modes:
            for overlay in args.overlays:
                cells = [r for r in rows if r["mode"] == mode and r["overlay"] == overlay]
                if cells:
                    ax.plot([r["n"] for r in cells], [r["copies"] for r in cells], marker="o",
                            linestyle="-" if overlay == "full" else "--", label=f"{mode}, {overlay}")
        ax.axhline(2.15, color="grey", linewidth=0.8, linestyle=":")
        ax.axhline(1.05, color="green", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes")
        ax.set_ylabel("payload copies per node per write (steady state)")
        ax.set_title("B16: broadcast cost (dotted: 2.15 push-pull k=3 model, 1.05 Plumtree goal)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    png = plot(OUT / "b16.png", draw)
    if png:
        print(f"wrote {png}")


if __name__ == "__main__":
    main()

"""B17: idle bandwidth per node per second versus n, for every mode and overlay (issue #15).

    python benchmarks/b17_idle.py                                    # n = 100 .. 10,000
    python benchmarks/b17_idle.py --sizes 100000 --writers 10        # the lead's run
    python benchmarks/b17_idle.py --sizes 100000 --writers 10 --overlays hyparview --modes rumor plumtree

Idle = nobody writes. What a node still sends then: push, pull and push-pull open `fanout`
digest exchanges per round, and a digest names every origin that ever wrote (W entries, ~30
bytes each) - so a push-pull node's idle traffic grows with the number of writers, up to n;
rumor mongering and Plumtree send nothing without news; HyParView adds its shuffle walk every
10 s. The stores are set up as after W writers each wrote once and everything converged (the
same watermarks everywhere: a digest exchange then finds nothing to send). Measured in the
simulator (static detector): every message any node sends, bytes as encoded, over a window of
5 s (round-based modes over the full overlay: five of quiet rounds' one-per-second exchanges)
or 20 s (Plumtree, HyParView shuffles). W = n is measured up to
`--all-writers-max` nodes (after 10 s of settling) and extrapolated beyond with the measured bytes per digest entry
(marked "model"): 10^4 nodes whose every node wrote once would make every idle push-pull
digest about 0.3 MB. SWIM's own probes are a separate line (`--swim`): one ping and one ack
per node per probe interval whatever the mode, ~230 bytes each with coordinates.
Writes benchmarks/out/b17.json and benchmarks/out/b17.png.
"""
from __future__ import annotations

import argparse
import time

from common import OUT, REGISTRY, load_note, print_table
from scale_common import config, hyparview_for, plot, save, scenario

from gossipmq.transports.simulator import Simulation

MODES = {"push-pull k=3": {"strategy": "hybrid", "fanout": 3}, "rumor": {"strategy": "rumor", "fanout": 3},
         "plumtree": {"strategy": "plumtree"}}


def idle(mode: str, overlay: str, n: int, writers: int, detector: dict | None = None) -> dict:
    membership = hyparview_for(n) if overlay == "hyparview" else None
    sim = Simulation(config(MODES[mode], membership, detector=detector), REGISTRY,
                     scenario(n, detector=detector is not None))
    marks = {f"n{i}/1": (1 << 20) + 1 for i in range(min(writers, n))}
    for node in sim.nodes.values():
        node.store.watermarks.update(marks)
    round_based = mode != "plumtree"
    # quiet rounds open one exchange per idle_resync_ms (1 s): five of those, or 20 s of trees and shuffles
    window = 5.0 if round_based and overlay == "full" else 20.0
    sim.advance(10.0)   # past start-up (each node's own membership claim is gossiped L times first)
    sim.reset_counters()
    start = sim.net.now
    sim.advance(start + window)
    msgs, nbytes = sum(sim.per_node["messages_sent"]), sum(sim.per_node["bytes_sent"])
    sim.net.nodes.clear()
    return {"mode": mode, "overlay": overlay, "n": n, "writers": min(writers, n),
            "messages_per_node_s": round(msgs / n / window, 3), "bytes_per_node_s": round(nbytes / n / window, 1),
            "model": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--writers", type=int, nargs="+", default=[10, 0], help="W per run; 0 = every node")
    parser.add_argument("--all-writers-max", type=int, default=1000, help="largest n simulated with W = n")
    parser.add_argument("--swim", action="store_true", help="also measure SWIM's probe traffic (n = 1000)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--overlays", nargs="+", default=["full", "hyparview"], choices=["full", "hyparview"])
    args = parser.parse_args()
    print(f"# B17 started; {load_note()}", flush=True)
    rows = []
    per_entry = None
    for writers in args.writers:
        for n in args.sizes:
            w = writers or n
            for mode in args.modes:
                for overlay in args.overlays:
                    if writers == 0 and n > args.all_writers_max:
                        if mode == "push-pull k=3" and per_entry is not None:
                            base = next(r for r in rows if r["mode"] == mode and r["overlay"] == overlay
                                        and r["writers"] == 10 and r["n"] == n) if any(
                                r["writers"] == 10 and r["n"] == n for r in rows) else None
                            if base is not None:
                                extra = (w - 10) * per_entry[overlay]
                                rows.append({**base, "writers": w, "bytes_per_node_s": round(
                                    base["bytes_per_node_s"] + extra, 1), "model": True})
                                print(f"  {rows[-1]}", flush=True)
                        elif mode != "push-pull k=3":
                            same = next((r for r in rows if r["mode"] == mode and r["overlay"] == overlay
                                         and r["n"] == n), None)
                            if same is not None:
                                rows.append({**same, "writers": w, "model": True})
                        continue
                    t0 = time.perf_counter()
                    row = idle(mode, overlay, n, w)
                    row["wall_s"] = round(time.perf_counter() - t0, 1)
                    rows.append(row)
                    print(f"  {row}", flush=True)
            # bytes per second per digest entry, from the largest all-writers run so far
            if writers == 0 and n <= args.all_writers_max:
                per_entry = {}
                for overlay in args.overlays:
                    full_w = next((r for r in rows if r["mode"] == "push-pull k=3" and r["overlay"] == overlay
                                   and r["n"] == n and r["writers"] == n), None)
                    if full_w is None:
                        continue
                    few = next((r for r in rows if r["mode"] == "push-pull k=3" and r["overlay"] == overlay
                                and r["n"] == n and r["writers"] == 10), None)
                    if few is not None and n > 10:
                        per_entry[overlay] = (full_w["bytes_per_node_s"] - few["bytes_per_node_s"]) / (n - 10)
    swim_row = None
    if args.swim:
        for overlay in ("full", "hyparview"):
            row = idle("plumtree", overlay, 1000, 10, detector={"strategy": "swim"})
            swim_row = {**row, "mode": "plumtree + swim"}
            rows.append(swim_row)
            print(f"  {swim_row}", flush=True)
    note = load_note()
    print(f"\n# B17: idle traffic per node per second (everything a node sends, no writes); {note}")
    print_table(["n", "writers (digest entries)", "mode", "overlay", "messages/node/s", "bytes/node/s", "how"],
                [[r["n"], r["writers"], r["mode"], r["overlay"], r["messages_per_node_s"], r["bytes_per_node_s"],
                  "model" if r["model"] else "measured"] for r in rows])
    save("b17.json", {"rows": rows, "load": note, "args": vars(args), "bytes_per_digest_entry_s": per_entry})

    def draw(ax) -> None:  # type: ignore[no-untyped-def]
        for mode in MODES:
            for overlay in ("full", "hyparview"):
                for writers in args.writers:
                    cells = [r for r in rows if r["mode"] == mode and r["overlay"] == overlay
                             and (r["writers"] == r["n"] if writers == 0 else r["writers"] == writers)]
                    if cells and any(r["bytes_per_node_s"] > 0 for r in cells):
                        ax.plot([r["n"] for r in cells], [max(r["bytes_per_node_s"], 1) for r in cells], marker="o",
                                linestyle="-" if overlay == "full" else "--",
                                label=f"{mode}, {overlay}, W = {'n' if writers == 0 else writers}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes")
        ax.set_ylabel("idle bytes per node per second")
        ax.set_title("B17: idle bandwidth (rumor and Plumtree over the full overlay: 0)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    png = plot(OUT / "b17.png", draw)
    if png:
        print(f"wrote {png}")


if __name__ == "__main__":
    main()

"""Simulator reporting: per-round CSV, a summary JSON and the informed-fraction plot (PNG).

Kept apart from the simulation itself: matplotlib is an optional extra (`pip install
'gossipmq[bench]'`), and a run without it still writes the CSV and JSON and says why the PNG
is missing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .epidemic import informed_curve

if TYPE_CHECKING:
    from .simulator import SimResult

PLOT_MISSING = "no informed.png: matplotlib is not installed (pip install 'gossipmq[bench]')"


def write_outputs(result: SimResult, out_dir: str, plot: bool = True) -> tuple[list[str], list[str]]:
    """rounds.csv, nodes.csv (per node: messages, bytes and cross-zone bytes it sent, payload
    copies it received), summary.json and (with matplotlib) informed.png in `out_dir`: (the
    files written, notes on what was skipped and why)."""
    import csv
    import json
    import os
    os.makedirs(out_dir, exist_ok=True)
    written = []
    path = os.path.join(out_dir, "rounds.csv")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]) if result.rows else ["round"])
        writer.writeheader()
        writer.writerows(result.rows)
    written.append(path)
    if result.per_node:
        path = os.path.join(out_dir, "nodes.csv")
        names = list(result.per_node)
        zones = result.scenario.zones
        with open(path, "w", newline="") as fh:
            table = csv.writer(fh)
            table.writerow(["node", "zone", *names])
            for i, values in enumerate(zip(*(result.per_node[name] for name in names), strict=True)):
                table.writerow([f"n{i}", f"z{i % zones}", *values])
        written.append(path)
    path = os.path.join(out_dir, "summary.json")
    with open(path, "w") as fh:
        json.dump({"summary": result.summary(), "timing": {"build_s": round(result.build_s, 3),
                                                           "run_s": round(result.wall_s, 3)},
                   "rounds": result.rows}, fh, indent=2)
    written.append(path)
    notes = []
    if plot:
        png = plot_informed(result, os.path.join(out_dir, "informed.png"))
        if png:
            written.append(png)
        else:
            notes.append(PLOT_MISSING)
    return written, notes


def plot_informed(result: SimResult, path: str) -> str | None:
    """Informed fraction per round beside the mean-field curve; None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rounds = [0] + [r["round"] for r in result.rows]
    sc = result.scenario
    informed = [1 / result.live] + [r["informed"] for r in result.rows]
    theory = informed_curve(result.mode, sc.nodes, result.fanout, sc.rounds, live=result.live, loss=sc.loss)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(rounds, informed, marker="o", markersize=3, label=f"simulated ({result.mode}, fanout {result.fanout})")
    ax.plot(range(len(theory)), theory, linestyle="--", label="mean-field theory")
    ax.set_xlabel("round")
    ax.set_ylabel("informed fraction of live nodes")
    extras = []
    if sc.loss:
        extras.append(f"loss {sc.loss:g}")
    if sc.crash:
        extras.append(f"crashed {sc.crash:g}")
    if sc.partition:
        extras.append(f"partition {sc.partition.groups}@{sc.partition.start}..{sc.partition.end or ''}")
    ax.set_title(f"n = {sc.nodes}, seed {sc.seed}" + (", " + ", ".join(extras) if extras else ""))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

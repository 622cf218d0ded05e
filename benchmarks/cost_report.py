"""Issue #14's table from the cost benchmarks: figure, today, goal, anchor, ratio.

    python benchmarks/cost_report.py                    # read benchmarks/out/*.json as last written
    python benchmarks/cost_report.py --run              # run B20, B13, B21, B22, B23 first (~45 min alone)
    python benchmarks/cost_report.py --run --quick --force --only b22,b23   # scaled-down smoke run

Each script writes its figures (value, goal, anchor, ratios, the 1-minute load at the start and
end of the measurement, whether it was forced or refused) into benchmarks/out/<name>.json; this
report puts them in the issue's order beside what the issue measured when it was filed. "ratio"
is how many times worse than the reference (1.0 = equal, below 1 = better), as in the issue.
Writes benchmarks/out/cost_report.json and cost_report.md (a Markdown table for the README).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import GOALS, OUT, fmt, read_loadavg

HERE = Path(__file__).resolve().parent
SCRIPTS = {   # name -> (script, its JSON, quick arguments)
    "b20": ("b20_write_throughput.py", "b20.json", ["--rates", "2000,4000,8000", "--duration", "3"]),
    "b13": ("b13_memory_per_key.py", "b13_overhead.json", ["--keys", "20000", "--sizes", "10000,100000"]),
    "b21": ("b21_idle_membership.py", "b21.json", ["--nodes", "8", "--idle", "10", "--kills", "1", "--trials", "3"]),
    "b22": ("b22_footprint.py", "b22.json", ["--runs", "3"]),
    "b23": ("b23_simulator_speed.py", "b23.json", ["--nodes", "1000", "--rounds", "10"]),
}
ORDER = ["b20_one_node", "b20_spread", "b20_cpu_per_write", "b20_p99", "b20_kernel_apply", "b20_kernel_ceiling",
         "b13_rss_per_key", "b13_overhead_1m", "b13_overhead_1m_traced", "b21_idle_cpu", "b22_rss", "b22_library",
         "b21_converged", "b21_dead_all", "b21_new_key", "b21_false_suspicions", "b22_start", "b23_sim_hybrid",
         "b23_sim_hybrid_plot", "b23_sim_simtoml", "b23_png_note"]


def run_scripts(names: list[str], quick: bool, force: bool, settle: float | None) -> dict[str, int]:
    codes = {}
    for name in names:
        script, _, quick_args = SCRIPTS[name]
        cmd = [sys.executable, str(HERE / script), *(quick_args if quick else [])]
        if force:
            cmd.append("--force")
        if settle is not None:
            cmd += ["--settle", str(settle)]
        print(f"\n=== {' '.join(cmd[1:])}  ({read_loadavg()['raw']})", flush=True)
        codes[name] = subprocess.run(cmd, check=False).returncode
        if codes[name]:
            print(f"WARNING: {script} exited with {codes[name]}", file=sys.stderr)
    return codes


def collect(names: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """{figure id: figure} from each script's JSON, and {script: when it was written}."""
    figures: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for name in names:
        path = OUT / SCRIPTS[name][1]
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        sources[name] = doc.get("finished", "?")
        for f in doc.get("figures", []):
            figures[f["id"]] = {**f, "source": name, "when": sources[name]}
    return figures, sources


def rows(figures: dict[str, dict[str, Any]]) -> list[list[str]]:
    out = []
    for fid in ORDER:
        g = GOALS[fid]
        f = figures.get(fid)
        script = next((s for s, (_, j, _) in SCRIPTS.items() if fid.startswith(s)), "?")
        if f is None:
            out.append([g.label, f"not run (`python benchmarks/{SCRIPTS[script][0]}`)", g.issue_today,
                        fmt(g.goal), "-", "-", "-", "-", ""])
            continue
        value = "not measured" if f["value"] is None else f"{fmt(f['value'])} {f['unit']}"
        verdict = {True: " met", False: " MISSED", None: ""}[f["met"]]
        rg = (f"{f['ratio_goal']:.2f}x" if f["ratio_goal"] is not None else "" if verdict else "-") + verdict
        ra = "-" if f["ratio_anchor"] is None else f"{f['ratio_anchor']:.2f}x"
        anchor = "-" if f["anchor"] is None else f"{fmt(f['anchor'])} ({f['anchor_name']})"
        end = "?" if f["load_end"] is None else f"{f['load_end']:.2f}"
        load = "-" if f["load_start"] is None else f"{f['load_start']:.2f}->{end}" + (" forced" if f["forced"] else "")
        out.append([g.label, value, g.issue_today, fmt(f["goal"]), rg, anchor, ra, load,
                    f"{f['note']} ({f['source']}, {f['when']})".strip()])
    return out


HEADERS = ["figure", "today (measured)", "issue (when filed)", "goal", "ratio to goal", "anchor", "ratio to anchor",
           "load 1-min start->end", "note (script, when)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the scripts first (else read their last JSON)")
    ap.add_argument("--only", default=",".join(SCRIPTS), help=f"scripts, of {', '.join(SCRIPTS)}")
    ap.add_argument("--quick", action="store_true", help="with --run: scaled-down arguments (a smoke test)")
    ap.add_argument("--force", action="store_true", help="with --run: passed on (report figures on a busy machine)")
    ap.add_argument("--settle", type=float, default=None, help="with --run: passed on (seconds to wait for load)")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(SCRIPTS)
    if unknown:
        ap.error(f"unknown scripts {sorted(unknown)}; known: {', '.join(SCRIPTS)}")
    codes = run_scripts(names, args.quick, args.force, args.settle) if args.run else {}
    figures, sources = collect(list(SCRIPTS))
    table = rows(figures)
    title = (f"Issue #14 per-node costs ({time.strftime('%Y-%m-%d %H:%M')}; ratio = times worse than the reference, "
             f"< 1 is better; a figure is only reported when the 1-minute load was <= 1.5 at its start, or marked "
             f"'forced')")
    lines = [title, "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table]
    text = "\n".join(lines)
    print("\n" + text)
    met = sum(1 for f in figures.values() if f["met"])
    judged = sum(1 for f in figures.values() if f["met"] is not None)
    print(f"\n{met} of {judged} judged goals met; sources: "
          + ", ".join(f"{n} ({w})" for n, w in sources.items()) + f"; {read_loadavg()['raw']} (/proc/loadavg)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cost_report.md").write_text(text + "\n")
    (OUT / "cost_report.json").write_text(json.dumps({"figures": [figures[f] for f in ORDER if f in figures],
                                                      "sources": sources, "exit_codes": codes}, indent=2))
    print(f"saved {OUT / 'cost_report.md'} and cost_report.json")
    if any(codes.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()

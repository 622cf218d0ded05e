"""B23: wall time of `gossipctl simulate` (issue #14: <= 20 s on one core for 10^4 nodes, 40 rounds).

    python benchmarks/b23_simulator_speed.py                           # 4 cases, ~4 min today, alone
    python benchmarks/b23_simulator_speed.py --nodes 1000 --rounds 10 --force    # quick check

Cases, each a fresh `gossipctl simulate --json` process (the console script next to this
interpreter, else `python -m gossipmq`):

* hybrid       - configs/hybrid.toml, no --out
* hybrid+out   - the same with --out DIR (rounds.csv, summary.json and the PNG plot)
* sim.toml+out - configs/sim.toml (fanout 1) with --out
* no-mpl       - hybrid with --out while matplotlib cannot be imported (a stub package on
                 PYTHONPATH that raises ImportError): does simulate write the PNG, and does it say
                 that it skipped the plot and how to get it? (today it silently writes none)

Per case: wall time from exec to exit, the process's CPU time (user + sys, from wait4), the
simulation's own wall_s from its JSON summary, peak RSS, whether informed.png was written, and
for no-mpl whether the output mentions the skipped plot. --cpu N pins each run to one core
(sched_setaffinity right after the exec), so "on one core" holds even if a library starts threads.
Writes benchmarks/out/b23.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LoadGuard, Progress, add_guard_options, figure, print_figures, print_table, read_loadavg, save_report

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "hybrid": ("hybrid.toml", False, False, "b23_sim_hybrid"),
    "hybrid+out": ("hybrid.toml", True, False, "b23_sim_hybrid_plot"),
    "sim.toml+out": ("sim.toml", True, False, "b23_sim_simtoml"),
    "no-mpl": ("hybrid.toml", True, True, None),
}
SKIP_WORDS = ("matplotlib", "skipp", "plot", "png")


def launcher() -> list[str]:
    script = Path(sys.executable).with_name("gossipctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gossipmq"]


def run_case(args: argparse.Namespace, name: str, configs: Path) -> dict[str, Any]:
    config, out, hide_mpl, _ = CASES[name]
    tmp = Path(tempfile.mkdtemp(prefix="gmq-b23-"))
    env = dict(os.environ)
    if hide_mpl:
        stub = tmp / "stub" / "matplotlib"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("raise ImportError('matplotlib hidden by b23_simulator_speed.py')\n")
        env["PYTHONPATH"] = str(tmp / "stub") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [*launcher(), "simulate", "--config", str(configs / config), "--nodes", str(args.nodes), "--rounds",
           str(args.rounds), "--json"]
    if out:
        cmd += ["--out", str(tmp / "out")]
    progress = Progress(f"B23 {name}", every=10)
    with open(tmp / "stdout", "wb") as so, open(tmp / "stderr", "wb") as se:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
    if args.cpu is not None:
        os.sched_setaffinity(proc.pid, {args.cpu})
    try:
        while True:   # wait4: this child's own CPU time and peak RSS
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > args.timeout:
                raise TimeoutError(f"{name} did not finish within {args.timeout} s")
            progress.update(time.monotonic() - t0, "s elapsed")
            time.sleep(0.02)
    finally:
        progress.close()
        if proc.returncode is None and not pid:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = (tmp / "stdout").read_bytes(), (tmp / "stderr").read_bytes()
    row: dict[str, Any] = {"case": name, "config": config, "out": out, "matplotlib_hidden": hide_mpl, "wall_s": wall,
                           "returncode": proc.returncode, "cpu_s": usage.ru_utime + usage.ru_stime,
                           "peak_rss_mib": usage.ru_maxrss / 1024}
    text = stdout.decode(errors="replace")
    try:
        summary = json.loads(text.strip().splitlines()[-1])
        row["sim_wall_s"] = summary.get("wall_s")
        row["rounds_to_all"] = summary.get("rounds_to_all")
    except (ValueError, IndexError):
        row["output_tail"] = (text + stderr.decode(errors="replace"))[-500:]
    if out:
        row["png_written"] = (tmp / "out" / "informed.png").exists()
        said = stderr.decode(errors="replace") + "\n".join(
            line for line in text.splitlines() if not line.startswith("{"))
        row["said_skipped"] = any(w in said.lower() for w in SKIP_WORDS) if hide_mpl else None
        row["message"] = " ".join(said.split())[-300:]
    shutil.rmtree(tmp, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma separated, of {', '.join(CASES)}")
    ap.add_argument("--cpu", type=int, default=None, help="pin each run to this core")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--configs", type=Path, default=ROOT / "configs")
    add_guard_options(ap)
    args = ap.parse_args()
    guard = LoadGuard(args.force, args.settle)
    print(f"# B23 simulator speed: {args.nodes} nodes, {args.rounds} rounds; {read_loadavg()['raw']} (/proc/loadavg)",
          flush=True)
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    scaled = "" if (args.nodes, args.rounds) == (10_000, 40) else f"scaled down: {args.nodes} nodes, {args.rounds} rounds"
    for name in args.cases.split(","):
        with guard.measure(f"B23 {name}") as m:
            row = {"case": name, "refused": m.refused} if m.refused else run_case(args, name, args.configs)
        row["load"] = m.loads()
        rows.append(row)
        fid = CASES[name][3]
        if fid:
            figures.append(figure(fid, row.get("wall_s"), m, scaled, comparable=not scaled))
        else:
            figures.append(figure("b23_png_note", 1.0 if row.get("said_skipped") else 0.0, m,
                                  f"png written: {row.get('png_written')}; said: {row.get('message') or 'nothing'}"[:120]))
        if not m.refused:
            print(f"{name}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU (load {m.loads()})", flush=True)
    print_table(["case", "wall s", "CPU s", "simulation s", "peak RSS MiB (children)", "PNG written", "said skipped",
                 "load 1-min"],
                [[r["case"], f"{r['wall_s']:.1f}" if "wall_s" in r else r.get("refused", "-"),
                  f"{r['cpu_s']:.1f}" if "cpu_s" in r else "-",
                  f"{r['sim_wall_s']:.1f}" if r.get("sim_wall_s") is not None else "-",
                  f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else "-", r.get("png_written", "-"),
                  r.get("said_skipped", "-") if r.get("said_skipped") is not None else "-", r["load"]] for r in rows])
    print_figures(figures, "B23 against issue #14")
    print(f"saved {save_report('b23', args, figures, guard, cases=rows)}")
    print(f"# {read_loadavg()['raw']} (/proc/loadavg at the end)")


if __name__ == "__main__":
    main()

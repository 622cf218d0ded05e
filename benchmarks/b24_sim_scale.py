"""B24: what the issue #15 simulations cost - wall time, CPU time and peak memory of
`gossipctl simulate` with HyParView + Plumtree at 100,000 nodes, and at 10,000 nodes with SWIM
failure detection on (goal: 100,000 nodes, 40 rounds, under 5 minutes and 8 GiB on one core).

    python benchmarks/b24_sim_scale.py                          # both cases (~3 min alone)
    python benchmarks/b24_sim_scale.py --cases swim10k --cpu 0

Each case is a fresh `gossipctl simulate --json --out DIR` process (CSV, JSON and the PNG
included); wall time from exec to exit, CPU (user + sys) and peak RSS from wait4, the
simulation's own build and run times from summary.json, and /proc/loadavg before and after
(the machine is shared: wall time is only meaningful beside the load). --cpu N pins the run to
one core. Writes benchmarks/out/b24.json.
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

from common import OUT, read_loadavg

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[membership]
overlay = "hyparview"
active_size = {active}
passive_size = {passive}

[dissemination]
strategy = "plumtree"
interval_ms = 200

[failure_detection]
strategy = "swim"
probe_interval_ms = 1000
probe_timeout_ms = 500
"""
CASES = {
    # name: (nodes, rounds, active, extra flags)
    "plumtree100k": (100_000, 40, 6, []),
    "swim10k": (10_000, 40, 5, ["--detector", "--warmup-rounds", "25", "--warmup-updates", "3"]),
}


def gossipctl() -> list[str]:
    script = Path(sys.executable).with_name("gossipctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gossipmq"]


def run(name: str, cpu: int | None) -> dict:
    nodes, rounds, active, extra = CASES[name]
    with tempfile.TemporaryDirectory(prefix="b24-") as tmp:
        config = Path(tmp) / "sim.toml"
        config.write_text(CONFIG.format(active=active, passive=6 * active))
        out = Path(tmp) / "out"
        argv = [*gossipctl(), "simulate", "--config", str(config), "--nodes", str(nodes), "--rounds", str(rounds),
                "--seed", "1", "--json", "--out", str(out), *extra]
        load_before = read_loadavg()
        started = time.monotonic()
        with open(Path(tmp) / "stdout", "wb") as out_fh, open(Path(tmp) / "stderr", "wb") as err_fh:
            proc = subprocess.Popen(argv, stdout=out_fh, stderr=err_fh,
                                    preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None)
            _, status, usage = os.wait4(proc.pid, 0)    # this child's own rusage (peak RSS included)
        wall = time.monotonic() - started
        load_after = read_loadavg()
        code = os.waitstatus_to_exitcode(status)
        stdout = (Path(tmp) / "stdout").read_bytes()
        if code != 0:
            raise SystemExit(f"{name}: exit {code}\n{(Path(tmp) / 'stderr').read_text()[-2000:]}")
        summary = json.loads(stdout)
        timing = json.loads((out / "summary.json").read_text())["timing"]
        keep = OUT / f"b24-{name}"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(out, keep, ignore=shutil.ignore_patterns("nodes.csv"))
    return {"case": name, "nodes": nodes, "rounds": rounds, "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "build_s": timing["build_s"], "run_s": timing["run_s"], "messages": summary["messages"],
            "rounds_to_all": summary["rounds_to_all"], "payload_copies_per_node": summary["payload_copies_per_node"],
            "ms_to_all": summary["ms_to_all"], "loadavg_before": load_before["raw"], "loadavg_after": load_after["raw"],
            "pinned_cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--cpu", type=int, default=None, help="pin each run to this core")
    args = parser.parse_args()
    rows = []
    for name in args.cases:       # one at a time: RUSAGE_CHILDREN accumulates, so read it per process
        rows.append(run(name, args.cpu))
        print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "b24.json").write_text(json.dumps({"rows": rows}, indent=2))
    print("\n| case | nodes | wall s | CPU s | peak RSS GiB | build s | run s | messages | copies/node "
          "| load before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['nodes']:,} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_gib']} | {r['build_s']} | "
              f"{r['run_s']} | {r['messages']:,} | {r['payload_copies_per_node']} | "
              f"{r['loadavg_before'].split()[0]} -> {r['loadavg_after'].split()[0]} |")


if __name__ == "__main__":
    main()

"""Real-cluster put latency: N `gossipctl run` processes on loopback (real ZeroMQ), one put,
time until every node serves it. Repeated per dissemination mode.

    python benchmarks/real_cluster_latency.py --nodes 5 --trials 20
    python benchmarks/real_cluster_latency.py --nodes 10 --interval-ms 100 --fanout 3

Prints a table (median, p90, max in ms, and the median in gossip intervals) and writes
benchmarks/out/real_cluster_latency.json. Time is measured by the benchmark process from the
moment the put is acknowledged until a poll of every node's control endpoint sees the key
(poll period 5 ms, so figures carry up to ~5 ms of polling error).
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gossipmq.transports.control import ControlError, request  # noqa: E402
from tests.helpers import free_ports  # noqa: E402

TEMPLATE = """
[dissemination]
strategy = "{mode}"
fanout = {fanout}
interval_ms = {interval}
[failure_detection]
strategy = "heartbeat"
interval_ms = 500
suspect_after_ms = 3000
dead_after_ms = 6000
"""


def run_mode(mode: str, nodes: int, trials: int, interval: int, fanout: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="gmq-bench-", dir="/tmp") as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(TEMPLATE.format(mode=mode, fanout=fanout, interval=interval))
        ports = free_ports(nodes)
        controls, procs = [], []
        try:
            for i, port in enumerate(ports):
                addr, ctl = f"tcp://127.0.0.1:{port}", f"ipc://{tmp}/n{i}.ctl"
                args = [sys.executable, "-m", "gossipmq", "run", "--config", str(cfg), "--node-id", f"n{i}",
                        "--bind", addr, "--advertise", addr, "--control", ctl, "--log-level", "warning"]
                if i:
                    args += ["--seed", f"tcp://127.0.0.1:{ports[0]}"]
                procs.append(subprocess.Popen(args, stderr=subprocess.DEVNULL, start_new_session=True))
                controls.append(ctl)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if all(request(c, {"cmd": "status"}, 1.0)["members"]["alive"] == nodes for c in controls):
                        break
                except ControlError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit(f"{mode}: membership did not converge in 30 s")
            samples = []
            for t in range(trials):
                key = f"bench/{mode}/{t}"
                writer = controls[t % nodes]
                request(writer, {"cmd": "put", "key": key, "value": t})
                start = time.perf_counter()
                pending = set(controls) - {writer}
                limit = time.monotonic() + 10
                while pending and time.monotonic() < limit:
                    pending = {c for c in pending if request(c, {"cmd": "get", "key": key}, 1.0) is None}
                    if pending:
                        time.sleep(0.005)
                if pending:
                    raise SystemExit(f"{mode}: {key} did not reach {len(pending)} nodes within 10 s")
                samples.append((time.perf_counter() - start) * 1000)
                time.sleep(interval / 1000 * 1.37)  # decorrelate from the round phase
            return samples
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--interval-ms", type=int, default=200)
    ap.add_argument("--fanout", type=int, default=3)
    ap.add_argument("--modes", default="push,pull,hybrid")
    args = ap.parse_args()
    rows = []
    print(f"{args.nodes} real nodes on loopback, fanout {args.fanout}, interval {args.interval_ms} ms, "
          f"{args.trials} puts per mode")
    print(f"{'mode':8} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'median rounds':>14}")
    for mode in args.modes.split(","):
        samples = sorted(run_mode(mode, args.nodes, args.trials, args.interval_ms, args.fanout))
        med = statistics.median(samples)
        p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
        rows.append({"mode": mode, "median_ms": med, "p90_ms": p90, "max_ms": samples[-1], "samples_ms": samples})
        print(f"{mode:8} {med:10.0f} {p90:8.0f} {samples[-1]:8.0f} {med / args.interval_ms:14.2f}", flush=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_cluster_latency.json").write_text(json.dumps({"args": vars(args), "results": rows}, indent=2))


if __name__ == "__main__":
    main()

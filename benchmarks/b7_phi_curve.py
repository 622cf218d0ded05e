"""B7 phi operating curve: detection time against false-positive rate for thresholds 1..16.

    python benchmarks/b7_phi_curve.py --nodes 10 --loss 0.05 --fp-seconds 600

In the seeded in-memory network (the kernel and `phi` plugin of real nodes; latency 1-20 ms,
`--loss` message loss, heartbeats every 500 ms relayed by hybrid gossip every 200 ms):
* false positives: suspicions of healthy members per node-hour over `--fp-seconds`;
* detection: a node is crashed; time to its first suspicion anywhere and to death at every
  survivor (dead_after_ms = 2000), mean of `--crashes` runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import load, save  # noqa: E402

from gossipmq.core.config import parse_config  # noqa: E402
from gossipmq.core.effects import MemberChanged  # noqa: E402
from gossipmq.core.plugins import build_registry, make_plugin_manager  # noqa: E402
from gossipmq.transports.memory import MemoryNetwork, make_nodes  # noqa: E402

REGISTRY = build_registry(make_plugin_manager())


class StampedNetwork(MemoryNetwork):
    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.stamped: list[tuple[float, str, MemberChanged]] = []

    def _apply(self, address, effects) -> None:  # type: ignore[no-untyped-def]
        for effect in effects:
            if isinstance(effect, MemberChanged):
                self.stamped.append((self.now, address, effect))
        super()._apply(address, effects)


def build(n: int, threshold: float, loss: float, seed: int, pause_ms: int) -> StampedNetwork:
    cfg = parse_config({"failure_detection": {"strategy": "phi", "threshold": threshold, "interval_ms": 500,
                                              "dead_after_ms": 2000, "acceptable_pause_ms": pause_ms},
                        "dissemination": {"strategy": "hybrid", "fanout": 3, "interval_ms": 200}}, REGISTRY)
    net = StampedNetwork(seed=seed, latency=(0.001, 0.020), loss=loss)
    nodes = make_nodes(cfg, REGISTRY, n, seed=seed, prefill=True)
    for node in nodes:
        net.add(node)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--fp-seconds", type=float, default=600.0)
    ap.add_argument("--crashes", type=int, default=3)
    ap.add_argument("--pause-ms", type=int, default=0,
                    help="acceptable_pause_ms (0 shows phi's own trade-off; the plugin default is 500)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16])
    args = ap.parse_args()
    rows = []
    print(f"{'phi':>4} {'false susp/node-h':>18} {'false deaths/node-h':>20} {'first susp (s)':>15} "
          f"{'dead all (s)':>13}", flush=True)
    for threshold in args.thresholds:
        net = build(args.nodes, threshold, args.loss, seed=1, pause_ms=args.pause_ms)
        net.run_for(30.0)
        net.stamped.clear()
        net.run_for(args.fp_seconds)
        hours = args.nodes * args.fp_seconds / 3600
        fs = sum(1 for _, _, e in net.stamped if e.reason == "suspected") / hours
        fd = sum(1 for _, _, e in net.stamped if e.reason == "failed") / hours
        first, dead_all = [], []
        for c in range(args.crashes):
            net = build(args.nodes, threshold, args.loss, seed=100 + c, pause_ms=args.pause_ms)
            net.run_for(30.0)
            victim = f"n{1 + c}"
            t0 = net.now
            net.crash(f"mem://{victim}")
            net.stamped.clear()
            net.run_for(60.0)
            ev = [(t - t0, obs, e) for t, obs, e in net.stamped if e.member["id"] == victim]
            susp = [t for t, _, e in ev if e.reason == "suspected"]
            dead = {obs: t for t, obs, e in ev if e.reason == "failed"}
            if susp:
                first.append(min(susp))
            if len(dead) == args.nodes - 1:
                dead_all.append(max(dead.values()))
        row = {"threshold": threshold, "false_suspicions_per_node_hour": fs, "false_deaths_per_node_hour": fd,
               "first_suspicion_s": statistics.mean(first) if first else None,
               "dead_all_s": statistics.mean(dead_all) if dead_all else None}
        rows.append(row)
        fmt = lambda v: f"{v:.2f}" if v is not None else "n/a"  # noqa: E731
        print(f"{threshold:>4g} {fs:>18.1f} {fd:>20.2f} {fmt(row['first_suspicion_s']):>15} "
              f"{fmt(row['dead_all_s']):>13}", flush=True)
    print(f"({args.nodes} nodes, {args.loss:.0%} loss, acceptable_pause_ms {args.pause_ms}, "
          f"{args.fp_seconds:.0f}s per threshold for false positives, "
          f"{args.crashes} crashes per threshold; {load()})")
    data = {"nodes": args.nodes, "loss": args.loss, "pause_ms": args.pause_ms, "fp_seconds": args.fp_seconds,
            "rows": rows, "load": load()}
    print(f"saved {save('b7_phi_curve', data)}")


if __name__ == "__main__":
    main()

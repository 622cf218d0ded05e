"""What quiet rounds cost news: time for a write into an idle cluster to reach every node, with
quiet rounds (`idle_resync_ms` 1000, the default) and without (0), per dissemination mode.

    python benchmarks/quiet_rounds_latency.py                     # 50 and 200 nodes, hybrid
    python benchmarks/quiet_rounds_latency.py --nodes 50 --modes hybrid push pull

In-process network (transports/memory.py: the real kernels, virtual time, 5 ms links), SWIM
detection (its pings and acks carry every node's checksum, as on real nodes), fanout 3, rounds
every 200 ms. The cluster idles 30 s, then each of `--writes` writes comes from a different node
and is followed by 20 s of idle; the figure is the median (and max) virtual time until every node
holds it. Deterministic for a seed; a few seconds per cell at 50 nodes, a minute at 200.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REGISTRY, print_table

from gossipmq.core.config import parse_config
from gossipmq.transports.memory import MemoryNetwork, make_nodes


def time_to_all(n: int, mode: str, resync_ms: int, writes: int, seed: int) -> tuple[float, float]:
    doc = {"dissemination": {"strategy": mode, "fanout": 3, "interval_ms": 200, "idle_resync_ms": resync_ms},
           "failure_detection": {"strategy": "swim"}}
    net = MemoryNetwork(seed=seed, encode=False)
    addrs = [net.add(node).address for node in make_nodes(parse_config(doc, REGISTRY), REGISTRY, n, seed=seed)]
    if not net.wait_for(lambda: all(len(x.members.reachable_ids()) == n - 1 for x in net.nodes.values()), 60.0):
        raise SystemExit(f"{n} nodes did not form a cluster in 60 virtual seconds")
    net.run_for(30.0)
    times = []
    for w in range(writes):
        key, start = f"k{w}", net.now
        net.put(addrs[(w * 7) % n], key, "v")
        reached = net.wait_for(lambda: all(x.store.get(key) is not None for x in net.nodes.values()), 20.0)
        times.append(net.now - start if reached else float("inf"))
        net.run_for(20.0)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--modes", nargs="+", default=["hybrid"], choices=["hybrid", "push", "pull"])
    ap.add_argument("--writes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for n in args.nodes:
        for mode in args.modes:
            quiet, every = (time_to_all(n, mode, ms, args.writes, args.seed) for ms in (1000, 0))
            rows.append([n, mode, f"{quiet[0]:.3f} (max {quiet[1]:.3f})", f"{every[0]:.3f} (max {every[1]:.3f})",
                         f"{quiet[0] / every[0]:.2f}"])
            print(f"  n={n} {mode}: quiet {quiet}, every pick {every}", flush=True)
    print(f"\n# time to every node after a write into an idle cluster (virtual s, median of {args.writes})")
    print_table(["nodes", "mode", "quiet rounds (default)", "idle_resync_ms = 0", "ratio"], rows)


if __name__ == "__main__":
    main()

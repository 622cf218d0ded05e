"""B5 in simulation: detection latency at n = 1000 (in-memory network, virtual time, the same
kernel and `swim` plugin as real nodes) against the memberlist LAN model numbers.

    python benchmarks/b5_sim.py --nodes 1000 --kills 8

Member tables start complete (no join phase: this measures detection, not joining). A node
is crashed every `--spacing` virtual seconds; for each we record the first suspicion at any
node, the first death verdict and the time by which every survivor holds it dead.
Latency 1-5 ms per message, no loss, LAN timings (probe 1 s / timeout 500 ms / 3 indirect /
suspicion mult 4 / max mult 6), hybrid dissemination every 200 ms to 3 peers.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import load, pct, save  # noqa: E402

from gossipmq.core.config import parse_config  # noqa: E402
from gossipmq.core.effects import (  # noqa: E402
    MemberChanged,  # noqa: E402
    Schedule,
    Send,
)
from gossipmq.core.plugins import build_registry, make_plugin_manager  # noqa: E402
from gossipmq.transports.memory import MemoryNetwork, make_nodes  # noqa: E402

MODEL = {"first_suspicion_mean_s": 2.0, "first_suspicion_p99_s": 5.5, "dead_all_median_s": 15.3,
         "dead_all_p99_s": 19.3}


class StampedNetwork(MemoryNetwork):
    """Keeps (virtual time, observer, event) for member events only, to save memory."""

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.stamped: list[tuple[float, str, MemberChanged]] = []

    def _apply(self, address, effects) -> None:  # type: ignore[no-untyped-def]
        kept = []
        for effect in effects:
            if isinstance(effect, MemberChanged):
                self.stamped.append((self.now, address, effect))
            elif isinstance(effect, (Send, Schedule)):
                kept.append(effect)   # other events (rounds, notices) are not needed here
        super()._apply(address, kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--spacing", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    registry = build_registry(make_plugin_manager())
    cfg = parse_config({"failure_detection": {"strategy": "swim", "probe_interval_ms": 1000, "probe_timeout_ms": 500,
                                              "indirect_checks": 3, "suspicion_mult": 4, "suspicion_max_mult": 6},
                        "dissemination": {"strategy": "hybrid", "fanout": 3, "interval_ms": 200}}, registry)
    wall = time.time()
    net = StampedNetwork(seed=args.seed, latency=(0.001, 0.005))
    n = args.nodes
    nodes = make_nodes(cfg, registry, n, seed=args.seed, prefill=True)
    for node in nodes:
        net.add(node)
    print(f"{n} nodes built in {time.time() - wall:.0f}s wall; warming up", flush=True)
    net.run_for(5.0)
    rows = []
    for k in range(args.kills):
        victim = f"n{1 + k * (n // (args.kills + 1))}"
        t0 = net.now
        net.crash(f"mem://{victim}")
        survivors = n - 1 - k
        start = time.time()

        def dead_everywhere() -> bool:
            return all((m := nd.members.get(victim)) is None or m.status == "dead" for nd in net.nodes.values())

        net.run_for(args.spacing)
        events = [(t - t0, obs, ev) for t, obs, ev in net.stamped if t >= t0 and ev.member["id"] == victim]
        susp = [t for t, _, ev in events if ev.reason == "suspected"]
        dead = {obs: t for t, obs, ev in events if ev.reason == "failed"}
        row = {"victim": victim, "first_suspicion_s": min(susp) if susp else None,
               "dead_at_one_s": min(dead.values()) if dead else None,
               "dead_at_all_s": max(dead.values()) if len(dead) == survivors else None,
               "dead_observers": len(dead), "survivors": survivors}
        assert dead_everywhere() == (row["dead_at_all_s"] is not None)
        rows.append(row)
        net.stamped.clear()
        print(f"kill {k + 1}: {victim}: first suspicion {row['first_suspicion_s']}, dead at one {row['dead_at_one_s']}, "
              f"dead at all {row['dead_at_all_s']} ({len(dead)}/{survivors}); {time.time() - start:.0f}s wall",
              flush=True)
    first = [r["first_suspicion_s"] for r in rows if r["first_suspicion_s"] is not None]
    allv = [r["dead_at_all_s"] for r in rows if r["dead_at_all_s"] is not None]
    summary = {"first_suspicion_mean_s": statistics.mean(first), "first_suspicion_p99_s": pct(first, 0.99),
               "dead_all_median_s": statistics.median(allv) if allv else None, "dead_all_p99_s": pct(allv, 0.99),
               "dead_at_one_median_s": statistics.median([r["dead_at_one_s"] for r in rows])}
    print(f"\nB5 simulation, n = {n}, {len(rows)} crashes ({load()}, {time.time() - wall:.0f}s wall)")
    print(f"{'metric':<26}{'measured':>10}{'model':>8}")
    for key, model in MODEL.items():
        value = summary[key]
        print(f"{key:<26}{value:>10.2f}{model:>8.1f}" if value is not None else f"{key:<26}{'n/a':>10}{model:>8.1f}")
    print(f"{'dead_at_one_median_s':<26}{summary['dead_at_one_median_s']:>10.2f}")
    print(f"saved {save(f'b5_sim_n{n}', {'nodes': n, 'rows': rows, 'summary': summary, 'model': MODEL, 'load': load()})}")


if __name__ == "__main__":
    main()

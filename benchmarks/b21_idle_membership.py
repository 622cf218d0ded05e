"""B21: idle cost and membership of 20 real nodes with the LAN preset (issue #14; formerly lan20.py).

    python benchmarks/b21_idle_membership.py                       # 20 nodes, ~3 min alone
    python benchmarks/b21_idle_membership.py --nodes 8 --idle 10 --kills 1 --trials 3 --force   # quick

20 `gossipctl run` processes on 127.0.0.1 with configs/lan.toml (SWIM + Lifeguard, memberlist's
LAN timings), one seed. Phases, each with /proc/loadavg recorded at its start and end:

1. membership converged after the last node is ready: from the nodes' logs, the moment the last
   node saw its last peer join, minus the last node's "listening" line;
2. idle CPU per node: utime + stime from /proc/<pid>/stat over --idle seconds, reported as seconds
   of CPU per 20 s; the harness sends nothing to the nodes during the window (it only reads /proc
   at both ends), so the figure is net of the harness; false suspicions (suspected/failed events
   about live members) in that window, which should be 0; resident memory per node;
3. a new key visible on all nodes: a put on one node, then `get` on every node concurrently (a
   DEALER each) every --poll s until all have it; median over --trials puts;
4. kill -9 of one node -> every survivor marks it dead (log event times), median over --kills;
   the victim restarts and the cluster reconverges between kills.

Healthy nodes suspected at any time in the run are also counted. Writes benchmarks/out/b21.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    LoadGuard,
    Progress,
    add_guard_options,
    figure,
    print_figures,
    read_loadavg,
    save_report,
)
from procs import Cluster, ControlPool

ROOT = Path(__file__).resolve().parents[1]


def wait_converged(pool: ControlPool, nodes: list[str], timeout: float, what: str) -> float:
    """Seconds until every node in `nodes` lists exactly those as alive (polled every 0.1 s)."""
    start = time.monotonic()
    want = set(nodes)
    while time.monotonic() - start < timeout:
        views = pool.ask({"cmd": "members"}, nodes)
        if len(views) == len(nodes) and all(
                isinstance(v, list) and {m["id"] for m in v if m["status"] == "alive"} == want for v in views.values()):
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def converged_after_last_ready(cluster: Cluster) -> tuple[float, float]:
    """(converged after the last node listened, spread of the starts) from the logs."""
    last_start = max(cluster.listening_at(n) or 0.0 for n in cluster.ids)
    full_at = []
    for n in cluster.ids:
        joined: dict[str, float] = {}
        for t, _, member, _reason, status, _ in cluster.events(n):
            if status == "alive" and member not in joined:
                joined[member] = t
        full_at.append(max(joined.values()))
    return max(full_at) - last_start, last_start - (cluster.listening_at(cluster.ids[0]) or last_start)


def idle_window(cluster: Cluster, seconds: float) -> dict[str, Any]:
    """Idle CPU per node over `seconds` with no requests to any node; events in the window."""
    import resource
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.time()
    cpu0 = {n: cluster.cpu_seconds(n) for n in cluster.ids}
    t0 = time.monotonic()
    progress = Progress("B21 idle window", total=seconds)
    while (left := seconds - (time.monotonic() - t0)) > 0:
        time.sleep(min(1.0, left))
        progress.update(time.monotonic() - t0, "s (no requests to the nodes)")
    span = time.monotonic() - t0
    cpu = {n: cluster.cpu_seconds(n) - cpu0[n] for n in cluster.ids}
    wall1 = time.time()
    progress.close()
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    events = [e for n in cluster.ids for e in cluster.events(n) if wall0 <= e[0] <= wall1
              and e[3] in ("suspected", "failed")]
    per20 = [20 * c / span for c in cpu.values()]
    rss = [cluster.rss_mib(n) for n in cluster.ids]
    return {"span_s": span, "cpu_s_per_20s": dict(zip(cluster.ids, per20)),
            "cpu_s_per_20s_mean": statistics.mean(per20), "cpu_s_per_20s_max": max(per20),
            "cpu_pct_mean": 100 * statistics.mean(per20) / 20, "harness_cpu_s": (me1.ru_utime + me1.ru_stime)
            - (me0.ru_utime + me0.ru_stime), "false_suspicions": sum(1 for e in events if e[3] == "suspected"),
            "false_deaths": sum(1 for e in events if e[3] == "failed"), "events": events,
            "rss_mib_mean": statistics.mean(rss), "rss_mib_max": max(rss)}


def new_key_latency(pool: ControlPool, ids: list[str], trials: int, poll: float, interval: float) -> list[float]:
    """Seconds from a put's acknowledgement until every node serves the key, per trial."""
    samples = []
    for t in range(trials):
        writer = ids[(1 + 3 * t) % len(ids)]
        key = f"b21/{time.time_ns()}/{t}"
        pool.ask({"cmd": "put", "key": key, "value": t}, [writer])
        start = time.monotonic()
        pending = [n for n in ids if n != writer]
        while pending and time.monotonic() - start < 10:
            got = pool.ask({"cmd": "get", "key": key}, pending)
            pending = [n for n in pending if got.get(n) is None]
            if pending:
                time.sleep(poll)
        if pending:
            raise TimeoutError(f"{key} did not reach {len(pending)} nodes within 10 s")
        samples.append(time.monotonic() - start)
        time.sleep(interval * 1.37)   # decorrelate from the round phase
    return samples


def kill_trials(cluster: Cluster, pool: ControlPool, kills: int) -> tuple[list[dict[str, Any]], set[tuple[str, int]]]:
    out: list[dict[str, Any]] = []
    killed_lives: set[tuple[str, int]] = set()
    n = len(cluster.ids)
    for k in range(kills):
        victim = cluster.ids[1 + k * 5 % (n - 1)]
        survivors = [x for x in cluster.ids if x != victim]
        inc = next(m["incarnation"] for m in pool.ask({"cmd": "members"}, survivors[:1])[survivors[0]]
                   if m["id"] == victim)
        killed_lives.add((victim, inc))
        t_kill = cluster.kill(victim)
        start = time.monotonic()
        while time.monotonic() - start < 60:
            views = pool.ask({"cmd": "members"}, survivors)
            if len(views) == len(survivors) and all(
                    any(m["id"] == victim and m["status"] == "dead" for m in v) for v in views.values()):
                break
            time.sleep(0.25)
        else:
            raise TimeoutError(f"{victim} was not dead everywhere within 60 s (logs in {cluster.dir})")
        dead = {e[1]: e[0] - t_kill for s in survivors for e in cluster.events(s)
                if e[2] == victim and e[5] == inc and e[3] == "failed" and e[0] >= t_kill}
        out.append({"victim": victim, "dead_at_one_s": min(dead.values()), "dead_at_all_s": max(dead.values())})
        print(f"kill {k + 1}: {victim} dead at every survivor after {max(dead.values()):.2f}s", flush=True)
        cluster.start(victim)
        wait_converged(pool, cluster.ids, 60, "the restarted victim")
    return out, killed_lives


def phases(args: argparse.Namespace, guard: LoadGuard, cluster: Cluster, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the four phases on a started cluster; the figures (missing where a phase was refused)."""
    figures: list[dict[str, Any]] = []
    nn = "" if args.nodes == 20 else f"n = {args.nodes}, not 20; "
    full = args.nodes == 20
    with guard.measure("B21 start and membership convergence") as m_conv:
        if m_conv.refused:
            return [figure(f, None, m_conv) for f in ("b21_converged", "b21_idle_cpu", "b21_false_suspicions",
                                                      "b21_new_key", "b21_dead_all")]
        cluster.start_all()
        pool = cluster.pool(timeout=3.0)
        cluster.wait(lambda: all(cluster.listening_at(n) for n in cluster.ids), 60, "every node to listen", 0.2)
        wait_converged(pool, cluster.ids, 60, "membership to converge")
        conv, spread = converged_after_last_ready(cluster)
    try:
        result.update(converged_after_last_ready_s=conv, start_spread_s=spread)
        figures.append(figure("b21_converged", conv, m_conv, nn + f"starts spread over {spread:.1f} s", full))
        print(f"converged {conv:.2f}s after the last node was ready (starts spread over {spread:.1f}s; "
              f"load {m_conv.loads()})", flush=True)
        time.sleep(5)
        with guard.measure("B21 idle window") as m_idle:
            idle = None if m_idle.refused else idle_window(cluster, args.idle)
        if idle is not None:
            result["idle"] = idle
            print(f"idle CPU per node {idle['cpu_s_per_20s_mean']:.3f} s per 20 s mean ({idle['cpu_pct_mean']:.2f}% "
                  f"of a core), max {idle['cpu_s_per_20s_max']:.3f}; harness {idle['harness_cpu_s']:.2f} s in the "
                  f"window; false suspicions {idle['false_suspicions']}, false deaths {idle['false_deaths']}; RSS "
                  f"{idle['rss_mib_mean']:.1f} MiB mean / {idle['rss_mib_max']:.1f} max (load {m_idle.loads()})",
                  flush=True)
        figures.append(figure("b21_idle_cpu", idle and idle["cpu_s_per_20s_mean"], m_idle,
                              nn + f"max {idle['cpu_s_per_20s_max']:.3f}" if idle else "", full))
        figures.append(figure("b21_false_suspicions", idle and idle["false_suspicions"], m_idle,
                              f"{idle['false_deaths']} false deaths" if idle else ""))
        with guard.measure("B21 new key visible everywhere") as m_key:
            samples = None if m_key.refused else new_key_latency(pool, cluster.ids, args.trials, args.poll,
                                                                  args.interval)
        if samples:
            result["new_key_s"] = samples
            print(f"new key visible on all {args.nodes} nodes: median {statistics.median(samples):.3f}s, max "
                  f"{max(samples):.3f}s over {len(samples)} puts (load {m_key.loads()})", flush=True)
        figures.append(figure("b21_new_key", samples and statistics.median(samples), m_key,
                              nn + f"max {max(samples):.3f} s of {len(samples)}" if samples else "", full))
        if args.kills:
            with guard.measure("B21 kill -9 detection") as m_kill:
                kills, killed = ([], set()) if m_kill.refused else kill_trials(cluster, pool, args.kills)
            med = statistics.median(k["dead_at_all_s"] for k in kills) if kills else None
            result.update(kills=kills, dead_all_median_s=med)
            figures.append(figure("b21_dead_all", med, m_kill, nn + f"max {max(k['dead_at_all_s'] for k in kills):.2f}"
                                                                    f" s of {len(kills)}" if kills else "", full))
            events = [e for n in cluster.ids for e in cluster.events(n)]
            false = [e for e in events if e[3] in ("suspected", "failed") and (e[2], e[5]) not in killed]
            result.update(false_suspicions_whole_run=sum(1 for e in false if e[3] == "suspected"),
                          false_deaths_whole_run=sum(1 for e in false if e[3] == "failed"))
            print(f"healthy nodes suspected during the whole run: {result['false_suspicions_whole_run']} "
                  f"(false deaths {result['false_deaths_whole_run']})")
    finally:
        pool.close()
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement")
    ap.add_argument("--trials", type=int, default=5, help="puts timed until visible on every node")
    ap.add_argument("--poll", type=float, default=0.01, help="get poll period while waiting for a key (s)")
    ap.add_argument("--interval", type=float, default=0.2, help="the config's gossip interval (spaces the puts)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "lan.toml")
    add_guard_options(ap)
    args = ap.parse_args()
    guard = LoadGuard(args.force, args.settle)
    print(f"# B21 idle and membership: {args.nodes} nodes ({args.config.name}); {read_loadavg()['raw']} (/proc/loadavg)",
          flush=True)
    result: dict[str, Any] = {"nodes": args.nodes, "config": str(args.config)}
    cluster = Cluster(args.config, args.nodes)
    try:
        figures = phases(args, guard, cluster, result)
    finally:
        cluster.close()
    result["logs"] = str(cluster.dir)
    print_figures(figures, "B21 against issue #14")
    print(f"saved {save_report('b21', args, figures, guard, **result)}")
    print(f"# {read_loadavg()['raw']} (/proc/loadavg at the end)")


if __name__ == "__main__":
    main()

"""B20: replicated write throughput of 5 real `gossipctl run` nodes on loopback (issue #14).

    python benchmarks/b20_write_throughput.py                                 # full sweep, ~15 min alone
    python benchmarks/b20_write_throughput.py --rates 2000,4000 --duration 3 --force   # quick check
    python benchmarks/b20_write_throughput.py --profile pyinstrument --modes one --rates 4000 --duration 10
    python benchmarks/b20_write_throughput.py --batch 64 --rates 8000,16000,24000,32000   # put_many clients
    python benchmarks/b20_write_throughput.py --modes one --rates 8000 --pull-peers 1     # pull from 1 peer a round

For each mode - (a) `one`: every put into n0, (b) `spread`: puts round robin over all nodes -
and each target rate, a fresh cluster (configs/hybrid.toml: hybrid dissemination, 200 ms rounds,
anti-entropy every 5 s) takes an open-loop load for --duration seconds from a pipelined generator
(benchmarks/loadgen.py: DEALERs on the control endpoints, up to --window puts in flight per client
process). Per run it reports writes acknowledged/s, client put latency p50/p99 (from the time each
put was due, so a node that falls behind shows it), the time from the last acknowledgement until
every node holds every key (status key counts and checksums agree, polled every 50 ms), CPU
seconds per replicated write per node (/proc/<pid>/stat utime + stime from the first put to
caught up, divided by writes acknowledged), and whether any peer suspected or declared a writer
dead (member events in the nodes' logs): issue #14's "collapse under load" check.

A run passes when acked/s >= 95 % of the target, every node caught up within --caught-up-within s
(2 s), no writer was suspected and no put failed; the sustained rate of a mode is the highest rate
whose repeats all passed. Rates above it are the overload cases: a table shows how the backlog at
the last write and the catch-up time grow with the overload.

Before the sweep it measures the generator's own ceiling (against null echo servers) and, in this
process with the real codec, the kernel's costs: `Node.put` on a writer, answering a syn with a
64-entry delta, and decoding + applying one entry of a 64-entry delta on a receiver; from them the
per-core ceiling, printed beside what the cluster reached.

`--batch N` makes the generator a bulk writer: N puts per `put_many` request (one round trip, one
commit and one set of sends for all of them; docs/embedding.md `put_many`, `gossipctl load`); the
replication path and every pass criterion stay the same. Its outputs are named b20_batchN.*.

Writes benchmarks/out/b20.json, b20.csv and b20.png (with matplotlib). --profile runs the writer
(n0) and one receiver (n1) under a profiler and prints their top functions (benchmarks/out/profile/).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OUT,
    REGISTRY,
    LoadGuard,
    Measurement,
    Progress,
    add_guard_options,
    figure,
    fmt,
    print_figures,
    print_table,
    read_loadavg,
    save_report,
    warn,
    write_csv,
)
from loadgen import Clients, ceiling, merge
from procs import Cluster, ControlPool

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.config import load_config
from gossipmq.core.effects import Send
from gossipmq.core.messages import Envelope, Syn
from gossipmq.core.node import Node

ROOT = Path(__file__).resolve().parents[1]
PASS_ACKED = 0.95   # a run must acknowledge this share of its target rate


# ---- the kernel alone ---------------------------------------------------------------------
def kernel_costs(config: Path, value_bytes: int, batches: int = 300, batch: int = 64) -> dict[str, float]:
    """Microseconds per write/entry of the kernel's own work, with the real codec, no runtime:
    put (Node.put), control (decoding the typed request + the put + the orjson reply),
    send (a syn answered with a `batch`-entry delta, encoded), apply (decode + apply on a receiver)."""
    import orjson

    from gossipmq.core.resolution import Op
    from gossipmq.transports.control import decode_request
    cfg = load_config(config, REGISTRY)
    writer = Node.from_config(cfg.with_node(id="w", bind="tcp://127.0.0.1:1", advertise="tcp://127.0.0.1:1"),
                              REGISTRY, incarnation=1)
    receiver = Node.from_config(cfg.with_node(id="r", bind="tcp://127.0.0.1:2", advertise="tcp://127.0.0.1:2"),
                                REGISTRY, incarnation=1)
    ctl = Node.from_config(cfg.with_node(id="c", bind="tcp://127.0.0.1:3", advertise="tcp://127.0.0.1:3"),
                           REGISTRY, incarnation=1)
    now = 1000.0
    for node in (writer, receiver, ctl):
        node.start(now)
    value = "x" * value_bytes
    warm = batches // 10
    t_put = t_ctl = t_send = t_apply = 0.0
    entries = 0
    frame_bytes = 0
    for j in range(batches):
        mark = writer.store.watermarks.get(writer.origin, 0)
        keys = [f"b20/k/{j}/{i}" for i in range(batch)]
        requests = [orjson.dumps({"cmd": "put", "key": k, "value": value}) for k in keys]
        t0 = time.perf_counter()
        for key in keys:
            writer.put(now, key, value)
        t1 = time.perf_counter()
        for raw in requests:   # what the control loop does per request, minus asyncio and ZeroMQ
            req = decode_request(raw)
            entry, _ = ctl.mutate(now, req.key, Op("put", req.value))   # type: ignore[attr-defined]
            orjson.dumps({"ok": True, "result": {"key": req.key, "origin": "c", "counter": entry.counter}})
        t2 = time.perf_counter()
        syn = Envelope(type="syn", src="r", addr=receiver.address, inc=receiver.inc,
                       body=Syn("push-pull", {writer.origin: mark} if mark else {}))
        sends = [e for e in writer.handle_message(now, syn) if isinstance(e, Send) and e.envelope.type == "syn_ack"]
        frames = encode_envelope(sends[0].envelope)
        t3 = time.perf_counter()
        receiver.handle_message(now, decode_frames(frames, receiver.bodies, receiver.gossip.max_frame_bytes,
                                                   limits=receiver.limits))
        t4 = time.perf_counter()
        if len(sends[0].envelope.body.entries) != batch:
            raise RuntimeError(f"expected a {batch}-entry delta, got {len(sends[0].envelope.body.entries)}")
        if j >= warm:
            t_put += t1 - t0
            t_ctl += t2 - t1
            t_send += t3 - t2
            t_apply += t4 - t3
            entries += batch
            frame_bytes = len(frames[1])
        now += 0.001
    if receiver.store.live_keys != batches * batch:
        raise RuntimeError("the receiver did not apply every entry")
    us = 1e6 / entries
    return {"put_us": t_put * us, "control_us": t_ctl * us, "send_us": t_send * us, "apply_us": t_apply * us,
            "delta_frame_bytes": frame_bytes, "batch": batch, "value_bytes": value_bytes}


def ceilings(k: dict[str, float], nodes: int, cores: int) -> dict[str, float]:
    """Writes/s the kernel's own costs allow. Every write costs control (put included) once on its
    writer, and one send + one apply for each of the other nodes (each gets it once, ideally)."""
    per_write = k["control_us"] + (nodes - 1) * (k["send_us"] + k["apply_us"])
    return {"writer_core": 1e6 / k["control_us"], "receiver_core": 1e6 / k["apply_us"],
            "cluster_us_per_write": per_write, "per_core": 1e6 / per_write,
            "machine": cores * 1e6 / per_write, "floor_us_per_write_per_node": per_write / nodes}


# ---- one run on a fresh cluster -----------------------------------------------------------
def wait_members(pool: ControlPool, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = pool.ask({"cmd": "status"})
        if len(st) == n and all(isinstance(s, dict) and s["members"].get("alive") == n for s in st.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"membership of {n} nodes did not converge within {timeout} s")


def note_members(worst: dict[str, int], status: dict[str, Any]) -> None:
    """Keep the most suspect/dead members any node reported so far."""
    for st in status.values():
        if isinstance(st, dict):
            for state, seen in worst.items():
                worst[state] = max(seen, st["members"].get(state, 0))


def run_once(args: argparse.Namespace, mode: str, rate: int, rep: int, m: Measurement) -> dict[str, Any]:
    cluster = Cluster(args.config, args.nodes, log_level="info", keep_dir=args.keep_logs)
    if args.profile:
        prof_dir = OUT / "profile"
        prof_dir.mkdir(parents=True, exist_ok=True)
        for node_id in args.profile_nodes.split(","):
            out = prof_dir / f"b20-{mode}-{rate}-{node_id}"
            for stale in prof_dir.glob(f"{out.name}.*"):
                stale.unlink()
            cluster.launchers[node_id] = [sys.executable, str(Path(__file__).with_name("profile_node.py")),
                                          "--tool", args.profile, "--timer", args.profile_timer, "--out", str(out), "--"]
    pool: ControlPool | None = None
    gen: Clients | None = None
    row: dict[str, Any] = {"mode": mode, "rate": rate, "repeat": rep + 1}
    try:
        cluster.start_all()
        pool = cluster.pool(timeout=3.0)
        wait_members(pool, args.nodes, 30)
        time.sleep(args.warmup)
        writers = cluster.ids[:1] if mode == "one" else list(cluster.ids)
        targets = [[cluster.ctl[w] for w in writers]]
        cpu0 = {n: cluster.cpu_seconds(n) for n in cluster.ids}
        wall0 = time.time()
        gen = Clients(args.clients, targets, rate, args.duration, args.window, f"b20/{mode}/{rate}/{rep}/",
                      "x" * args.value_bytes, tick=args.tick_ms / 1000, batch=args.batch)
        progress = Progress(f"B20 {mode} {rate:,}/s", total=rate * args.duration, every=5)
        worst = {"suspect": 0, "dead": 0}
        while gen.running():
            time.sleep(1.0)
            sent, acked = gen.progress()
            st = pool.ask({"cmd": "status"})
            keys = [s["keys"] if isinstance(s, dict) else -1 for s in st.values()]
            note_members(worst, st)
            progress.update(acked, f"acked; sent {sent:,}; keys per node {keys}; suspect/dead seen "
                                   f"{worst['suspect']}/{worst['dead']}")
        progress.close()
        load = merge(gen.results(timeout=args.duration + 60))
        row.update({k: load[k] for k in ("sent", "acked", "errors", "unanswered", "acked_per_s", "sent_per_s",
                                         "p50_ms", "p99_ms", "max_ms", "p50_from_send_ms", "p99_from_send_ms",
                                         "behind_max_s", "generator_cpu_pct", "first_error")})
        # catch-up: every node holds every key (equal counts >= acked, equal checksums)
        t_last = load["last_ack"]
        backlog = None
        caught = None
        deadline = time.monotonic() + args.catchup_timeout
        keys: dict[str, int] = {}
        while time.monotonic() < deadline:
            st = pool.ask({"cmd": "status"})
            keys = {n: s["keys"] for n, s in st.items() if isinstance(s, dict)}
            sums = {s["checksum"] for s in st.values() if isinstance(s, dict)}
            if backlog is None and len(keys) == args.nodes:
                backlog = sum(max(keys.values()) - v for v in keys.values())
            note_members(worst, st)
            if (len(keys) == args.nodes and len(set(keys.values())) == 1 and min(keys.values()) >= load["acked"]
                    and len(sums) == 1):
                caught = time.monotonic() - t_last
                break
            time.sleep(args.poll)
        cpu = {n: cluster.cpu_seconds(n) - cpu0[n] for n in cluster.ids}
        acked = max(1, load["acked"])
        receivers = [n for n in cluster.ids if n not in writers]
        events = [e for n in cluster.ids for e in cluster.events(n) if e[0] >= wall0 and e[3] in ("suspected", "failed")]
        on_writers = [e for e in events if e[2] in writers]
        writer_status = pool.ask({"cmd": "status"}, writers[:1]).get(writers[0])
        # copies of each write a receiver decoded and ran through apply (push-pull's concurrent
        # exchanges deliver some twice); the redundant ones changed nothing
        infos = pool.ask({"cmd": "info"}, receivers) if receivers else {}
        counters = [i["counters"] for i in infos.values() if isinstance(i, dict)]
        row.update(
            catchup_s=caught, backlog_keys_at_last_ack=backlog, keys_at_end=keys,
            cpu_s=cpu, cpu_us_per_write_per_node=1e6 * sum(cpu.values()) / len(cpu) / acked,
            cpu_us_per_write_writer=1e6 * statistics.mean(cpu[w] for w in writers) / acked,
            cpu_us_per_write_receiver=1e6 * statistics.mean(cpu[r] for r in receivers) / acked if receivers else None,
            copies_per_write_receiver=statistics.mean(c.get("entries_received", 0) for c in counters) / acked
            if counters else None,
            redundant_per_write_receiver=statistics.mean(c.get("entries_redundant", 0) for c in counters) / acked
            if counters else None,
            suspected_writer=sum(1 for e in on_writers if e[3] == "suspected"),
            failed_writer=sum(1 for e in on_writers if e[3] == "failed"),
            suspected_any=sum(1 for e in events if e[3] == "suspected"), members_worst=worst,
            writer_status={k: writer_status.get(k) for k in ("messages_in", "messages_out", "bytes_in", "bytes_out",
                                                             "deferred_bytes", "dropped", "send_blocked")}
            if isinstance(writer_status, dict) else None,
            logs=str(cluster.dir) if args.keep_logs else None)
        row["passed"] = bool(load["acked_per_s"] >= PASS_ACKED * rate and caught is not None
                             and caught <= args.caught_up_within and not on_writers and not load["errors"])
        return row
    finally:
        if gen is not None:
            gen.kill()
        if pool is not None:
            pool.close()
        cluster.close(timeout=180 if args.profile else 5)   # a profiled node writes its profile on the way out
        m.end()


# ---- reporting ----------------------------------------------------------------------------
def show_row(r: dict[str, Any]) -> list[Any]:
    if r.get("refused"):
        return [r["mode"], f"{r['rate']:,}", r["repeat"], "not measured: " + r["refused"], *[""] * 9]
    catch = f"{r['catchup_s']:.2f}" if r["catchup_s"] is not None else "> timeout"
    sus = f"{r['suspected_writer']}/{r['failed_writer']}" + (f" (any {r['suspected_any']})" if r["suspected_any"]
                                                              else "")
    rec = fmt(r["cpu_us_per_write_receiver"])
    copies = r.get("copies_per_write_receiver")
    return [r["mode"], f"{r['rate']:,}", r["repeat"], f"{r['acked_per_s']:,.0f}", f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}", catch, f"{r['cpu_us_per_write_per_node']:.1f}",
            f"{r['cpu_us_per_write_writer']:.0f} / {rec}",
            f"{copies:.2f} ({r['redundant_per_write_receiver']:.2f})" if copies is not None else "-",
            sus, f"{r['generator_cpu_pct']:.0f}%",
            ("pass" if r["passed"] else "FAIL") + (" forced" if r.get("forced") else "") + f" (load {r['loads']})"]


HEADERS = ["mode", "target/s", "run", "acked/s", "p50 ms", "p99 ms", "caught up after s", "CPU us/write/node",
           "writer / receiver us", "copies per write at a receiver (redundant)", "writer suspected/failed", "gen CPU",
           "verdict"]


def sustained(rows: list[dict[str, Any]], mode: str) -> tuple[int | None, str]:
    by_rate: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r["mode"] == mode and not r.get("refused"):
            by_rate.setdefault(r["rate"], []).append(r)
    best, note = None, ""
    for rate in sorted(by_rate):
        runs = by_rate[rate]
        passed = sum(1 for r in runs if r["passed"])
        if passed == len(runs):
            best, note = rate, f"{passed} of {len(runs)} runs"
    return best, note


def overload_table(rows: list[dict[str, Any]], mode: str, base: int | None) -> list[dict[str, Any]]:
    measured = [r for r in rows if r["mode"] == mode and not r.get("refused")]
    if not measured:
        return []
    ref = base or min(r["rate"] for r in measured)
    out = []
    for r in sorted(measured, key=lambda r: r["rate"]):
        if base is not None and r["rate"] <= base:
            continue
        drain = (r["backlog_keys_at_last_ack"] / r["catchup_s"]
                 if r["catchup_s"] and r["backlog_keys_at_last_ack"] else None)
        out.append({"mode": mode, "rate": r["rate"], "overload": r["rate"] / ref, "acked_per_s": r["acked_per_s"],
                    "backlog": r["backlog_keys_at_last_ack"], "catchup_s": r["catchup_s"], "drain_keys_per_s": drain,
                    "writer_suspected": r["suspected_writer"] + r["failed_writer"]})
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warn("matplotlib is missing: no b20.png (pip install -e '.[bench]')")
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in sorted({r["mode"] for r in rows}):
        rs = sorted((r for r in rows if r["mode"] == mode and not r.get("refused")), key=lambda r: r["rate"])
        if not rs:
            continue
        ax1.plot([r["rate"] for r in rs], [r["acked_per_s"] for r in rs], "o-", label=mode)
        ax2.plot([r["rate"] for r in rs], [r["catchup_s"] if r["catchup_s"] is not None else math.nan for r in rs],
                 "o-", label=mode)
    top = max((r["rate"] for r in rows), default=1)
    ax1.plot([0, top], [0, top], ":", color="grey", label="offered")
    ax1.set(xlabel="offered puts/s", ylabel="acknowledged puts/s", title="B20 throughput")
    ax2.axhline(2.0, ls=":", color="grey", label="goal 2 s")
    ax2.set(xlabel="offered puts/s", ylabel="s after the last write", title="every node caught up")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def with_pull_peers(config: Path, k: int) -> Path:
    """A copy of `config` (in benchmarks/out/) whose [dissemination] table sets pull_peers = k."""
    lines = config.read_text().splitlines()
    if "[dissemination]" not in lines or any(line.split("=")[0].strip() == "pull_peers" for line in lines):
        raise SystemExit(f"--pull-peers: {config} needs a [dissemination] table without pull_peers")
    at = lines.index("[dissemination]") + 1
    out = OUT / f"{config.stem}-pull{k}.toml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join([*lines[:at], f"pull_peers = {k}", *lines[at:]]) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "hybrid.toml")
    ap.add_argument("--pull-peers", type=int, default=None, metavar="K",
                    help="run --config with [dissemination] pull_peers = K (hybrid: pull from K peers a round)")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--modes", default="one,spread", help="one (all puts into n0), spread (round robin over all)")
    ap.add_argument("--rates", default="2000,4000,8000,12000,16000,24000", help="target puts/s, comma separated")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    ap.add_argument("--repeats", type=int, default=1, help="runs per (mode, rate)")
    ap.add_argument("--window", type=int, default=512, help="puts in flight per generator process")
    ap.add_argument("--clients", type=int, default=1, help="generator processes (the rate is split)")
    ap.add_argument("--batch", type=int, default=1, help="puts per request (> 1: put_many requests, a bulk writer)")
    ap.add_argument("--tick-ms", type=float, default=1.0, help="generator reply collection tick (latency resolution)")
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--warmup", type=float, default=1.0, help="idle seconds between convergence and load")
    ap.add_argument("--caught-up-within", type=float, default=2.0, help="pass criterion (s after the last write)")
    ap.add_argument("--catchup-timeout", type=float, default=60.0)
    ap.add_argument("--poll", type=float, default=0.05, help="status poll period while catching up (s)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip measuring the generator's ceiling")
    ap.add_argument("--no-kernel", action="store_true", help="skip the in-process kernel costs")
    ap.add_argument("--keep-logs", action="store_true", help="keep each run's node logs (temp dir)")
    ap.add_argument("--profile", choices=("cprofile", "pyinstrument"),
                    help="run --profile-nodes under a profiler; prints their top functions (figures not reported)")
    ap.add_argument("--profile-nodes", default="n0,n1", help="nodes to profile (n0 is the writer in mode one)")
    ap.add_argument("--profile-timer", choices=("wall", "cpu"), default="wall",
                    help="pyinstrument timer (see profile_node.py; cpu costs the node about half its capacity)")
    add_guard_options(ap)
    args = ap.parse_args()
    if args.pull_peers is not None:
        args.config = with_pull_peers(args.config, args.pull_peers)
    rates = [int(float(r)) for r in args.rates.split(",")]
    modes = args.modes.split(",")
    guard = LoadGuard(args.force, args.settle)
    cores = os.cpu_count() or 1
    print(f"# B20 replicated write throughput: {args.nodes} nodes ({args.config.name}), {args.duration:g} s per "
          f"run, rates {rates}, modes {modes}, {args.batch} put(s) per request; {read_loadavg()['raw']} (/proc/loadavg) on {cores} cores", flush=True)
    details: dict[str, Any] = {}
    if not args.no_ceiling:
        with guard.measure("generator ceiling") as m:
            gc = None if m.refused else ceiling(args.clients, args.window, 2.0, args.tick_ms / 1000, args.batch)
        if gc is not None:
            details["generator_ceiling"] = {**gc, "load": m.loads()}
            print(f"generator ceiling: {gc['puts_per_s']:,.0f} puts/s with {args.clients} process(es) against null "
                  f"echo servers ({gc['generator_cpu_pct']:.0f}% of a core, busiest process); the highest target "
                  f"{max(rates):,}/s is {max(rates) / gc['puts_per_s']:.0%} of it (load {m.loads()})", flush=True)
            if gc["puts_per_s"] < 1.5 * max(rates):
                warn(f"the generator may limit the top rates: use --clients {args.clients + 1}")
    kernel_m: Measurement | None = None
    if not args.no_kernel:
        with guard.measure("kernel costs (in process)") as kernel_m:
            k = None if kernel_m.refused else kernel_costs(args.config, args.value_bytes)
        if k is not None:
            c = ceilings(k, args.nodes, cores)
            details["kernel"] = {**k, **{f"ceiling_{n}": v for n, v in c.items()}}
            print(f"kernel alone (this process, real codec): put {k['put_us']:.1f} us, control request incl. put "
                  f"{k['control_us']:.1f} us, send (syn -> {k['batch']}-entry delta, encoded) "
                  f"{k['send_us']:.2f} us/entry, decode + apply {k['apply_us']:.1f} us/entry (load {kernel_m.loads()})")
            print(f"  ceilings: writer core {c['writer_core']:,.0f} puts/s; receiver core {c['receiver_core']:,.0f} "
                  f"entries/s; a replicated write costs {c['cluster_us_per_write']:.0f} us of kernel time in the "
                  f"cluster -> {c['per_core']:,.0f} writes/s per core, {c['machine']:,.0f} on {cores} cores; "
                  f"floor {c['floor_us_per_write_per_node']:.1f} us CPU per write per node", flush=True)
    rows: list[dict[str, Any]] = []
    print("\n## B20 runs")
    print("| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS), flush=True)
    try:
        for mode in modes:
            for rate in rates:
                for rep in range(args.repeats):
                    with guard.measure(f"B20 {mode} {rate}/s run {rep + 1}") as m:
                        if m.refused:
                            row = {"mode": mode, "rate": rate, "repeat": rep + 1, "refused": m.refused}
                        else:
                            row = run_once(args, mode, rate, rep, m)
                            row["forced"] = m.forced
                    row["loads"] = m.loads()
                    row["load_start"], row["load_end"] = m.load_start, m.load_end
                    rows.append(row)
                    print("| " + " | ".join(str(c) for c in show_row(row)) + " |", flush=True)
    except KeyboardInterrupt:
        warn("interrupted: reporting the runs so far")
    measured = [r for r in rows if not r.get("refused")]
    summary: dict[str, Any] = {}
    figures: list[dict[str, Any]] = []
    for mode in modes:
        best, note = sustained(rows, mode)
        summary[mode] = {"sustained": best, "note": note}
        print(f"\n{mode}: sustained {best if best is not None else 'none'} writes/s"
              + (f" ({note})" if note else "") + f" - pass = acked >= {PASS_ACKED:.0%} of target, caught up <= "
              f"{args.caught_up_within:g} s, no writer suspected, no failed put")
        over = overload_table(rows, mode, best)
        summary[mode]["overload"] = over
        if over:
            print(f"\n### {mode}: past saturation (overload = target / {'sustained rate' if best else 'lowest rate'})")
            print_table(["target/s", "overload", "acked/s", "backlog at last ack (missing key copies)",
                         "caught up after s", "drain keys/s", "writer suspected+failed"],
                        [[f"{o['rate']:,}", f"{o['overload']:.1f}x", f"{o['acked_per_s']:,.0f}", fmt(o["backlog"]),
                          fmt(o["catchup_s"]) if o["catchup_s"] is not None else "> timeout",
                          fmt(o["drain_keys_per_s"]), o["writer_suspected"]] for o in over])
            steps = [o["catchup_s"] for o in over]
            smooth = all(s is not None for s in steps) and not any(o["writer_suspected"] for o in over)
            print(f"catch-up {'grows without a collapse' if smooth else 'COLLAPSES'} past saturation "
                  f"(finite everywhere and no writer suspected: {smooth})")
    if args.profile:
        from profile_node import print_summary
        suffix = ".prof" if args.profile == "cprofile" else ".pyisession"
        profiles = {}
        for r in measured:
            for node_id in args.profile_nodes.split(","):
                path = OUT / "profile" / f"b20-{r['mode']}-{r['rate']}-{node_id}{suffix}"
                role = "writer" if r["mode"] == "one" and node_id == "n0" else "receiver" if r["mode"] == "one" \
                    else "writer+receiver"
                if path.exists():
                    s = print_summary(f"{node_id} ({role}), {r['mode']} {r['rate']:,}/s", path)
                    profiles[str(path)] = {"busy_s": s["busy_s"], "idle_s": s["idle_s"], "top": s["top"],
                                           "calls": s["calls"]}
                else:
                    warn(f"no profile from {node_id}: it did not exit cleanly (see its log)")
        details["profiles"] = profiles
        print("\n(profiled runs: figures not reported; profiles in benchmarks/out/profile/)")
    else:
        figures = build_figures(rows, summary, details, kernel_m)
        print_figures(figures, "B20 against issue #14")
        k = details.get("kernel")
        if k:
            reached = max((r["acked_per_s"] for r in measured if r["passed"]), default=0.0)
            print(f"\nkernel ceiling on {cores} cores {k['ceiling_machine']:,.0f} writes/s vs the best passing run "
                  f"{reached:,.0f} acked/s: the runtime leaves "
                  f"{(k['ceiling_machine'] / reached if reached else math.inf):.1f}x on the table")
    stem = "b20" if args.batch == 1 else f"b20_batch{args.batch}"
    if rows:
        csv_rows = [{k: (v if not isinstance(v, dict) else str(v)) for k, v in r.items()} for r in measured]
        if csv_rows:
            keys = sorted({k for r in csv_rows for k in r})
            write_csv(f"{stem}.csv", [{k: r.get(k) for k in keys} for r in csv_rows])
            png = plot(measured, OUT / f"{stem}.png")
            if png:
                print(f"saved {png}")
    name = "b20_profile" if args.profile else stem
    print(f"saved {save_report(name, args, figures, guard, runs=rows, summary=summary, **details)}")
    print(f"# {read_loadavg()['raw']} (/proc/loadavg at the end)")


def build_figures(rows: list[dict[str, Any]], summary: dict[str, Any], details: dict[str, Any],
                  kernel_m: Measurement | None) -> list[dict[str, Any]]:
    figures = []

    def measurement_of(mode: str, rate: int | None) -> Measurement | None:
        rs = [r for r in rows if r["mode"] == mode and (rate is None or r["rate"] == rate) and not r.get("refused")]
        if not rs:
            return None
        worst = max(rs, key=lambda r: r["load_start"]["one"])
        m = Measurement(f"B20 {mode} {rate}", worst["load_start"], forced=any(r.get("forced") for r in rs))
        m.load_end = max((r["load_end"] for r in rs), key=lambda x: x["one"])
        return m

    for mode, fid in (("one", "b20_one_node"), ("spread", "b20_spread")):
        if mode in summary:
            best = summary[mode]["sustained"]
            m = measurement_of(mode, None)
            figures.append(figure(fid, float(best) if best is not None else 0.0, m, summary[mode]["note"]))
    one = [r for r in rows if r["mode"] == "one" and not r.get("refused")]
    if one:
        near = min(one, key=lambda r: abs(r["rate"] - 4000))
        same = [r for r in one if r["rate"] == near["rate"]]
        figures.append(figure("b20_cpu_per_write", statistics.median(r["cpu_us_per_write_per_node"] for r in same),
                              measurement_of("one", near["rate"]), f"at {near['rate']:,}/s"))
        best = summary.get("one", {}).get("sustained")
        at = [r for r in one if r["rate"] == best] if best else []
        if at:
            figures.append(figure("b20_p99", max(r["p99_ms"] for r in at), measurement_of("one", best),
                                  f"at {best:,}/s"))
    k = details.get("kernel")
    if k and kernel_m is not None:
        figures.append(figure("b20_kernel_apply", k["apply_us"], kernel_m, "in process, real codec"))
        figures.append(figure("b20_kernel_ceiling", k["ceiling_machine"], kernel_m,
                              f"{k['ceiling_per_core']:,.0f} per core"))
    return figures


if __name__ == "__main__":
    main()

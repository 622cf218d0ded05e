"""`gossipctl cluster`: N real `gossipctl run` processes on loopback, a live table, a clean stop.

This is the newcomer's first command: it shows membership converging, demo writes
spreading and every node's store checksum agreeing.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gossipmq.transports.control import ControlError, request


def _spawn(config: Path, nodes: int, base_port: int, logs: Path) -> list[tuple[str, str, subprocess.Popen]]:
    seed = f"tcp://127.0.0.1:{base_port}"
    out = []
    for i in range(nodes):
        node_id, address = f"n{i + 1}", f"tcp://127.0.0.1:{base_port + i}"
        control = f"ipc://{logs}/{node_id}.ctl"
        args = [sys.executable, "-m", "gossipmq", "run", "--config", str(config), "--node-id", node_id,
                "--bind", address, "--advertise", address, "--control", control]
        if address != seed:
            args += ["--seed", f"n1@{seed}"]   # "id@address": curve security dials n1's trusted key
        with open(logs / f"{node_id}.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        out.append((node_id, control, proc))
    return out


def _poll(procs: list[tuple[str, str, subprocess.Popen]]) -> list[dict[str, Any]]:
    rows = []
    for node_id, control, proc in procs:
        row: dict[str, Any] = {"id": node_id, "pid": proc.pid}
        if proc.poll() is not None:
            row["state"] = f"exited ({proc.returncode})"
        else:
            try:
                row.update(request(control, {"cmd": "status"}, timeout=1.0))
                row["state"] = "running"
            except ControlError:
                row["state"] = "starting"
        rows.append(row)
    return rows


def _agreement(rows: list[dict[str, Any]], nodes: int) -> tuple[bool, bool]:
    live = [r for r in rows if r["state"] == "running"]
    members_ok = len(live) == nodes and all(r["members"]["alive"] == nodes for r in live)
    sums_ok = len(live) == nodes and len({r["checksum"] for r in live}) == 1
    return members_ok, sums_ok


def _table(rows: list[dict[str, Any]], nodes: int, elapsed: float, converged_at: float | None) -> Table:
    members_ok, sums_ok = _agreement(rows, nodes)
    conv = f"converged after {converged_at:.2f}s" if converged_at is not None else "not converged yet"
    table = Table(title=f"gossipmq cluster: {nodes} nodes, {elapsed:5.1f}s - {conv}",
                  caption=f"membership agrees: {'yes' if members_ok else 'no'}   "
                          f"checksums agree: {'yes' if sums_ok else 'no'}   (Ctrl-C stops)")
    for col in ("node", "state", "alive", "suspect", "dead", "left", "keys", "checksum", "msgs in/out"):
        table.add_column(col)
    for r in rows:
        if r["state"] != "running":
            table.add_row(r["id"], r["state"], *[""] * 7)
            continue
        m = r["members"]
        table.add_row(r["id"], r["state"], str(m["alive"]), str(m["suspect"]), str(m["dead"]), str(m["left"]),
                      str(r["keys"]), r["checksum"][:8], f"{r['messages_in']}/{r['messages_out']}")
    return table


def run_cluster(config: Path, *, nodes: int, duration: float | None, base_port: int, writes_per_s: float,
                log_dir: Path | None, as_json: bool) -> int:
    logs = log_dir or Path(tempfile.mkdtemp(prefix="gossipmq-cluster-"))
    logs.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=as_json)
    console.print(f"starting {nodes} nodes from {config} on 127.0.0.1:{base_port}-{base_port + nodes - 1} "
                  f"(logs in {logs})")
    procs = _spawn(config, nodes, base_port, logs)
    stop = {"now": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    started = time.monotonic()
    converged_at: float | None = None
    next_write, writes = started + 1.0, 0
    rng = random.Random()
    rows: list[dict[str, Any]] = []
    last_line = 0.0
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while not stop["now"]:
                elapsed = time.monotonic() - started
                if duration is not None and elapsed >= duration:
                    break
                rows = _poll(procs)
                members_ok, sums_ok = _agreement(rows, nodes)
                if members_ok and sums_ok and converged_at is None:
                    converged_at = elapsed
                if writes_per_s > 0 and time.monotonic() >= next_write and members_ok:
                    _, control, _ = rng.choice(procs)
                    try:
                        request(control, {"cmd": "put", "key": f"demo/{writes}", "value": time.time()}, timeout=1.0)
                        writes += 1
                    except ControlError:
                        pass
                    next_write = time.monotonic() + 1.0 / writes_per_s
                if console.is_terminal:
                    live.update(_table(rows, nodes, elapsed, converged_at), refresh=True)
                elif elapsed - last_line >= 1.0:
                    last_line = elapsed
                    live_rows = [r for r in rows if r["state"] == "running"]
                    console.print(f"t={elapsed:5.1f}s running={len(live_rows)}/{nodes} "
                                  f"membership agrees={'yes' if members_ok else 'no'} "
                                  f"checksums agree={'yes' if sums_ok else 'no'} "
                                  f"keys={[r['keys'] for r in live_rows]}")
                time.sleep(0.25)
            rows = _poll(procs)
            if console.is_terminal:
                live.update(_table(rows, nodes, time.monotonic() - started, converged_at), refresh=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    members_ok, sums_ok = _agreement(rows, nodes)
    summary = {"nodes": nodes, "converged": members_ok and sums_ok, "first_converged_s": converged_at,
               "demo_writes": writes, "logs": str(logs),
               "final": [{k: r.get(k) for k in ("id", "state", "members", "keys", "checksum")} for r in rows]}
    if as_json:
        import orjson
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        verdict = "converged" if summary["converged"] else "NOT converged"
        first = f"{converged_at:.2f}s" if converged_at is not None else "never"
        console.print(f"{nodes} nodes stopped cleanly; at the end the cluster was {verdict} "
                      f"(first convergence after {first}, {writes} demo writes). Logs: {logs}")
    return 0 if summary["converged"] else 1

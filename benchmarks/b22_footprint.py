"""B22: footprint and start time of one `gossipctl run` node (issue #14).

    python benchmarks/b22_footprint.py                  # 10 runs, ~1 min alone
    python benchmarks/b22_footprint.py --runs 3 --force

Per run: a fresh `gossipctl run` (the console script next to this interpreter, else
`python -m gossipmq`) with configs/hybrid.toml, alone (no seeds), its own port and ipc control
socket. Start time = from just before exec until its control endpoint answers a `status`
request (a DEALER connected before the exec, reconnecting every 1 ms, with the request already
queued). RSS = VmRSS of the idle node --idle-wait s after it answered (also its peak VmHWM, and
Pss/Private from /proc/<pid>/smaps_rollup). Median and p90 over --runs.

Also: the RSS floor (bare Python plus what `run` imports besides gossipmq: asyncio, pyzmq,
msgspec, importlib.metadata, ...; each group in a fresh interpreter); the library in a process
(a Node and its ZmqRuntime running in asyncio, no CLI) over bare Python, both measured inside the
process; and `PYTHONPROFILEIMPORTTIME=1 gossipctl run` (python -X
importtime) until the node answers: the top-level imports by cumulative time and the packages by
their modules' total self time (the CLI framework, rich, matplotlib, nacl should not load for
`run`). Bytecode: `pip install` compiles every module to bytecode, so an installed node never compiles
source at start. An editable install under PYTHONDONTWRITEBYTECODE=1 (as some dev shells and
containers set) would, on every start (~0.1 s more here). The benchmark therefore compiles the
package's modules first (compileall, into the usual __pycache__ folders) unless --no-compile.
Writes benchmarks/out/b22.json.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    LoadGuard,
    Progress,
    add_guard_options,
    figure,
    percentile,
    print_figures,
    print_table,
    read_loadavg,
    save_report,
)
from procs import free_ports, proc_rss_mib

ROOT = Path(__file__).resolve().parents[1]
WATCH = ("typer", "click", "rich", "matplotlib", "nacl", "numpy", "pluggy", "msgspec", "orjson", "zmq", "asyncio",
         "sqlite3", "importlib_metadata", "importlib")

LIBRARY_CHILD = """
import asyncio, sys, time
from gossipmq.core.config import load_config
from gossipmq.core.node import Node
from gossipmq.core.plugins import build_registry, make_plugin_manager
from gossipmq.transports.zmq_runtime import ZmqRuntime
reg = build_registry(make_plugin_manager())
cfg = load_config(sys.argv[1], reg).with_node(id="lib", bind=sys.argv[2], advertise=sys.argv[2])
node = Node.from_config(cfg, reg, incarnation=int(time.time() * 1000))
runtime = ZmqRuntime(node, bind=sys.argv[2], control=None)
async def main():
    task = asyncio.create_task(runtime.run())
    await asyncio.sleep(float(sys.argv[3]))
    print(open("/proc/self/status").read(), flush=True)
    runtime.stopping.set()
    await task
asyncio.run(main())
"""
BARE_CHILD = "import sys, time; time.sleep(float(sys.argv[1])); print(open('/proc/self/status').read())"
#: what `gossipctl run` imports besides gossipmq, as it imports them (OpenSSL kept out, as run does)
FLOOR_IMPORTS = {
    "asyncio": "asyncio",
    "pyzmq": "zmq",
    "pyzmq + asyncio (zmq.asyncio)": "zmq.asyncio",
    "msgspec": "msgspec",
    "importlib.metadata (plugin entry points)": "importlib.metadata",
    "orjson, pluggy, tomllib, logging, argparse": "orjson, pluggy, tomllib, logging, argparse",
}
FLOOR_IMPORTS["all of the above"] = ", ".join(FLOOR_IMPORTS.values())
FLOOR_CHILD = "import sys; sys.modules['ssl'] = None; {imports}; print(open('/proc/self/status').read())"


def launcher() -> tuple[list[str], str]:
    script = Path(sys.executable).with_name("gossipctl")
    if script.exists():
        return [str(script)], str(script)
    return [sys.executable, "-m", "gossipmq"], f"{sys.executable} -m gossipmq"


def status_field(text: str, field: str) -> float:
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m[1]) / 1024 if m else float("nan")


def smaps(pid: int) -> dict[str, float]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    out = {}
    for field in ("Pss", "Private_Clean", "Private_Dirty"):
        out[field] = status_field(text, field)
    return out


def compile_package() -> int:
    """Compile gossipmq's modules to bytecode as `pip install` does; the number of package folders."""
    import compileall
    import importlib

    folders = 0
    for name in ("gossipmq", "gossipmq.core", "gossipmq.plugins", "gossipmq.transports", "gossipmq.cli"):
        for folder in importlib.import_module(name).__path__:
            compileall.compile_dir(folder, maxlevels=0, quiet=1)
            folders += 1
    return folders


def one_run(args: argparse.Namespace, i: int, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """(figures of one node start, its stderr). The node is always stopped before returning."""
    argv, _ = launcher()
    tmp = tempfile.mkdtemp(prefix="gmq-b22-")
    port = free_ports(1)[0]
    addr, ctl = f"tcp://127.0.0.1:{port}", f"ipc://{tmp}/n.ctl"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 1)
    sock.connect(ctl)
    sock.send_multipart([b"", b'{"cmd": "status"}'])
    err_path = Path(tmp) / "stderr"
    with open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([*argv, "run", "--config", str(args.config), "--node-id", f"b22-{i}", "--bind", addr,
                                 "--advertise", addr, "--control", ctl, "--log-level", "warning"],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})},
                                start_new_session=True)
    try:
        answered = sock.poll(args.timeout * 1000)
        t1 = time.monotonic()
        if not answered:
            raise TimeoutError(f"the node did not answer within {args.timeout} s ({err_path})")
        sock.recv_multipart()
        row = {"start_s": t1 - t0}
        time.sleep(args.idle_wait)
        row.update(rss_mib=proc_rss_mib(proc.pid), hwm_mib=proc_rss_mib(proc.pid, "VmHWM"),
                   **{f"{k.lower()}_mib": v for k, v in smaps(proc.pid).items()})
    finally:
        sock.close(linger=0)
        ctx.term()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    stderr = err_path.read_text(errors="replace")
    for f in Path(tmp).iterdir():
        f.unlink()
    os.rmdir(tmp)
    return row, stderr


def library_rss(args: argparse.Namespace) -> dict[str, float]:
    port = free_ports(1)[0]
    lib = subprocess.run([sys.executable, "-c", LIBRARY_CHILD, str(args.config), f"tcp://127.0.0.1:{port}",
                          str(args.idle_wait)], capture_output=True, text=True, timeout=120, check=True).stdout
    bare = subprocess.run([sys.executable, "-c", BARE_CHILD, str(args.idle_wait)], capture_output=True, text=True,
                          timeout=120, check=True).stdout
    return {"library_rss_mib": status_field(lib, "VmRSS"), "bare_python_rss_mib": status_field(bare, "VmRSS"),
            "library_over_bare_mib": status_field(lib, "VmRSS") - status_field(bare, "VmRSS")}


def dependency_floor() -> dict[str, float]:
    """MiB of RSS each group of third-party and stdlib imports adds to bare Python, each in a fresh
    interpreter: the floor under a node before any of gossipmq's own code is loaded."""
    def rss(imports: str) -> float:
        out = subprocess.run([sys.executable, "-c", FLOOR_CHILD.format(imports=imports)], capture_output=True,
                             text=True, timeout=120, check=True).stdout
        return status_field(out, "VmRSS")
    bare = rss("pass")
    return {"bare Python": bare, **{label: rss(f"import {mods}") - bare for label, mods in FLOOR_IMPORTS.items()}}


def parse_importtime(stderr: str) -> dict[str, Any]:
    """Top-level imports by cumulative time, and packages by their modules' total self time (us)."""
    top: list[tuple[str, int]] = []
    by_package: Counter[str] = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative, name = line[len("import time:"):].split("|")
        name = name[1:]   # one space after the bar, then two per nesting level
        depth = (len(name) - len(name.lstrip(" "))) // 2
        module = name.strip()
        by_package[module.split(".")[0]] += int(self_us)
        if depth == 0:
            top.append((module, int(cumulative)))
    top.sort(key=lambda t: -t[1])
    return {"total_us": sum(c for _, c in top), "top": top[:20], "packages": by_package.most_common(25),
            "watched_loaded": sorted(p for p in WATCH if p in by_package)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--idle-wait", type=float, default=3.0, help="seconds after answering before reading RSS")
    ap.add_argument("--timeout", type=float, default=20.0, help="give up on a node that does not answer (s)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "hybrid.toml")
    ap.add_argument("--top", type=int, default=15, help="import rows to print")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not compile the package to bytecode first (measures a start that compiles source "
                         "when no bytecode is cached, e.g. an editable install under PYTHONDONTWRITEBYTECODE=1)")
    add_guard_options(ap)
    args = ap.parse_args()
    guard = LoadGuard(args.force, args.settle)
    _, how = launcher()
    print(f"# B22 footprint: {args.runs} starts of `{how} run` ({args.config.name}); {read_loadavg()['raw']} "
          f"(/proc/loadavg)", flush=True)
    figures: list[dict[str, Any]] = []
    details: dict[str, Any] = {"launcher": how, "bytecode": "as found" if args.no_compile else "compiled first"}
    if not args.no_compile:
        print(f"# compiled {compile_package()} package folders to bytecode first (as pip install does)", flush=True)
    with guard.measure("B22 starts and idle RSS") as m_runs:
        rows = []
        if not m_runs.refused:
            progress = Progress("B22 starts", total=args.runs, every=0)
            for i in range(args.runs):
                progress.update(i, "runs")
                rows.append(one_run(args, i)[0])
            progress.close()
    if rows:
        details["runs"] = rows
        starts, rss = [r["start_s"] for r in rows], [r["rss_mib"] for r in rows]
        print_table(["run", "exec -> control answers (s)", "VmRSS idle (MiB)", "VmHWM (MiB)", "Pss (MiB)",
                     "Private (MiB)"],
                    [[i + 1, f"{r['start_s']:.3f}", f"{r['rss_mib']:.1f}", f"{r['hwm_mib']:.1f}",
                      f"{r.get('pss_mib', float('nan')):.1f}",
                      f"{r.get('private_clean_mib', 0) + r.get('private_dirty_mib', 0):.1f}"] for i, r in enumerate(rows)])
        print(f"start: median {statistics.median(starts):.3f} s, p90 {percentile(starts, 0.9):.3f} s; RSS: median "
              f"{statistics.median(rss):.1f} MiB, p90 {percentile(rss, 0.9):.1f} MiB (load {m_runs.loads()})")
        figures.append(figure("b22_rss", statistics.median(rss), m_runs, f"p90 {percentile(rss, 0.9):.1f} MiB, "
                                                                        f"{len(rss)} runs"))
        figures.append(figure("b22_start", statistics.median(starts), m_runs,
                              f"p90 {percentile(starts, 0.9):.3f} s, {len(starts)} runs"))
    else:
        figures += [figure("b22_rss", None, m_runs), figure("b22_start", None, m_runs)]
    with guard.measure("B22 library in a process") as m_lib:
        lib = None if m_lib.refused else library_rss(args)
    if lib:
        details["library"] = lib
        print(f"library in a process (Node + ZmqRuntime running, no CLI): {lib['library_rss_mib']:.1f} MiB; bare "
              f"Python {lib['bare_python_rss_mib']:.1f} MiB; over bare Python {lib['library_over_bare_mib']:.1f} MiB "
              f"(load {m_lib.loads()})")
    figures.append(figure("b22_library", lib and lib["library_over_bare_mib"], m_lib))
    with guard.measure("B22 dependency floor") as m_floor:
        floor = None if m_floor.refused else dependency_floor()
    if floor:
        details["dependency_floor_mib"] = floor
        print(f"\n## the RSS floor under a node: imports only, each in a fresh interpreter (load {m_floor.loads()})")
        print_table(["imports", "MiB"], [[label, f"{'+' if label != 'bare Python' else ''}{mib:.1f}"]
                                         for label, mib in floor.items()])
        print(f"bare Python + all of them: {floor['bare Python'] + floor['all of the above']:.1f} MiB")
    with guard.measure("B22 import time") as m_imp:
        imports = None
        if not m_imp.refused:
            row, stderr = one_run(args, 999, env={"PYTHONPROFILEIMPORTTIME": "1"})
            imports = {**parse_importtime(stderr), "start_s_with_importtime": row["start_s"]}
    if imports:
        details["imports"] = imports
        print(f"\n## imports of `gossipctl run` (python -X importtime): {imports['total_us'] / 1e6:.3f} s in top-level "
              f"imports (start {imports['start_s_with_importtime']:.3f} s with the tracing on; load {m_imp.loads()})")
        print_table(["top-level import", "cumulative ms"],
                    [[name, f"{us / 1000:.1f}"] for name, us in imports["top"][:args.top]])
        print()
        print_table(["package", "self ms (all its modules)"],
                    [[name, f"{us / 1000:.1f}"] for name, us in imports["packages"][:args.top]])
        print(f"loaded at start of `run` among {', '.join(WATCH)}: {', '.join(imports['watched_loaded']) or 'none'}")
    print_figures(figures, "B22 against issue #14")
    print(f"saved {save_report('b22', args, figures, guard, **details)}")
    print(f"# {read_loadavg()['raw']} (/proc/loadavg at the end)")


if __name__ == "__main__":
    main()

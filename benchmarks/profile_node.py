"""Run `gossipctl ...` under a profiler and summarise where the main thread's busy time goes.

    python benchmarks/profile_node.py --tool pyinstrument --out /tmp/n0 -- run --config configs/hybrid.toml
    python benchmarks/profile_node.py --summary /tmp/n0.prof            # or /tmp/n0.pyisession

b20_write_throughput.py --profile launches chosen nodes through this wrapper. The profile is
written when the command returns (a node leaves and returns on SIGTERM). `cprofile` writes
OUT.prof (deterministic, every call, ~2x overhead); `pyinstrument` writes OUT.pyisession, OUT.txt
and OUT.html (1 ms samples, low overhead). Time the main thread spends waiting in epoll (the
event loop idle) is excluded from the shares: "share" = share of the busy time. ZeroMQ's I/O
thread is not in either profile.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDLE = ("select.epoll", "epoll.poll", "selectors.py:select", "time.sleep")


def _is_idle(name: str) -> bool:
    return any(marker in name for marker in IDLE)


def run(tool: str, out: str, argv: list[str], interval: float) -> None:
    from gossipmq.cli import main as cli_main
    sys.argv = ["gossipctl", *argv]
    if tool == "cprofile":
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            cli_main()
        except SystemExit:
            pass
        finally:
            prof.disable()
            prof.dump_stats(f"{out}.prof")
        return
    from pyinstrument import Profiler
    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    try:
        cli_main()
    except SystemExit:
        pass
    finally:
        session = profiler.stop()
        session.save(f"{out}.pyisession")
        Path(f"{out}.txt").write_text(profiler.output_text(unicode=False, color=False))
        Path(f"{out}.html").write_text(profiler.output_html())


def summarize(path: str | Path, top: int = 15) -> dict[str, Any]:
    """{"busy_s", "idle_s", "top": [(function, self seconds, share of busy)], "cumulative": {...}}"""
    path = str(path)
    selfs: Counter[str] = Counter()
    cumulative: dict[str, float] = {}
    if path.endswith(".prof"):
        import pstats
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        for (file, line, func), (_cc, _nc, tt, ct, _callers) in stats.items():
            name = f"{func} ({Path(file).name}:{line})" if file != "~" else func
            selfs[name] += tt
            cumulative[name] = max(cumulative.get(name, 0.0), ct)
    else:
        from pyinstrument.session import Session
        session = Session.load(path)
        root = session.root_frame()
        stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())] if root is not None else []
        while stack:
            frame, above = stack.pop()
            name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
            if frame.file_path and frame.file_path.endswith("selectors.py") and frame.function == "select":
                name = "selectors.py:select (idle)"
            selfs[name] += frame.total_self_time
            if name not in above:   # inclusive time, counted once per recursion
                cumulative[name] = cumulative.get(name, 0.0) + frame.time
            stack.extend((child, above | {name}) for child in frame.children)
    idle = sum(t for n, t in selfs.items() if _is_idle(n))
    busy = sum(selfs.values()) - idle
    ranked = [(n, t, t / busy if busy else 0.0) for n, t in selfs.most_common() if not _is_idle(n)][:top]
    return {"busy_s": busy, "idle_s": idle, "top": ranked, "cumulative": cumulative}


def print_summary(label: str, path: str | Path, top: int = 15) -> dict[str, Any]:
    s = summarize(path, top)
    print(f"\n### {label}: busy {s['busy_s']:.1f} s of main-thread time (idle in epoll {s['idle_s']:.1f} s) - {path}")
    print("| function | self s | share of busy |")
    print("|---|---|---|")
    for name, t, share in s["top"]:
        print(f"| `{name}` | {t:.2f} | {100 * share:.1f}% |")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="pyinstrument")
    ap.add_argument("--out", help="output path without extension")
    ap.add_argument("--interval", type=float, default=0.001, help="pyinstrument sampling interval (s)")
    ap.add_argument("--summary", metavar="FILE", help="summarise a .prof or .pyisession file and exit")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- gossipctl arguments, e.g. -- run --config FILE")
    args = ap.parse_args()
    if args.summary:
        print_summary(args.summary, args.summary, args.top)
        return
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not args.out or not argv:
        ap.error("--out and the gossipctl arguments are required (or --summary FILE)")
    run(args.tool, args.out, argv, args.interval)


if __name__ == "__main__":
    main()

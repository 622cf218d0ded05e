"""Run `gossipctl ...` under a profiler and summarise where the main thread's busy time goes.

    python benchmarks/profile_node.py --tool pyinstrument --out /tmp/n0 -- run --config configs/hybrid.toml
    python benchmarks/profile_node.py --summary /tmp/n0.prof            # or /tmp/n0.pyisession

b20_write_throughput.py --profile launches chosen nodes through this wrapper. The profile is
written when the command returns (a node leaves and returns on SIGTERM). `cprofile` writes
OUT.prof (deterministic, every call with its count, ~2x overhead, wall clock); `pyinstrument`
writes OUT.pyisession and OUT.txt (a sample per 1 ms of wall time; on a busy machine that
includes waiting for a core, which lands on whatever ran last - often a ZeroMQ send that woke
the I/O thread; --timer cpu samples the main thread's CPU time instead, at a high overhead). Time the main thread waits in epoll (the event loop idle) is excluded from the
shares: "share" = share of the busy time. ZeroMQ's I/O thread is in neither profile.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDLE = ("select.epoll", "epoll.poll", "selectors.py:select", "time.sleep")
#: functions whose call counts tell the story (cProfile only): event-loop turns vs requests, syncs, codec
COUNTED = ("_run_once", "_control", "_control_loop", "_receive_loop", "handle_message", "handle_timer", "delta_for",
           "encode_envelope", "decode_frames", "_write", "_apply_entry", "_send", "_fire", "check_convergence")


def _is_idle(name: str) -> bool:
    return any(marker in name for marker in IDLE)


def run(tool: str, out: str, argv: list[str], interval: float, timer: str = "wall") -> None:
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
    if timer == "cpu":   # sample the main thread's CPU time: waiting (epoll, or for a core) does not count
        import time

        from pyinstrument.stack_sampler import get_stack_sampler
        get_stack_sampler().timer_func = time.thread_time
    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    try:
        cli_main()
    except SystemExit:
        pass
    finally:
        session = profiler.stop()
        session.save(f"{out}.pyisession")   # HTML: pyinstrument --load OUT.pyisession -r html -o OUT.html
        Path(f"{out}.txt").write_text(profiler.output_text(unicode=False, color=False))


def summarize(path: str | Path, top: int = 15) -> dict[str, Any]:
    """{"busy_s", "idle_s", "top": [(function, self seconds, share of busy)], "cumulative": {...},
    "calls": {function: (primitive calls, inclusive seconds)} for COUNTED (cProfile only)}"""
    path = str(path)
    selfs: Counter[str] = Counter()
    cumulative: dict[str, float] = {}
    calls: dict[str, tuple[int, float]] = {}
    import gossipmq.core
    import gossipmq.transports
    roots = tuple(str(Path(m.__file__).parent) for m in (gossipmq.core, gossipmq.transports))
    if path.endswith(".prof"):
        import pstats
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        for (file, line, func), (cc, _nc, tt, ct, _callers) in stats.items():
            name = f"{func} ({Path(file).name}:{line})" if file != "~" else func
            selfs[name] += tt
            cumulative[name] = max(cumulative.get(name, 0.0), ct)
            if (func in COUNTED and file.startswith(roots)) or func == "_run_once":
                calls[name] = (cc, ct)
    else:
        from pyinstrument.session import Session
        session = Session.load(path)
        root = session.root_frame()
        stack: list[tuple[Any, frozenset[str], str]] = [(root, frozenset(), "")] if root is not None else []
        while stack:
            frame, above, parent = stack.pop()
            name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
            if frame.file_path and frame.file_path.endswith("selectors.py") and frame.function == "select":
                name = "selectors.py:select (idle)"
            if frame.function.startswith("[") and parent:   # [self] etc.: time of the parent function itself
                name = parent
            selfs[name] += frame.time - sum(child.time for child in frame.children)
            if name not in above:   # inclusive time, counted once per recursion
                cumulative[name] = cumulative.get(name, 0.0) + frame.time
                if (frame.function in COUNTED and (frame.file_path or "").startswith(roots)) \
                        or frame.function == "_run_once":
                    calls[name] = (-1, cumulative[name])   # sampling: no call counts
            stack.extend((child, above | {name}, name) for child in frame.children)
    idle = sum(t for n, t in selfs.items() if _is_idle(n))
    busy = sum(selfs.values()) - idle
    ranked = [(n, t, t / busy if busy else 0.0) for n, t in selfs.most_common() if not _is_idle(n)][:top]
    return {"busy_s": busy, "idle_s": idle, "top": ranked, "cumulative": cumulative, "calls": calls}


def print_summary(label: str, path: str | Path, top: int = 15) -> dict[str, Any]:
    s = summarize(path, top)
    print(f"\n### {label}: busy {s['busy_s']:.1f} s of main-thread time (idle in epoll {s['idle_s']:.1f} s) - {path}")
    print("| function | self s | share of busy |")
    print("|---|---|---|")
    for name, t, share in s["top"]:
        print(f"| `{name}` | {t:.2f} | {100 * share:.1f}% |")
    if s["calls"]:
        print("\n| function (event-loop turns, coroutine steps, requests, ...) | calls | inclusive s | share of busy |"
              "\n|---|---|---|---|")
        for name, (n, ct) in sorted(s["calls"].items(), key=lambda kv: -kv[1][1]):
            count = f"{n:,}" if n >= 0 else "-"
            share = "(includes idle)" if "_run_once" in name else f"{100 * ct / s['busy_s'] if s['busy_s'] else 0:.1f}%"
            print(f"| `{name}` | {count} | {ct:.2f} | {share} |")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="pyinstrument")
    ap.add_argument("--out", help="output path without extension")
    ap.add_argument("--interval", type=float, default=0.001, help="pyinstrument sampling interval (s)")
    ap.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                    help="pyinstrument: sample wall time (default, cheap) or main-thread CPU time (a syscall per "
                         "profiler event: roughly halves what the node can do)")
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
    run(args.tool, args.out, argv, args.interval, args.timer)


if __name__ == "__main__":
    main()

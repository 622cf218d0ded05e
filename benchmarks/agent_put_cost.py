"""What `await agent.put(...)` costs beyond the kernel call it wraps (issue #11's note).

    python benchmarks/agent_put_cost.py                      # 5 runs of 20,000 ops per path
    python benchmarks/agent_put_cost.py --ops 2000 --runs 3 --force   # a smoke run on a busy machine

In one process, on one core, the same lww put of a small value over a cycle of 1,000 keys, each
path timed over --ops operations, --runs times (the median run is reported, with the fastest and
slowest):

- `kernel`: `Node.mutate(now, key, Op("put", ...))` on a bare node - the sans-I/O kernel alone;
- `runtime.write`: `ZmqRuntime.write`, i.e. mutate + durable commit (a no-op with the memory
  backend) + carrying out the effects (observers, hooks, sends);
- `agent.put`: `await agent.put(key, value)` on a started Agent with no peers - the whole public call;
- `agent.put + subscriber`: the same with one `agent.events(prefix=...)` subscriber on those keys
  (each write then builds a `KeyEvent` with the value and the old value);
- `control put` (unless --no-control): one `gossipctl put`-style request - a fresh DEALER on the
  ipc control endpoint, one JSON request, wait for the reply - sent from a worker thread of the same
  process, so it includes a thread hop and shares the GIL with the node it measures. It is the
  round trip a client pays per `gossipctl put` minus the process start.

/proc/loadavg is printed at the start and the end. Like the other benchmarks (benchmarks/common.py),
it waits up to --settle s for the 1-minute load to fall to 1.5 and refuses to report above it
unless --force (figures are then marked forced). Writes benchmarks/out/agent_put_cost.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, REGISTRY, LoadGuard, add_guard_options, print_table, read_loadavg

from gossipmq import Agent
from gossipmq.core.config import parse_config
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op
from gossipmq.transports.control import request

KEYS = 1000
VALUE = {"enabled": True, "rollout": 25}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_sync(ops: int, one: Callable[[int], object]) -> float:
    """Microseconds per call of `one(i)` over `ops` calls."""
    start = time.perf_counter()
    for i in range(ops):
        one(i)
    return (time.perf_counter() - start) / ops * 1e6


async def time_async(ops: int, one: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(ops):
        await one(i)
    return (time.perf_counter() - start) / ops * 1e6


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    keys = [f"bench/{i}" for i in range(KEYS)]
    doc = {"dissemination": {"interval_ms": 200}}

    node = Node.from_config(parse_config(doc, REGISTRY, "<benchmark>").with_node(id="kernel"), REGISTRY,
                            incarnation=int(time.time() * 1000))
    results["kernel: node.mutate"] = [
        time_sync(args.ops, lambda i: node.mutate(time.time(), keys[i % KEYS], Op("put", VALUE)))
        for _ in range(args.runs)]

    with tempfile.TemporaryDirectory(prefix="gmq-bench-", dir="/tmp") as tmp:
        agent = Agent.from_config(doc, node_id="bench", bind=f"tcp://127.0.0.1:{free_port()}",
                                  control=f"ipc://{tmp}/bench.ctl")
        async with agent:
            runtime = agent.runtime
            assert runtime is not None
            results["runtime.write"] = [
                await time_async(args.ops, lambda i: runtime.write(keys[i % KEYS], Op("put", VALUE)))
                for _ in range(args.runs)]
            results["agent.put"] = [
                await time_async(args.ops, lambda i: agent.put(keys[i % KEYS], VALUE)) for _ in range(args.runs)]
            with agent.events(prefix="bench/", maxsize=args.ops) as sub:
                runs = []
                for _ in range(args.runs):
                    runs.append(await time_async(args.ops, lambda i: agent.put(keys[i % KEYS], VALUE)))
                    while len(sub):   # the subscriber reads between runs (not timed)
                        await anext(sub)
                results["agent.put + subscriber"] = runs
            if args.control:
                endpoint = agent.control_endpoint
                n = max(1, args.ops // 10)   # a round trip costs ~100x a put: fewer of them

                def client() -> float:
                    return time_sync(n, lambda i: request(endpoint, {"cmd": "put", "key": keys[i % KEYS],
                                                                     "value": VALUE}))
                results["control put (gossipctl-style request)"] = [
                    await asyncio.to_thread(client) for _ in range(args.runs)]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=20_000, help="operations per run and path (default 20000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per path; the median is reported (default 5)")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the control-request round trip")
    add_guard_options(parser)
    args = parser.parse_args()

    start = read_loadavg()
    print(f"/proc/loadavg at start: {start['raw']}")
    guard = LoadGuard(force=args.force, settle=args.settle)
    with guard.measure("agent put cost") as m:
        results = {} if m.refused else asyncio.run(measure(args))
    end = read_loadavg()
    print(f"/proc/loadavg at end:   {end['raw']}")
    if m.refused:
        print(f"not reported: {m.refused}")
        sys.exit(2)

    kernel = statistics.median(next(iter(results.values())))
    rows = []
    for path, values in results.items():
        s = summary(values)
        rows.append([path, f"{s['median']:.2f}", f"{s['min']:.2f}", f"{s['max']:.2f}",
                     f"{1e6 / s['median']:,.0f}", f"{s['median'] / kernel:.2f}x"])
    print(f"\n{args.runs} runs of {args.ops} ops per path (control: {max(1, args.ops // 10)} requests per run); "
          f"load 1-min {m.loads()}{' (forced)' if m.forced else ''}\n")
    print_table(["path", "us/op median", "fastest run", "slowest run", "ops/s (median)", "vs kernel"], rows)

    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "agent_put_cost.json"
    out.write_text(json.dumps({"args": vars(args), "load_start": start, "load_end": end, "forced": m.forced,
                               "us_per_op": {p: {"runs": v, **summary(v)} for p, v in results.items()},
                               "python": sys.version.split()[0]}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

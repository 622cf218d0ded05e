"""What Prometheus metrics cost a node (docs/metrics.md, "Measured").

1. CPU per scrape: one node with --keys keys and --members members (the node itself plus fake
   members in its table: 1 suspect, 1 dead, the rest alive; static failure detection keeps them so),
   a real /metrics endpoint. (a) `render()` called --scrapes times on the node's loop, CPU time per
   call; (b) --scrapes HTTP GETs from a separate client process, the node process's CPU per scrape
   (its idle CPU over the same wall time subtracted).
2. Per-message overhead, metrics on vs off: the same --messages received frames (acks carrying one
   new entry each, from a peer) fed through the runtime's frame handler (`_handle_frames`: rate limit,
   decode, kernel, effects), in chunks that yield to the loop (so the loop-lag sampler runs), on a
   node with and without a metrics endpoint, alternated --rounds times. No scrape runs meanwhile: the
   scrape cost is part 1.

    python benchmarks/metrics_cost.py [--keys 10000] [--members 20] [--scrapes 1000] [--messages 20000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gossipmq.agent import Agent
from gossipmq.core.codec import encode_envelope
from gossipmq.core.messages import Ack, Entry, Envelope, MemberUpdate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import free_ports  # noqa: E402

TABLES: dict[str, Any] = {"failure_detection": {"strategy": "static"},
                          "dissemination": {"strategy": "hybrid", "interval_ms": 200, "fanout": 3}}
CLIENT = """
import sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
for _ in range(n):
    urllib.request.urlopen(url).read()
print(time.perf_counter() - t)
"""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_agent(tmp: str, port: int, metrics_port: int | None, name: str) -> Agent:
    return Agent.from_config({k: dict(v) for k, v in TABLES.items()}, node_id=name, bind=f"tcp://127.0.0.1:{port}",
                             control=f"ipc://{tmp}/{name}.ctl",
                             metrics=f"127.0.0.1:{metrics_port}" if metrics_port else None)


async def scrape_cost(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    port, metrics_port = free_ports(2)
    async with make_agent(tmp, port, metrics_port, "scraped") as agent:
        node = agent.node
        assert node is not None and agent.metrics is not None
        for i in range(args.keys):
            await agent.put(f"key/{i:06d}", {"n": i, "payload": "x" * 32})
        ports = free_ports(args.members - 1)
        for i, p in enumerate(ports):
            node.members.apply(MemberUpdate(f"peer-{i}", f"tcp://127.0.0.1:{p}", 1, "alive", 0, {}), time.time())
            if i < 2:
                status = "suspect" if i == 0 else "dead"
                node.members.apply(MemberUpdate(f"peer-{i}", f"tcp://127.0.0.1:{p}", 1, status, 0, {}), time.time())
        counts = node.members.counts()
        text = agent.metrics.render()
        families = text.count(b"# TYPE ")
        series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
        # (a) render only, on the loop
        load_a = loadavg()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.scrapes):
            agent.metrics.render()
        render_cpu = (time.process_time() - cpu) / args.scrapes
        render_wall = (time.perf_counter() - wall) / args.scrapes
        # (b) over HTTP from another process; the node's CPU meanwhile, minus its idle CPU
        load_b = loadavg()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        cpu, wall = time.process_time(), time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, url, str(args.scrapes),
                                                    stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        busy_cpu, busy_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu = time.process_time()
        await asyncio.sleep(busy_wall)
        idle_cpu = time.process_time() - cpu
        http_cpu = max(0.0, busy_cpu - idle_cpu) / args.scrapes
        return {"keys": node.store.live_keys, "members": {**counts, "self": 1}, "families": families,
                "series": series, "body_bytes": len(text), "scrapes": args.scrapes,
                "render_cpu_ms": round(render_cpu * 1000, 3), "render_wall_ms": round(render_wall * 1000, 3),
                "loadavg_render": load_a, "http_node_cpu_ms": round(http_cpu * 1000, 3),
                "http_client_wall_ms": round(float(out) / args.scrapes * 1000, 3),
                "node_idle_cpu_ms_per_s": round(idle_cpu / busy_wall * 1000, 3), "loadavg_http": load_b}


def frames(n: int, sender: str, sender_addr: str) -> list[list[bytes]]:
    """n received acks, each carrying one new entry, as the ROUTER delivers them (routing id first)."""
    out = []
    for i in range(1, n + 1):
        entry = Entry(f"in/{i:07d}", {"v": i}, False, sender, i, (int(time.time() * 1000) << 16) + i, {sender: i})
        env = Envelope(type="ack", src=sender, addr=sender_addr, inc=1, body=Ack([entry], {}))
        out.append([b"\x00peer", *encode_envelope(env)])
    return out


async def feed(args: argparse.Namespace, tmp: str, metrics: bool, batch: list[list[bytes]]) -> tuple[float, str]:
    port, metrics_port, sender_port = free_ports(3)
    async with make_agent(tmp, port, metrics_port if metrics else None, "fed") as agent:
        runtime = agent.runtime
        assert runtime is not None
        for bucket in (runtime.rate, runtime.host_rate, runtime.stranger_rate):
            bucket.rate = bucket.burst = 1e12   # measure the handler, not the token buckets
        await asyncio.sleep(0.6)   # past start-up work; one loop-lag sample when metrics are on
        load = loadavg()
        cpu = time.process_time()
        for start in range(0, len(batch), 500):
            for f in batch[start:start + 500]:
                runtime._handle_frames(f[1:], None, "127.0.0.1")   # without the routing id frame
            await asyncio.sleep(0)
        per_message = (time.process_time() - cpu) / len(batch)
        assert agent.node is not None and agent.node.store.live_keys == len(batch), "entries were not applied"
        if metrics:
            assert agent.metrics is not None and b"gossipmq_entries_applied_total" in agent.metrics.render()
        return per_message, load


async def message_cost(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    batch = frames(args.messages, "sender", "tcp://127.0.0.1:1")
    off: list[float] = []
    on: list[float] = []
    loads = []
    for r in range(args.rounds):   # alternate which goes first, so drift in the machine's load evens out
        order = ((False, off), (True, on)) if r % 2 == 0 else ((True, on), (False, off))
        for metrics, sink in order:
            per, load = await feed(args, tmp, metrics, batch)
            sink.append(per)
            loads.append(load)
    med_off, med_on = statistics.median(off), statistics.median(on)
    return {"messages": args.messages, "rounds": args.rounds,
            "off_us": [round(x * 1e6, 2) for x in off], "on_us": [round(x * 1e6, 2) for x in on],
            "median_off_us": round(med_off * 1e6, 2), "median_on_us": round(med_on * 1e6, 2),
            "difference_pct": round((med_on - med_off) / med_off * 100, 1), "loadavg": loads}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "metrics_cost.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gmq-metrics-") as tmp:
        result = {"scrape": await scrape_cost(args, tmp), "per_message": await message_cost(args, tmp)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

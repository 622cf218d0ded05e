"""Open-loop put load on nodes' control endpoints, pipelined: a DEALER per endpoint sends
``[b"", orjson({"cmd": "put", ...})]`` with up to `window` requests in flight (a REP control
socket, as today, and a ROUTER one both answer in request order). Puts go out on a fixed
schedule (request i is due at start + i / rate); when the window is full the generator falls
behind and the latency from the *scheduled* time shows it (no coordinated omission).

Used by b20_write_throughput.py; also runs alone:

    python benchmarks/loadgen.py --control ipc:///tmp/x.ctl --rate 8000 --duration 5
    python benchmarks/loadgen.py --ceiling --clients 2      # this generator against a null echo server

`--ceiling` measures the generator itself: as fast as it can against a ROUTER in another process
that answers every request with a canned reply, so no node is in the way.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from array import array
from collections import deque
from typing import Any

import orjson
import zmq

ECHO_REPLY = orjson.dumps({"ok": True, "result": {"key": "k", "origin": "echo", "counter": 1}})
OK_PREFIX = b'{"ok":true'


def generate(endpoints: list[str], rate: float, duration: float, window: int, prefix: str, value: str,
             start_at: float, drain_timeout: float = 15.0, counters: Any = None, slot: int = 0,
             tick: float = 0.001, batch: int = 1) -> dict[str, Any]:
    """Send puts to `endpoints` (round robin) at `rate`/s (math.inf: as fast as the window allows)
    for `duration` s from monotonic time `start_at`; wait up to `drain_timeout` s for the last
    replies. `batch` > 1 sends them `batch` at a time in `put_many` requests (`window` still
    counts puts; latency is per request, which every put of it shares). Replies are collected once per `tick` s (latency resolution; 0 = wake on every reply,
    precise but costly on a small machine). `counters` (a shared int64 array) gets [sent, acked]
    at 2*slot, 2*slot+1."""
    ctx = zmq.Context()
    socks = []
    for endpoint in endpoints:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, window + 16)
        sock.setsockopt(zmq.RCVHWM, window + 16)
        sock.setsockopt(zmq.RECONNECT_IVL, 20)
        sock.connect(endpoint)
        socks.append(sock)
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    fifo: list[deque[tuple[float, float]]] = [deque() for _ in socks]
    finite = math.isfinite(rate)
    interval = batch / rate if finite else 0.0
    total = int(rate * duration) // batch if finite else -1   # requests
    window = max(2, window // batch)
    stop_sending = start_at + duration
    lat_sched, lat_send = array("d"), array("d")
    sent = acked = errors = inflight = 0
    first_error = ""
    first_send = last_send = last_ack = 0.0
    behind_max = 0.0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    sending = True
    n_socks = len(socks)
    pollin, events_opt = zmq.POLLIN, zmq.EVENTS
    while True:
        now = time.monotonic()
        if sending:
            while inflight < window:
                if finite:
                    if sent >= total:
                        sending = False
                        break
                    due = start_at + sent * interval
                    if due > now:
                        break
                else:
                    if now >= stop_sending:
                        sending = False
                        break
                    due = now
                k = sent % n_socks
                if batch == 1:
                    payload = orjson.dumps({"cmd": "put", "key": f"{prefix}{sent}", "value": value})
                else:
                    base = sent * batch
                    payload = orjson.dumps({"cmd": "put_many",
                                            "items": [(f"{prefix}{base + j}", value) for j in range(batch)]})
                try:
                    socks[k].send_multipart([b"", payload], flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                if not sent:
                    first_send = now
                fifo[k].append((due, now))
                sent += 1
                inflight += 1
            last_send = now
            if finite and sending:
                behind_max = max(behind_max, now - (start_at + sent * interval))
        t = time.monotonic()
        for k, sock in enumerate(socks):
            while sock.getsockopt(events_opt) & pollin:
                frames = sock.recv_multipart()
                due, sent_at = fifo[k].popleft()
                inflight -= 1
                if frames[-1].startswith(OK_PREFIX):
                    acked += batch
                    lat_sched.append(t - due)
                    lat_send.append(t - sent_at)
                    last_ack = t
                else:
                    errors += 1
                    if not first_error:
                        first_error = frames[-1][:200].decode(errors="replace")
        if counters is not None:
            counters[2 * slot] = sent * batch
            counters[2 * slot + 1] = acked
        if not sending and (inflight == 0 or t > stop_sending + drain_timeout):
            break
        wait = tick
        if sending and finite and inflight < window:
            wait = max(tick, start_at + sent * interval - t)
        if tick > 0:
            time.sleep(max(0.0, min(wait, 0.02) - (time.monotonic() - now)))
        else:
            poller.poll(max(1.0, min(wait, 0.02) * 1000))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for sock in socks:
        sock.close(linger=0)
    ctx.term()
    return {"sent": sent * batch, "acked": acked, "errors": errors, "unanswered": inflight, "first_error": first_error,
            "first_send": first_send, "last_send": last_send, "last_ack": last_ack, "behind_max_s": behind_max,
            "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
            "lat_sched": lat_sched.tobytes(), "lat_send": lat_send.tobytes()}


def _client_main(queue: Any, kwargs: dict[str, Any]) -> None:
    try:
        queue.put(generate(**kwargs))
    except Exception as exc:  # noqa: BLE001 - reported by the parent, never a silent hang
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


class Clients:
    """`n` generator processes (spawned, so no ZeroMQ context crosses a fork) started together."""

    def __init__(self, n: int, targets: list[list[str]], rate: float, duration: float, window: int, prefix: str,
                 value: str, lead: float = 1.0, tick: float = 0.001, batch: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue()
        self.counters = ctx.RawArray("q", 2 * n)
        self.start_at = time.monotonic() + lead   # spawn + imports take a fraction of a second
        self.duration = duration
        self.procs = []
        for i in range(n):
            kwargs = {"endpoints": targets[i % len(targets)], "rate": rate / n, "duration": duration,
                      "window": window, "prefix": f"{prefix}c{i}/", "value": value, "start_at": self.start_at,
                      "counters": self.counters, "slot": i, "tick": tick, "batch": batch}
            proc = ctx.Process(target=_client_main, args=(self.queue, kwargs), daemon=True)
            proc.start()
            self.procs.append(proc)

    def progress(self) -> tuple[int, int]:
        c = list(self.counters)
        return sum(c[0::2]), sum(c[1::2])

    def results(self, timeout: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout
        for _ in self.procs:
            out.append(self.queue.get(timeout=max(0.1, deadline - time.monotonic())))
        for proc in self.procs:
            proc.join(timeout=5)
        return out

    def running(self) -> bool:
        return any(p.is_alive() for p in self.procs) and self.queue.empty()

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several clients: counts, acked/s over the common span, latency percentiles (ms)."""
    bad = [r["error"] for r in results if "error" in r]
    if bad:
        raise RuntimeError(f"load generator failed: {bad[0]}")
    sched, send = array("d"), array("d")
    for r in results:
        sched.frombytes(r["lat_sched"])
        send.frombytes(r["lat_send"])
    first = min(r["first_send"] for r in results if r["sent"])
    last_ack = max(r["last_ack"] for r in results)
    last_send = max(r["last_send"] for r in results)
    acked = sum(r["acked"] for r in results)
    span = max(1e-9, last_ack - first)
    s_sched, s_send = sorted(sched), sorted(send)
    return {"sent": sum(r["sent"] for r in results), "acked": acked, "errors": sum(r["errors"] for r in results),
            "unanswered": sum(r["unanswered"] for r in results),
            "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
            "first_send": first, "last_send": last_send, "last_ack": last_ack, "acked_per_s": acked / span,
            "sent_per_s": sum(r["sent"] for r in results) / max(1e-9, last_send - first),
            "behind_max_s": max(r["behind_max_s"] for r in results),
            "generator_cpu_s": sum(r["cpu_s"] for r in results),
            "generator_cpu_pct": 100 * max(r["cpu_s"] for r in results) / span,
            "p50_ms": 1000 * _q(s_sched, 0.50), "p99_ms": 1000 * _q(s_sched, 0.99),
            "max_ms": 1000 * (s_sched[-1] if s_sched else math.nan),
            "p50_from_send_ms": 1000 * _q(s_send, 0.50), "p99_from_send_ms": 1000 * _q(s_send, 0.99)}


def _q(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _echo_main(endpoint: str, until: float) -> None:
    """A null node: a ROUTER answering every request at once with a canned put reply."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    while time.monotonic() < until:
        if not sock.poll(100):
            continue
        while True:
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            sock.send_multipart([frames[0], b"", ECHO_REPLY])
    sock.close(linger=0)
    ctx.term()


def ceiling(clients: int = 1, window: int = 512, duration: float = 2.0, tick: float = 0.001,
            batch: int = 1) -> dict[str, Any]:
    """Puts/s this generator reaches with `clients` processes against null echo servers (one per
    client, each in its own process), i.e. with no node in the way."""
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="gmq-loadgen-")
    endpoints = [f"ipc://{tmp}/echo{i}.ctl" for i in range(clients)]
    until = time.monotonic() + duration + 8.0
    echoes = [ctx.Process(target=_echo_main, args=(ep, until), daemon=True) for ep in endpoints]
    for proc in echoes:
        proc.start()
    try:
        gen = Clients(clients, [[ep] for ep in endpoints], math.inf, duration, window, "ceiling/", "x" * 100,
                      lead=1.5, tick=tick, batch=batch)
        try:
            merged = merge(gen.results(timeout=duration + 30))
        finally:
            gen.kill()
    finally:
        for proc in echoes:
            proc.kill()
            proc.join(timeout=5)
        for ep in endpoints:
            try:
                os.unlink(ep[len("ipc://"):])
            except OSError:
                pass
        os.rmdir(tmp)
    return {"clients": clients, "window": window, "puts_per_s": merged["acked_per_s"],
            "generator_cpu_pct": merged["generator_cpu_pct"], "p50_from_send_ms": merged["p50_from_send_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--control", action="append", default=[], help="control endpoint (repeatable: round robin)")
    ap.add_argument("--rate", type=float, default=4000, help="puts/s in total (0 = as fast as possible)")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=512, help="requests in flight per client process")
    ap.add_argument("--clients", type=int, default=1, help="generator processes (the rate is split)")
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--tick-ms", type=float, default=1.0,
                    help="collect replies once per tick (latency resolution); 0 = wake on every reply")
    ap.add_argument("--prefix", default=f"loadgen/{os.getpid()}/")
    ap.add_argument("--ceiling", action="store_true", help="measure the generator against null echo servers")
    args = ap.parse_args()
    if args.ceiling:
        result = ceiling(args.clients, args.window, args.duration, args.tick_ms / 1000)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    if not args.control:
        ap.error("--control is required (or --ceiling)")
    gen = Clients(args.clients, [args.control], args.rate or math.inf, args.duration, args.window, args.prefix,
                  "x" * args.value_bytes, tick=args.tick_ms / 1000)
    try:
        merged = merge(gen.results(timeout=args.duration + 60))
    finally:
        gen.kill()
    print(orjson.dumps(merged, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    sys.exit(main())

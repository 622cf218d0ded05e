"""Flood: for 30 s a rogue holding a trusted key (a compromised member) floods node n1 with
random bytes, oversized frames, wrong versions, too many frames and spoofed-sender messages,
while a second rogue opens connection after connection with fresh untrusted keys. The 3-node
secure cluster must keep converging on writes made during the flood, nobody may be declared
dead, every kind of garbage must show up as its own counted drop, and n1's memory must stay
bounded. Real processes on 127.0.0.1; every wait is bounded; processes are stopped in finally.

Figures (RSS, drop counts, rogue send counts) are printed: run with -s to see them.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossipmq.transports.curve import load_secret
from tests._security_helpers import Proc, converged, free_ports, make_keys, wait_until, write_secure_config

FLOOD_S = 30.0
MAX_FRAME = 65536
RETURN_KIB = 8 * 1024   # "near the baseline": within 8 MiB of the RSS before the flood
ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_flood_keeps_cluster_converging_and_memory_bounded(tmp_path: Path) -> None:
    make_keys(tmp_path, ["n1", "n2", "n3", "mallory"])
    config = write_secure_config(
        tmp_path / "secure.toml", gossip=f"max_frame_bytes = {MAX_FRAME}",
        extra="[limits]\npeer_rate = 500.0\npeer_burst = 1000\n")
    ports = free_ports(3)
    nodes: list[Proc] = []
    rogues: list[subprocess.Popen] = []
    try:
        for name, port in zip(["n1", "n2", "n3"], ports):
            seed = None if name == "n1" else f"n1@tcp://127.0.0.1:{ports[0]}"
            nodes.append(Proc(config, name, port, seed, tmp_path))
        assert wait_until(lambda: converged(nodes), 20)
        n1 = nodes[0]
        _, n1_key = load_secret(tmp_path / "keys" / "n1.key_secret")
        for k in range(50):   # some state, so the store is not trivially empty
            nodes[k % 3].call({"cmd": "put", "key": f"warm/{k}", "value": "x" * 100})
        assert wait_until(lambda: converged(nodes), 15)
        rss_start = n1.rss_kib()
        rogues.append(subprocess.Popen(
            [sys.executable, "-m", "tests._rogue", "flood", n1.address, n1_key.curve_public,
             str(tmp_path / "keys" / "mallory.key_secret"), str(FLOOD_S), str(MAX_FRAME)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
        rogues.append(subprocess.Popen(
            [sys.executable, "-m", "tests._rogue", "handshakes", n1.address, n1_key.curve_public, str(FLOOD_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
        started = time.monotonic()
        rss: list[int] = []
        lags: list[float] = []
        write = 0
        while time.monotonic() - started < FLOOD_S:
            rss.append(n1.rss_kib())
            writer = nodes[write % 3]
            key = f"flood/{write}"
            writer.call({"cmd": "put", "key": key, "value": write}, timeout=5)
            t0 = time.monotonic()
            ok = wait_until(lambda: all(p.call({"cmd": "get", "key": key}, timeout=5) is not None for p in nodes),
                            15, interval=0.1)
            assert ok, f"{key} written on {writer.node_id} did not reach every node during the flood"
            lags.append(time.monotonic() - t0)
            write += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        outputs = []
        for rogue in rogues:
            out, err = rogue.communicate(timeout=60)
            assert rogue.returncode == 0, err[-2000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        assert wait_until(lambda: converged(nodes), 15), "cluster did not settle after the flood"
        status = n1.status()
        dropped = status["dropped"]
        rss_end = n1.rss_kib()
        print(f"\nflood: rogue sent {outputs[0]}, handshakes {outputs[1]}; n1 dropped {dict(sorted(dropped.items()))}")
        print(f"flood: n1 RSS start {rss_start} KiB, peak {max(rss)} KiB, end {rss_end} KiB; "
              f"{write} writes during the flood, propagation max {max(lags):.2f}s mean {sum(lags) / len(lags):.2f}s")
        for cause in ("rate_limited", "oversized", "version", "frame_count", "spoofed_sender", "auth_refused"):
            assert dropped.get(cause, 0) > 0, (cause, dropped)
        assert dropped.get("malformed", 0) + dropped.get("bad_magic", 0) > 0, dropped
        assert not dropped.get("handler_error"), dropped
        for proc in nodes:
            members = proc.status()["members"]
            assert members["alive"] == 3 and members["dead"] == 0, (proc.node_id, members)
        # bounded: the flood may cost some buffers, but no growth with the amount of garbage sent
        assert max(rss) - rss_start < 150 * 1024, (rss_start, max(rss))
        second_half = rss[len(rss) // 2:]
        assert max(second_half) - min(second_half) < 64 * 1024, second_half
        # and it gives the memory back: RSS returns near its baseline (bounded queues, no retained garbage)
        after: list[int] = []
        settled = wait_until(lambda: after.append(n1.rss_kib()) or after[-1] - rss_start < RETURN_KIB, 30)
        print(f"flood: n1 RSS after the flood {after[:1]} .. {after[-1]} KiB (start {rss_start} KiB)")
        assert settled, (rss_start, after[-5:])
    finally:
        for rogue in rogues:
            if rogue.poll() is None:
                rogue.kill()
                rogue.wait(timeout=10)
        for proc in nodes:
            proc.stop()

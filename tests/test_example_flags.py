"""examples/feature-flags: three real instances (processes), a flag set on one shows up on the
others - in their HTTP answers and in their change logs - and SIGTERM leaves gracefully."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_ports, wait_until

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "feature-flags" / "flags.py"


def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Instances:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http: dict[str, int] = {}

    def start(self, name: str, gossip: int, http_port: int, seed: int | None = None) -> None:
        args = [sys.executable, str(APP), "--id", name, "--gossip", f"127.0.0.1:{gossip}",
                "--http", f"127.0.0.1:{http_port}", "--control", f"ipc://{self.workdir}/{name}.ctl"]
        if seed is not None:
            args += ["--seed", f"127.0.0.1:{seed}"]
        with open(self.workdir / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                                start_new_session=True)
        self.http[name] = http_port

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def alive(self, name: str) -> list[str]:
        try:
            status, members = http(self.http[name], "GET", "/members")
        except OSError:
            return []
        return sorted(m["id"] for m in members if m["status"] == "alive") if status == 200 else []

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                codes[name] = None
        return codes


@pytest.fixture
def instances() -> Iterator[Instances]:
    workdir = Path(tempfile.mkdtemp(prefix="gmqf-", dir="/tmp"))   # short: ipc paths are limited
    group = Instances(workdir)
    try:
        yield group
    except BaseException:
        for name in group.procs:
            sys.stderr.write(f"---- log of {name} ----\n{group.log(name)[-3000:]}\n")
        raise
    finally:
        group.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_flag_set_on_one_instance_reaches_the_others_and_their_change_logs(instances: Instances) -> None:
    g1, g2, g3, h1, h2, h3 = free_ports(6)
    instances.start("f1", g1, h1)
    instances.start("f2", g2, h2, seed=g1)
    instances.start("f3", g3, h3, seed=g1)
    wait_until(lambda: all(instances.alive(n) == ["f1", "f2", "f3"] for n in ("f1", "f2", "f3")), 30,
               "every instance to see all three alive")

    assert http(h1, "PUT", "/flags/dark-mode?ack=all", True) == (200, {"flag": "dark-mode", "value": True,
                                                                        "acked": 3})
    for port in (h2, h3):   # ack=all: both hold it when the PUT returns
        assert http(port, "GET", "/flags/dark-mode") == (200, True)
    rollout = {"enabled": True, "percent": 25}
    assert http(h3, "PUT", "/flags/checkout-v2", rollout)[0] == 200
    wait_until(lambda: all(http(p, "GET", "/flags")[1] == {"dark-mode": True, "checkout-v2": rollout}
                           for p in (h1, h2, h3)), 10, "both flags everywhere")
    assert http(h2, "DELETE", "/flags/dark-mode?ack=all")[0] == 200
    wait_until(lambda: all(http(p, "GET", "/flags")[1] == {"checkout-v2": rollout} for p in (h1, h2, h3)),
               10, "the delete everywhere")

    # every instance logged every change, with where it was made
    expected = {"f1": [("dark-mode", None, True, False, "f1", "local"),
                       ("checkout-v2", None, rollout, False, "f3", "remote"),
                       ("dark-mode", True, None, True, "f2", "remote")],
                "f2": [("dark-mode", None, True, False, "f1", "remote"),
                       ("checkout-v2", None, rollout, False, "f3", "remote"),
                       ("dark-mode", True, None, True, "f2", "local")],
                "f3": [("dark-mode", None, True, False, "f1", "remote"),
                       ("checkout-v2", None, rollout, False, "f3", "local"),
                       ("dark-mode", True, None, True, "f2", "remote")]}
    for name, port in (("f1", h1), ("f2", h2), ("f3", h3)):
        changes = [(c["flag"], c["old"], c["new"], c["deleted"], c["origin"], c["source"])
                   for c in http(port, "GET", "/changes")[1]]
        assert sorted(changes, key=repr) == sorted(expected[name], key=repr), name
    for name in ("f2", "f3"):
        assert f"{name} flag dark-mode: null -> true (set on f1)" in instances.log(name)
    assert 'f1 flag checkout-v2: null -> {"enabled": true, "percent": 25} (set on f3)' in instances.log("f1")
    assert "f1 flag dark-mode: true -> deleted (set on f2)" in instances.log("f1")

    # the HTTP face refuses what it cannot do, with a reason
    assert http(h1, "GET", "/flags/nope")[0] == 404
    assert http(h1, "GET", "/flags/bad%20name")[0] == 400
    assert http(h1, "PUT", "/flags/x?ack=4", 1) == (400, {"error": "--ack 4 needs 4 copies but only 3 members "
                                                                   "(this node included) are reachable"})
    assert http(h1, "PUT", "/flags/x?ack=bogus", 1)[0] == 400
    assert http(h1, "POST", "/flags/x", 1)[0] == 405
    assert http(h1, "GET", "/flags")[1] == {"checkout-v2": rollout}   # nothing refused was written

    codes = instances.stop()   # SIGTERM: each leaves the cluster gracefully and exits 0
    assert codes == {"f1": 0, "f2": 0, "f3": 0}
    for name in ("f1", "f2", "f3"):
        assert f"{name} left the cluster" in instances.log(name)

"""curve security over real sockets: `gossipctl run` processes on 127.0.0.1 (bounded waits,
processes always stopped). Each test proves one line of the threat model in docs/security.md."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipmq.transports.curve import keygen, load_secret, retire, revoke, trust_cert
from tests._security_helpers import Proc, converged, free_ports, make_keys, wait_until, write_secure_config

pytestmark = pytest.mark.slow


@pytest.fixture()
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def start(procs: list[Proc], config: Path, names: list[str], ports: list[int], logs: Path,
          seed_id: str = "n1") -> list[Proc]:
    out = []
    for name, port in zip(names, ports):
        seed = None if name == seed_id and not procs else f"{seed_id}@tcp://127.0.0.1:{ports[0]}"
        proc = Proc(config, name, port, seed, logs)
        procs.append(proc)
        out.append(proc)
    return out


def logs_of(procs: list[Proc]) -> str:
    return "\n".join(f"--- {p.node_id}\n{p.tail()}" for p in procs)


def get(proc: Proc, key: str):
    return proc.call({"cmd": "get", "key": key})


def test_secure_cluster_converges(tmp_path: Path, procs: list[Proc]) -> None:
    make_keys(tmp_path, ["n1", "n2", "n3"])
    config = write_secure_config(tmp_path / "secure.toml")
    nodes = start(procs, config, ["n1", "n2", "n3"], free_ports(3), tmp_path)
    assert wait_until(lambda: converged(nodes), 20), logs_of(nodes)
    nodes[1].call({"cmd": "put", "key": "k", "value": "v"})
    assert wait_until(lambda: all((get(p, "k") or {}).get("value") == "v" for p in nodes), 10), logs_of(nodes)
    assert wait_until(lambda: converged(nodes), 10)
    for proc in nodes:
        status = proc.status()
        assert not status["dropped"], (proc.node_id, status["dropped"])
        keys = proc.call({"cmd": "keys_status"})
        assert keys["signing"] is True and keys["active_keys"] == 3


def test_untrusted_node_cannot_join_read_or_write(tmp_path: Path, procs: list[Proc]) -> None:
    make_keys(tmp_path, ["n1", "n2"])
    config = write_secure_config(tmp_path / "secure.toml")
    ports = free_ports(3)
    nodes = start(procs, config, ["n1", "n2"], ports[:2], tmp_path)
    assert wait_until(lambda: converged(nodes), 20), logs_of(nodes)
    nodes[0].call({"cmd": "put", "key": "secret", "value": "for members only"})
    # eve has a well-formed key and trusts the cluster, but the cluster does not trust eve
    eve_dir = tmp_path / "eve"
    eve_dir.mkdir()
    keygen(eve_dir / "keys", "eve")
    for name in ("n1", "n2"):
        trust_cert(eve_dir / "keys" / "trusted", tmp_path / "keys" / f"{name}.key")
    eve = Proc(write_secure_config(eve_dir / "secure.toml"), "eve", ports[2], f"n1@tcp://127.0.0.1:{ports[0]}",
               tmp_path)
    procs.append(eve)
    assert wait_until(lambda: eve.status() is not None, 10)
    eve.call({"cmd": "put", "key": "eve/x", "value": "planted"})
    refused = wait_until(lambda: nodes[0].status()["dropped"].get("auth_refused", 0) >= 1, 15)
    assert refused, logs_of([*nodes, eve])
    time.sleep(1.0)   # several gossip rounds more: nothing may have leaked either way
    eve_status = eve.status()
    assert eve_status["joined"] is False and eve_status["members"]["alive"] == 1
    assert get(eve, "secret") is None                                     # cannot read
    assert all(get(p, "eve/x") is None for p in nodes)                    # cannot write
    assert all(m["id"] != "eve" for p in nodes for m in p.call({"cmd": "members"}))  # cannot join
    assert "refused a connection authenticated with untrusted key" in nodes[0].log.read_text()


def test_forged_updates_from_a_trusted_member_are_ignored(tmp_path: Path, procs: list[Proc]) -> None:
    make_keys(tmp_path, ["n1", "n2", "n3", "mallory"])
    config = write_secure_config(tmp_path / "secure.toml")
    nodes = start(procs, config, ["n1", "n2", "n3"], free_ports(3), tmp_path)
    assert wait_until(lambda: converged(nodes), 20), logs_of(nodes)
    _, n1_key = load_secret(tmp_path / "keys" / "n1.key_secret")
    out = subprocess.run([sys.executable, "-m", "tests._rogue", "forge", nodes[0].address, n1_key.curve_public,
                          str(tmp_path / "keys" / "mallory.key_secret"), "n2"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    time.sleep(1.0)   # gossip rounds: anything accepted would have spread by now
    status = nodes[0].status()
    assert status["dropped"].get("forged_entry", 0) >= 1 and status["dropped"].get("forged_claim", 0) >= 1
    for proc in nodes:
        assert get(proc, "forged") is None
        n2 = next(m for m in proc.call({"cmd": "members"}) if m["id"] == "n2")
        assert n2["status"] == "alive"


def test_revoked_key_is_cut_off(tmp_path: Path, procs: list[Proc]) -> None:
    make_keys(tmp_path, ["n1", "n2", "n3"])
    config = write_secure_config(tmp_path / "secure.toml")
    nodes = start(procs, config, ["n1", "n2", "n3"], free_ports(3), tmp_path)
    assert wait_until(lambda: converged(nodes), 20), logs_of(nodes)
    removed = revoke(tmp_path / "keys" / "trusted", "n3")   # shared trust dir: every node reloads it
    assert len(removed) == 1
    n1, n2, n3 = nodes
    assert wait_until(lambda: all(p.call({"cmd": "keys_status"})["active_keys"] == 2 for p in (n1, n2)), 10)

    def n3_gone() -> bool:
        return all(next(m for m in p.call({"cmd": "members"}) if m["id"] == "n3")["status"] in ("dead", "left")
                   for p in (n1, n2))
    assert wait_until(n3_gone, 20), logs_of(nodes)
    n3.call({"cmd": "put", "key": "from-n3", "value": 1})
    n1.call({"cmd": "put", "key": "from-n1", "value": 1})
    assert wait_until(lambda: get(n2, "from-n1") is not None, 10)
    time.sleep(1.0)
    assert get(n1, "from-n3") is None and get(n2, "from-n3") is None and get(n3, "from-n1") is None
    assert sum(n1.status()["dropped"].get(c, 0) for c in ("auth_refused", "revoked_key")) >= 1
    assert wait_until(lambda: converged([n1, n2], alive=2), 10)


def test_rotation_to_new_keys_without_membership_loss(tmp_path: Path, procs: list[Proc]) -> None:
    """The documented procedure (docs/security.md) on 3 nodes: trust new keys, rotate each node
    live, retire the old keys; a monitor polls every node throughout and must never see a member
    suspect, dead or left; data written before, during and after stays converged, and a node that
    joins afterwards still verifies entries signed with the retired keys."""
    names = ["n1", "n2", "n3"]
    make_keys(tmp_path, names)
    config = write_secure_config(tmp_path / "secure.toml", suspect_ms=1500, dead_ms=3000)
    ports = free_ports(4)
    nodes = start(procs, config, names, ports[:3], tmp_path)
    assert wait_until(lambda: converged(nodes), 20), logs_of(nodes)
    for i, proc in enumerate(nodes):
        proc.call({"cmd": "put", "key": f"before/{i}", "value": i})
    assert wait_until(lambda: converged(nodes), 10)

    bad: list[str] = []
    stop = threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            for proc in nodes:
                status = proc.status()
                if status is not None and (status["members"]["suspect"] or status["members"]["dead"]
                                           or status["members"]["left"] or status["members"]["alive"] != 3):
                    bad.append(f"{proc.node_id}: {status['members']}")
            time.sleep(0.1)
    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    trusted = tmp_path / "keys" / "trusted"
    old = {n: load_secret(tmp_path / "keys" / f"{n}.key_secret")[1].identity for n in names}
    try:
        new_secrets = {}
        for name in names:                                       # 1. trust every new key everywhere
            public, secret, _ = keygen(tmp_path / "keys" / "new", name)
            trust_cert(trusted, public)
            new_secrets[name] = secret
        assert wait_until(lambda: all(p.call({"cmd": "keys_status"})["active_keys"] == 6 for p in nodes), 10)
        for i, proc in enumerate(nodes):                         # 2. rotate each node live
            result = proc.call({"cmd": "keys_rotate", "key": str(new_secrets[proc.node_id])}, timeout=5)
            assert result["old"] == old[proc.node_id]
            proc.call({"cmd": "put", "key": f"during/{i}", "value": i})
            assert wait_until(lambda: converged(nodes), 10), logs_of(nodes)
        for name in names:                                       # 3. retire the old keys
            assert retire(trusted, old[name])
        assert wait_until(lambda: all(p.call({"cmd": "keys_status"})["active_keys"] == 3 for p in nodes), 10)
        for i, proc in enumerate(nodes):
            proc.call({"cmd": "put", "key": f"after/{i}", "value": i})
        assert wait_until(lambda: converged(nodes), 10), logs_of(nodes)
        time.sleep(2.0)   # longer than suspect_after: a node cut off by the rotation would show up now
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert not bad, bad[:10]
    assert all(p.call({"cmd": "keys_status"})["identity"] != old[p.node_id] for p in nodes)
    # 4. a newcomer that never knew the old keys as active gets everything, old signatures included
    late = Proc(config, "n4", ports[3], f"n1@tcp://127.0.0.1:{ports[0]}", tmp_path)
    procs.append(late)
    # n4's own key must be trusted by the others (and it reads the same trust dir)
    public, _, _ = keygen(tmp_path / "keys", "n4")
    trust_cert(trusted, public)
    everyone = [*nodes, late]
    assert wait_until(lambda: converged(everyone), 30), logs_of(everyone)
    assert get(late, "before/0") is not None
    assert not late.status()["dropped"].get("forged_entry")

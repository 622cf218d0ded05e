"""Prometheus metrics (transports/metrics.py): docs/metrics.md is the contract.

A real node (an `Agent` with a real ZeroMQ socket, and a `gossipctl run` process) is scraped over
HTTP; every family in the docs must be exported and every exported family documented. Every
counter the kernel and the built-in strategies keep has a family of its own (checked on the
sources), several agents in one process keep apart, and the failure cases say one line.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gossipmq.agent import Agent
from gossipmq.core.config import parse_listen
from gossipmq.core.errors import ConfigError, GossipError
from gossipmq.transports.metrics import CATALOGUE, FAMILIES, PREFIXES, Histogram, route
from tests.helpers import config, free_ports, registry, wait_until

pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "gossipmq-dashboard.json"
FAST = {"dissemination": {"strategy": "hybrid", "fanout": 2, "interval_ms": 100},
        "failure_detection": {"strategy": "swim", "probe_interval_ms": 300, "probe_timeout_ms": 150},
        "anti_entropy": {"interval_ms": 200}}


def documented() -> dict[str, tuple[str, str]]:
    """name -> (type, labels) from the docs table rows: | `name` | type | labels | meaning |."""
    rows = re.findall(r"^\| `(gossipmq_[a-z_]+)` \| (\w+) \| ([^|]*) \|", DOCS.read_text(), re.M)
    return {name: (kind, labels.strip()) for name, kind, labels in rows}


def exported(text: str) -> dict[str, str]:
    """name -> type from the # TYPE lines of an exposition."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def samples(text: str) -> dict[str, float]:
    """'name{labels}' -> value of every sample line (labels as printed)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return reply.read().decode()


def agent(node_id: str, port: int, metrics_port: int | None, tmp_path: Path, **tables: Any) -> Agent:
    doc = {k: dict(v) for k, v in FAST.items()}
    doc.update(tables)
    return Agent.from_config(doc, node_id=node_id, bind=f"tcp://127.0.0.1:{port}",
                             control=f"ipc://{tmp_path}/{node_id}.ctl",
                             metrics=f"127.0.0.1:{metrics_port}" if metrics_port else None)


# ---- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9946", ("127.0.0.1", 9946)), ("[::1]:9946", ("::1", 9946)), ("0.0.0.0:1", ("0.0.0.0", 1)),
    ("localhost:65535", ("localhost", 65535)), ("[::]:80", ("::", 80))])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text, why", [
    ("9946", "not HOST:PORT"), (":9946", "not HOST:PORT"), ("127.0.0.1:0", "1 to 65535"),
    ("127.0.0.1:65536", "1 to 65535"), ("127.0.0.1:http", "1 to 65535"), ("::1:9946", "in brackets"),
    ("[nope]:9946", "not an IPv6 address"), ("a b:1", "not a host name")])
def test_bad_listen_addresses_name_file_table_and_key(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        from gossipmq.core.config import parse_config
        parse_config({"metrics": {"listen": text}}, registry(), "node.toml")
    assert str(err.value).startswith("node.toml [metrics] key 'listen': ") and why in str(err.value)


def test_metrics_table_is_optional_and_overridable() -> None:
    assert config().metrics.listen == ""
    assert config({"metrics": {"listen": "127.0.0.1:9946"}}).metrics.listen == "127.0.0.1:9946"
    env = {"GOSSIPMQ_METRICS__LISTEN": "127.0.0.1:9000"}
    assert Agent.from_config(None, env=env).config.metrics.listen == "127.0.0.1:9000"
    assert Agent.from_config(None, env=env, metrics="[::1]:9001").config.metrics.listen == "[::1]:9001"
    with pytest.raises(ConfigError, match="must be in brackets"):
        Agent.from_config(None, metrics="::1:9001")


# ---- the catalogue -----------------------------------------------------------------------------
KERNEL_MODULES = ("node.py", "cluster.py", "replication.py", "anti_entropy.py")


def test_every_builtin_counter_has_a_family_of_its_own() -> None:
    """Every literal counter name of the kernel, the built-in strategies and the runtime's kernel
    hooks routes to a documented family, never to the generic one for unknown names."""
    names: set[str] = set()
    for folder in ("core", "plugins", "transports"):
        for path in (ROOT / folder).glob("*.py"):
            if path.name == "metrics.py":
                continue   # its docstring shows a third-party counter on purpose
            text = path.read_text()
            names |= set(re.findall(r"(?:ctx|node)\.count\(\"([^\"]+)\"", text))
            if path.name in KERNEL_MODULES:   # the node's own counters (other core modules keep private stats)
                names |= set(re.findall(r"(?:self|node)\.stats\[\"([^\"]+)\"\] \+=", text))
    assert len(names) > 30, names
    generic = {n for n in names if route(n)[0] == "gossipmq_kernel_events_total"}
    assert not generic, f"counters without a family in transports/metrics.py CATALOGUE: {sorted(generic)}"
    # the f-string families of core/node.py (in.<type>, out.<type>, dropped.<cause>, declared_<status>)
    kernel = "".join((ROOT / "core" / name).read_text() for name in KERNEL_MODULES)
    for prefix, family, _ in PREFIXES:
        assert f'self.stats[f"{prefix}{{' in kernel or f'node.stats[f"{prefix}{{' in kernel, prefix
        assert family in FAMILIES
    assert {family for family, _ in CATALOGUE.values()} <= set(FAMILIES)


def test_docs_and_code_list_the_same_families() -> None:
    docs = documented()
    assert set(docs) == set(FAMILIES), (set(docs) ^ set(FAMILIES))
    for name, (kind, labels) in docs.items():
        spec = FAMILIES[name]
        assert kind == spec.kind, name
        assert labels == (", ".join(f"`{lb}`" for lb in spec.labels) or "-"), name


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert h.count == 4 and abs(h.sum - 3.65) < 1e-9


# ---- real nodes --------------------------------------------------------------------------------
def test_scrape_of_a_real_node_matches_the_docs(tmp_path: Path) -> None:
    """Two agents with real sockets; `a` (sqlite) serves metrics. The scrape shows every documented
    family, nothing undocumented, and plausible values."""
    p1, p2, m1 = free_ports(3)
    url = f"http://127.0.0.1:{m1}/metrics"

    async def scenario() -> tuple[str, str, dict[str, int]]:
        a = agent("a", p1, m1, tmp_path, storage={"backend": "sqlite", "path": str(tmp_path / "{id}.db")})
        b = Agent.from_config({k: dict(v) for k, v in FAST.items()}, node_id="b", bind=f"tcp://127.0.0.1:{p2}",
                              control=f"ipc://{tmp_path}/b.ctl", seeds=[f"tcp://127.0.0.1:{p1}"])
        async with a, b:
            for i in range(5):
                await a.put(f"from-a/{i}", i)
                await b.put(f"from-b/{i}", i)
            for _ in range(100):
                if len(a.keys()) == 10 and len(b.keys()) == 10 and a.status()["converged"]:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)   # one event-loop lag sample at least
            assert a.node is not None
            a.node.ctx.count("acme.widgets", 3)   # a third-party strategy's counter
            first = await asyncio.to_thread(scrape, url)
            stats = dict(a.node.stats)
            return first, await asyncio.to_thread(scrape, url), stats

    text, again, stats = asyncio.run(scenario())
    docs, found = documented(), exported(text)
    assert set(found) == set(docs), f"undocumented: {set(found) - set(docs)}; missing: {set(docs) - set(found)}"
    assert all(found[name] == docs[name][0] for name in docs)
    values = samples(text)
    assert values['gossipmq_members{state="alive"}'] == 2
    assert values['gossipmq_store_keys'] == 10
    assert values['gossipmq_converged'] == 1
    assert values['gossipmq_messages_received_total{type="join"}'] >= 1
    assert values['gossipmq_messages_sent_total{type="join_ack"}'] >= 1
    assert values['gossipmq_received_bytes_total'] > 0 and values['gossipmq_sent_bytes_total'] > 0
    assert values['gossipmq_probes_total'] >= 1
    assert values['gossipmq_entries_applied_total'] >= 5
    assert values['gossipmq_propagation_lag_seconds_count'] >= 5
    assert values['gossipmq_storage_commit_duration_seconds_count'] >= 5
    assert values['gossipmq_event_loop_lag_seconds_count'] >= 1
    assert values['gossipmq_kernel_events_total{name="acme.widgets"}'] == 3
    assert any(k.startswith("gossipmq_build_info{version=") for k in values)
    assert 'node_id="a"' in next(k for k in values if k.startswith("gossipmq_node_info"))
    # every kernel counter the node kept is exported under its family, with its value
    for name, n in stats.items():
        family, labels = route(name)
        assert family != "gossipmq_kernel_events_total" or name == "acme.widgets", name
        key = family + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")
        assert values[key] <= n <= samples(again)[key], (name, key)


def test_two_agents_in_one_process_do_not_collide(tmp_path: Path) -> None:
    p1, p2, m1, m2 = free_ports(4)

    async def scenario() -> tuple[str, str]:
        a = agent("a", p1, m1, tmp_path)
        b = agent("b", p2, m2, tmp_path)
        async with a, b:
            await a.put("only-on-a", 1)
            return (await asyncio.to_thread(scrape, f"http://127.0.0.1:{m1}/metrics"),
                    await asyncio.to_thread(scrape, f"http://127.0.0.1:{m2}/metrics"))

    text_a, text_b = asyncio.run(scenario())
    assert 'node_id="a"' in text_a and 'node_id="b"' not in text_a
    assert 'node_id="b"' in text_b and 'node_id="a"' not in text_b
    assert samples(text_a)["gossipmq_writes_total"] == 1 and samples(text_b)["gossipmq_writes_total"] == 0
    from prometheus_client import REGISTRY, generate_latest
    assert b"gossipmq_" not in generate_latest(REGISTRY)   # the process-wide registry is left alone


def test_busy_port_is_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    port, metrics_port = free_ports(2)
    busy = socket.socket()
    busy.bind(("127.0.0.1", metrics_port))
    busy.listen()

    async def scenario() -> str:
        try:
            await agent("a", port, metrics_port, tmp_path).start()
        except GossipError as exc:
            message = str(exc)
        else:
            raise AssertionError("started on a busy metrics port")
        again = agent("a", port, None, tmp_path)   # the inbox and control endpoint were released
        async with again:
            pass
        return message

    try:
        message = asyncio.run(scenario())
    finally:
        busy.close()
    assert message == (f"cannot serve metrics on 127.0.0.1:{metrics_port}: Address already in use "
                       f"(another node or program listens there)")


def test_http_answers_and_the_endpoint_closes_with_the_agent(tmp_path: Path) -> None:
    port, metrics_port = free_ports(2)

    async def scenario() -> list[Any]:
        async with agent("a", port, metrics_port, tmp_path):
            out: list[Any] = []
            for path, method in (("/nope", "GET"), ("/metrics", "POST"), ("/metrics", "HEAD"), ("/", "GET")):
                request = urllib.request.Request(f"http://127.0.0.1:{metrics_port}{path}", method=method)
                try:
                    reply = await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
                    out.append((reply.status, len(reply.read())))
                except urllib.error.HTTPError as exc:
                    out.append(exc.code)
            reader, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
            writer.write(b"garbage\r\n\r\n")
            out.append(await reader.read())
            writer.close()
        with pytest.raises(OSError):   # closing the agent closed the endpoint
            await asyncio.open_connection("127.0.0.1", metrics_port)
        return out

    answers = asyncio.run(scenario())
    assert answers[0] == 404 and answers[1] == 405
    assert answers[2] == (200, 0) and answers[3][0] == 200 and answers[3][1] > 1000
    assert answers[4].startswith(b"HTTP/1.1 405")


def test_without_prometheus_client(tmp_path: Path) -> None:
    """With the package missing: a node without [metrics] runs as before; one with it refuses to
    start with one line telling how to install it."""
    port, metrics_port = free_ports(2)
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.modules["prometheus_client"] = None   # import prometheus_client -> ImportError
        from gossipmq.agent import Agent
        from gossipmq.core.errors import GossipError

        async def main():
            async with Agent.from_config(None, node_id="a", bind="tcp://127.0.0.1:{port}",
                                         control="ipc://{tmp_path}/a.ctl") as a:
                await a.put("k", "v")
            print("plain node ran")
            try:
                await Agent.from_config(None, node_id="a", bind="tcp://127.0.0.1:{port}",
                                        control="ipc://{tmp_path}/a.ctl", metrics="127.0.0.1:{metrics_port}").start()
            except GossipError as exc:
                print(exc)
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "plain node ran",
        "[metrics] listen is set but prometheus_client is not installed: pip install 'gossipmq[metrics]' "
        "(or: pip install prometheus_client)"]


def test_gossipctl_run_serves_metrics_from_the_environment(tmp_path: Path) -> None:
    """A real `gossipctl run` process, metrics address from GOSSIPMQ_METRICS; a bad --metrics is
    one line and exit code 2 before anything starts."""
    port, metrics_port = free_ports(2)
    env = {**os.environ, "GOSSIPMQ_METRICS": f"127.0.0.1:{metrics_port}"}
    base = [sys.executable, "-m", "gossipmq", "run", "--node-id", "solo", "--bind", f"tcp://127.0.0.1:{port}",
            "--control", f"ipc://{tmp_path}/solo.ctl"]
    bad = subprocess.run([*base, "--metrics", "localhost:99999"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "1 to 65535" in bad.stderr
    proc = subprocess.Popen(base, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        text = wait_until(lambda: _try_scrape(f"http://127.0.0.1:{metrics_port}/metrics"), 20, "metrics endpoint")
        assert 'gossipmq_members{state="alive"} 1.0' in text
        assert set(exported(text)) == set(documented())
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""


def _try_scrape(url: str) -> str | None:
    try:
        return scrape(url)
    except OSError:
        return None


def test_dashboard_uses_documented_names_only() -> None:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10
    used = {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs for n in re.findall(r"gossipmq_[a-z_]+", e)}
    assert used <= set(documented()), used - set(documented())
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("members", "messages", "bytes", "drops", "probes", "lag", "converged", "commit", "loop",
                  "hook errors"):
        assert topic in titles, topic

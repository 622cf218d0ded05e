"""Runtime-side membership pieces: config tables ([hooks], [chaos], tags), chaos injection,
seed normalisation/resolution and the event scripts (run in a real asyncio loop)."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gossipmq.core.config import ChaosSection, HooksSection, parse_config
from gossipmq.core.effects import Send
from gossipmq.core.errors import ConfigError
from gossipmq.transports.chaos import Chaos, parse_chaos_env
from gossipmq.transports.event_scripts import EventScripts, member_env
from gossipmq.transports.seeds import SeedResolver, is_dns_name, normalize_seed

from .helpers import registry

MEMBER = {"id": "n7", "address": "tcp://127.0.0.1:7953", "status": "dead", "incarnation": 42,
          "tags": {"zone": "eu-1", "role": "db"}, "heartbeat": 3}


def test_tags_are_size_limited_with_file_table_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"node": {"tags": {"blob": "x" * 600}}}, registry(), "n.toml")
    assert str(err.value).startswith("n.toml [node] key 'tags':")


def test_hooks_and_chaos_tables_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"h.toml \[hooks\] key 'joind'"):
        parse_config({"hooks": {"joind": "echo"}}, registry(), "h.toml")
    with pytest.raises(ConfigError, match=r"\[chaos\] key 'loss'"):
        parse_config({"chaos": {"loss": 1.5}}, registry(), "c.toml")
    cfg = parse_config({"hooks": {"failed": ["/bin/true"], "concurrency": 2}, "chaos": {"loss": 0.1}}, registry())
    assert cfg.hooks.failed == ["/bin/true"] and cfg.chaos.loss == 0.1


def test_chaos_env_overrides_config_and_names_bad_keys() -> None:
    assert parse_chaos_env("loss=0.05, delay_ms=20,seed=3") == ChaosSection(loss=0.05, delay_ms=20, seed=3)
    with pytest.raises(ConfigError, match="GOSSIPMQ_CHAOS.*'delay_ms'"):
        parse_chaos_env("delay_ms=soon")
    assert Chaos.from_config(ChaosSection(), {}) is None
    assert Chaos.from_config(ChaosSection(), {"GOSSIPMQ_CHAOS": "loss=0.5"}).loss == 0.5  # type: ignore[union-attr]


def test_chaos_drops_about_the_configured_share_and_delays_the_rest() -> None:
    async def scenario() -> tuple[int, int, float]:
        loop = asyncio.get_running_loop()
        chaos = Chaos(ChaosSection(loss=0.1, delay_ms=30, seed=1))
        arrived: list[float] = []
        start = loop.time()
        for _ in range(2000):
            chaos.send(Send("tcp://x:1", None), lambda s: arrived.append(loop.time()), loop)  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        return len(arrived), chaos.stats["chaos_dropped"], min(arrived) - start
    delivered, dropped, first = asyncio.run(scenario())
    assert delivered + dropped == 2000 and 150 < dropped < 250
    assert first >= 0.029


@pytest.mark.parametrize("text, expected", [
    ("tcp://10.0.0.1:7946", "tcp://10.0.0.1:7946"), ("seed.internal:8000", "tcp://seed.internal:8000"),
    ("seed.internal", "tcp://seed.internal:7946"), ("ipc:///tmp/n1.sock", "ipc:///tmp/n1.sock"),
    ("n1@seed.internal:8000", "n1@tcp://seed.internal:8000"),
    ("seed.internal#" + "k" * 40, "tcp://seed.internal:7946#" + "k" * 40),
])
def test_seed_forms_are_normalised(text: str, expected: str) -> None:
    assert normalize_seed(text) == expected


def test_dns_seeds_are_resolved_each_time_and_exclude_ourselves() -> None:
    assert is_dns_name("tcp://localhost:7946") and not is_dns_name("tcp://127.0.0.1:7946")
    resolver = SeedResolver(["tcp://localhost:7946", "tcp://127.0.0.1:9"], own=["tcp://127.0.0.1:7946"])
    assert resolver.names == {"tcp://localhost:7946"}
    assert "tcp://127.0.0.1:7946" not in asyncio.run(resolver.resolve("tcp://localhost:7946"))
    assert "tcp://127.0.0.1:7947" in asyncio.run(SeedResolver([]).resolve("tcp://localhost:7947"))


def test_member_env_carries_event_member_and_tags() -> None:
    env = member_env("n1", MEMBER, "suspect", "failed")
    assert env["GOSSIPMQ_EVENT"] == "failed" and env["GOSSIPMQ_SELF_ID"] == "n1"
    assert env["GOSSIPMQ_MEMBER_ID"] == "n7" and env["GOSSIPMQ_MEMBER_PREVIOUS"] == "suspect"
    assert env["GOSSIPMQ_MEMBER_INCARNATION"] == "42" and env["GOSSIPMQ_TAG_ZONE"] == "eu-1"
    assert json.loads(env["GOSSIPMQ_MEMBER_TAGS"]) == MEMBER["tags"]


def _run_events(scripts: EventScripts, events: list[str], settle: float) -> None:
    async def scenario() -> None:
        for reason in events:
            scripts.gossipmq_member_changed(node_id="n1", member=MEMBER, previous="alive", reason=reason)
        deadline = asyncio.get_running_loop().time() + settle
        while scripts.pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    asyncio.run(scenario())


def test_scripts_run_with_the_environment_and_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = f'{sys.executable} -c "import os,sys; open(\'{out}\',\'a\').write(os.environ[\'GOSSIPMQ_EVENT\'] + \' \' + os.environ[\'GOSSIPMQ_MEMBER_ID\'] + \' \' + sys.stdin.read() + chr(10))"'
    scripts = EventScripts(HooksSection(failed=script, left=["/bin/false"]))
    _run_events(scripts, ["failed", "joined", "left"], settle=10.0)
    lines = out.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("failed n7 ")
    assert json.loads(lines[0].split(" ", 2)[2])["member"]["tags"]["zone"] == "eu-1"
    assert scripts.stats["succeeded"] == 1 and scripts.stats["failed"] == 1


def test_scripts_are_bounded_killed_on_timeout_and_never_block(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "running"
    slow = f"echo x >> {marker}; sleep 5"
    scripts = EventScripts(HooksSection(any=slow, concurrency=2, queue=3, timeout_ms=300))

    async def scenario() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5):
            scripts.gossipmq_member_changed(node_id="n1", member=MEMBER, previous=None, reason="joined")
        returned = loop.time() - start
        await asyncio.sleep(0.2)
        running = len(marker.read_text().splitlines()) if marker.exists() else 0
        while scripts.pending and loop.time() - start < 10:
            await asyncio.sleep(0.05)
        return running, returned

    running, returned = asyncio.run(scenario())
    assert returned < 0.1, "queuing an event never waits for a script"
    assert running == 2, "at most `concurrency` scripts at once"
    assert scripts.stats["dropped"] == 2 and scripts.stats["timed_out"] == 3
    assert "killed after 0.3s" in caplog.text

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pluggy
import pytest

from gossipmq.core import hookimpl
from gossipmq.core.errors import PluginError
from gossipmq.core.plugins import build_registry, make_plugin_manager, register_plugin
from gossipmq.core.strategies import NoOptions, PeerSelector
from tests.helpers import free_ports, process_cluster, wait_until

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gossipmq-ring-selector"


def test_builtins_register_one_strategy_per_concern_at_least() -> None:
    registry = build_registry(make_plugin_manager(load_entrypoints=False))
    assert registry.names("peer_selection")[:1] and "uniform" in registry.names("peer_selection")
    assert {"push", "pull", "hybrid"} <= set(registry.names("dissemination"))
    assert "heartbeat" in registry.names("failure_detection")
    assert "lww" in registry.names("conflict_resolution")
    assert "none" in registry.names("security")


def test_a_plugin_registered_in_process_is_selectable() -> None:
    class Nearest(PeerSelector):
        """Always the first member."""

        def __init__(self, options: NoOptions) -> None:
            pass

        def select(self, ctx, k, exclude=()):  # type: ignore[no-untyped-def]
            return sorted(ctx.members.reachable_ids())[:k]

    class Plugin:
        @hookimpl
        def gossipmq_register_strategies(self, registry):  # type: ignore[no-untyped-def]
            registry.register("peer_selection", "first_member", Nearest)   # "nearest" is built in now

    pm = make_plugin_manager(load_entrypoints=False)
    register_plugin(pm, Plugin(), name="first_member")
    assert build_registry(pm).get("peer_selection", "first_member").description == "Always the first member."


def test_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def gossipmq_register_strategys(self, registry):  # type: ignore[no-untyped-def]
            pass

    pm = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(pluggy.PluginValidationError, match="gossipmq_register_strategys"):
        register_plugin(pm, Typo(), name="typo")


def test_duplicate_strategy_names_are_refused() -> None:
    class Dup:
        @hookimpl
        def gossipmq_register_strategies(self, registry):  # type: ignore[no-untyped-def]
            registry.register("dissemination", "push", lambda options: None)

    pm = make_plugin_manager(load_entrypoints=False)
    register_plugin(pm, Dup(), name="dup")
    with pytest.raises(PluginError, match="registered twice"):
        build_registry(pm)


@pytest.mark.slow
def test_third_party_plugin_installs_through_entry_points_and_runs_from_toml() -> None:
    """The whole path a plugin author takes: pip install, `gossipctl plugins`, select in TOML, run."""
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(EXAMPLE)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    listed = subprocess.run([sys.executable, "-m", "gossipmq", "plugins", "--json"], capture_output=True,
                            text=True, timeout=60)
    rows = {(r["concern"], r["name"]): r for r in orjson.loads(listed.stdout)}
    assert rows[("peer_selection", "ring")]["package"] == "gossipmq-ring-selector"
    assert rows[("peer_selection", "ring")]["options"] == ["random_share", "stride"]
    # GOSSIPMQ_LOAD_PLUGINS restricts third-party plugins to the listed entry points
    only = subprocess.run([sys.executable, "-m", "gossipmq", "plugins", "--json"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "GOSSIPMQ_LOAD_PLUGINS": ""})
    assert ("peer_selection", "ring") not in {(r["concern"], r["name"]) for r in orjson.loads(only.stdout)}

    with process_cluster((EXAMPLE / "ring.toml").read_text()) as cluster:
        ports = free_ports(3)
        cluster.start("r0", ports[0])
        cluster.start("r1", ports[1], seeds=[cluster.addresses["r0"]])
        cluster.start("r2", ports[2], seeds=[cluster.addresses["r0"]])
        assert cluster.call("r0", "status")["strategies"]["peer_selection"] == "ring"
        cluster.call("r2", "put", key="via-ring", value=1)
        wait_until(lambda: all(cluster.call(n, "get", key="via-ring") for n in ("r0", "r1", "r2")), 10,
                   "via-ring on every node")


def test_a_broken_third_party_plugin_is_skipped_with_one_line(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import importlib.metadata as md

    from gossipmq.core import plugins
    broken = md.EntryPoint(name="broken", value="gossipmq_no_such_module", group="gossipmq")
    real = md.entry_points
    monkeypatch.setattr(md, "entry_points", lambda group=None: [*real(group=group), broken])
    with caplog.at_level("WARNING", logger="gossipmq.plugins"):
        registry = build_registry(make_plugin_manager())
    assert "hybrid" in registry.names("dissemination")           # everything else still loads
    assert [r.getMessage() for r in caplog.records if "broken" in r.getMessage()] == [
        "skipping plugin entry point 'broken' (gossipmq_no_such_module): failed to load: "
        "No module named 'gossipmq_no_such_module'"]
    assert "broken" in plugins.LOAD_FAILURES

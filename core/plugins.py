"""Plugin discovery: entry points in the `gossipmq` group (built-ins use the same group),
then the strategy registry is filled through the registration hook.

Environment switches (as datasette/llm do):
  GOSSIPMQ_LOAD_PLUGINS=a,b   load only these entry points (built-ins always load)
  GOSSIPMQ_TRACE_PLUGINS=1    trace every hook call to stderr
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
from types import ModuleType

import pluggy

from . import hookspecs
from .registry import StrategyRegistry

GROUP = "gossipmq"
log = logging.getLogger("gossipmq.plugins")
#: entry points that failed to import (name -> reason); their strategies are simply not offered,
#: so a config that selects one fails with the usual "unknown strategy (installed: ...)" error.
LOAD_FAILURES: dict[str, str] = {}
BUILTIN_MODULES = (
    "gossipmq.plugins.peer_selection",
    "gossipmq.plugins.dissemination",
    "gossipmq.plugins.failure_detection",
    "gossipmq.plugins.conflict_resolution",
    "gossipmq.plugins.multi_value",
    "gossipmq.plugins.crdt",
    "gossipmq.plugins.security",
    "gossipmq.plugins.swim",
    "gossipmq.plugins.phi",
    "gossipmq.plugins.rumor",
)


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    # Built-ins are declared as entry points too; load them by module so a source checkout
    # that was never pip-installed still works, then let entry points add the rest.
    for name in BUILTIN_MODULES:
        module = importlib.import_module(name)
        pm.register(module, name=name)
    if load_entrypoints:
        allow = os.environ.get("GOSSIPMQ_LOAD_PLUGINS")
        wanted = {n.strip() for n in allow.split(",") if n.strip()} if allow is not None else None
        for ep in importlib.metadata.entry_points(group=GROUP):
            if ep.value in BUILTIN_MODULES or pm.get_plugin(ep.value) is not None:
                continue
            if wanted is not None and ep.name not in wanted:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # one broken third-party plugin must not take every command down
                log.warning("skipping plugin entry point %r (%s): failed to load: %s", ep.name, ep.value, exc)
                LOAD_FAILURES[ep.name] = f"{ep.value}: {exc}"
                continue
            pm.register(plugin, name=ep.value)
    pm.check_pending()
    if os.environ.get("GOSSIPMQ_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: object | ModuleType, name: str | None = None) -> None:
    """Register an extra plugin object (tests, embedding applications)."""
    pm.register(plugin, name=name)
    pm.check_pending()


def build_registry(pm: pluggy.PluginManager) -> StrategyRegistry:
    registry = StrategyRegistry()
    pm.hook.gossipmq_register_strategies(registry=registry)
    return registry

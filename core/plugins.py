"""Plugin discovery: entry points in the `gossipmq` group (built-ins use the same group),
then the strategy registry is filled through the registration hook.

Environment switches (as datasette/llm do):
  GOSSIPMQ_LOAD_PLUGINS=a,b   load only these entry points (built-ins always load)
  GOSSIPMQ_TRACE_PLUGINS=1    trace every hook call to stderr
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from types import ModuleType

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import StrategyRegistry

GROUP = "gossipmq"
log = logging.getLogger("gossipmq.plugins")
#: entry points that failed to import (name -> reason); their strategies are simply not offered,
#: so a config that selects one fails with the usual "unknown strategy (installed: ...)" error.
LOAD_FAILURES: dict[str, str] = {}
#: entry points of this distribution (the built-in strategies): always loaded, never skipped
BUILTIN_PREFIX = "gossipmq."


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A plugin manager with every installed plugin registered. Built-ins come through the same
    entry-point group as third-party plugins (no private back door); `load_entrypoints=False`
    registers the built-ins only (tests that add their own plugin objects)."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allow = os.environ.get("GOSSIPMQ_LOAD_PLUGINS")
    wanted = {n.strip() for n in allow.split(",") if n.strip()} if allow is not None else None
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.value):
        builtin = ep.value.startswith(BUILTIN_PREFIX)
        if pm.get_plugin(ep.value) is not None or (not builtin and (not load_entrypoints or (
                wanted is not None and ep.name not in wanted))):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # one broken third-party plugin must not take every command down
            if builtin:
                raise PluginError(f"built-in plugin {ep.value} failed to load: {exc}") from exc
            log.warning("skipping plugin entry point %r (%s): failed to load: %s", ep.name, ep.value, exc)
            LOAD_FAILURES[ep.name] = f"{ep.value}: {exc}"
            continue
        pm.register(plugin, name=ep.value)
    if not any(name.startswith(BUILTIN_PREFIX) for name, _ in pm.list_name_plugin()):
        raise PluginError("no built-in strategies found: gossipmq is not installed (pip install -e .)")
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

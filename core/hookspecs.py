"""pluggy hook specifications. Two kinds: one registration hook through which any plugin
offers named strategies, and event hooks for any number of observers (metrics, logging,
user scripts). Documented one by one in docs/plugins.md (a test keeps them in step)."""
from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("gossipmq")
hookimpl = pluggy.HookimplMarker("gossipmq")


@hookspec
def gossipmq_register_strategies(registry: Any) -> None:
    """Register strategy factories: ``registry.register(concern, name, factory, options)``."""


@hookspec
def gossipmq_node_started(node_id: str, address: str, config: Any) -> None:
    """A node finished starting and is about to join."""


@hookspec
def gossipmq_member_changed(node_id: str, member: dict[str, Any], previous: str | None, reason: str) -> None:
    """A member's status changed as seen by `node_id` (joined, suspect, alive again, dead, left, reaped)."""


@hookspec
def gossipmq_key_changed(node_id: str, key: str, entry: Any, source: str) -> None:
    """A key's stored version changed on `node_id`; source is 'local' or 'remote'."""


@hookspec
def gossipmq_round_completed(node_id: str, round: int, stats: dict[str, Any]) -> None:
    """A dissemination round finished on `node_id`."""


@hookspec
def gossipmq_message_dropped(node_id: str, cause: str, detail: str) -> None:
    """A received frame was rejected (malformed, oversized, unknown type, wrong version, ...)."""

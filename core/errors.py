"""Errors split by blame (the h11 lesson): our side vs the peer's side.

Local errors (bad config, bad plugin) stop a command with a clear message.
Remote errors (a peer sent garbage) are dropped, counted and logged once per cause;
they never crash a node.
"""
from __future__ import annotations


class GossipError(Exception):
    """Base of every gossipmq error."""


class ConfigError(GossipError):
    """A config file, table or key is wrong. The message names file, table and key."""

    def __init__(self, message: str, *, path: str | None = None, table: str | None = None,
                 key: str | None = None) -> None:
        self.path, self.table, self.key = path, table, key
        where = []
        if path:
            where.append(str(path))
        if table:
            where.append(f"[{table}]")
        if key:
            where.append(f"key '{key}'")
        super().__init__(f"{' '.join(where)}: {message}" if where else message)


class PluginError(GossipError):
    """A plugin is missing, misnamed or broken (local fault)."""


class RemoteProtocolError(GossipError):
    """A peer sent a frame we cannot accept. `cause` is a short stable label for counters."""

    def __init__(self, cause: str, detail: str) -> None:
        self.cause = cause
        self.detail = detail
        super().__init__(f"{cause}: {detail}")

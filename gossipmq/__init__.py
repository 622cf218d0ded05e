"""gossipmq: gossip-based, eventually consistent distributed systems over ZeroMQ.

The public face. Sub-packages, bottom to top: `gossipmq.core` (the sans-I/O kernel),
`gossipmq.plugins` (built-in strategies), `gossipmq.transports` (runtimes), `gossipmq.cli`.
`Agent` (one node in an asyncio application, docs/embedding.md), its `RuntimeFailure`,
`WriteResult`, `BatchResult`, `Refused` and `Subscription` are imported on first use, so a plugin importing
`gossipmq.hookimpl` does not load the runtime.
"""
from typing import TYPE_CHECKING, Any

from gossipmq._version import __version__
from gossipmq.core.config import Config, load_config, parse_config
from gossipmq.core.errors import ConfigError, GossipError, PluginError
from gossipmq.core.events import Event, EventsLost, KeyEvent, MemberEvent, MemberInfo
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import (
    ConflictResolver,
    Context,
    Dissemination,
    FailureDetector,
    PeerSelector,
    SecurityProvider,
    Strategy,
)

if TYPE_CHECKING:
    from gossipmq.agent import Agent, BatchResult, Refused, RuntimeFailure, WriteResult
    from gossipmq.transports.observers import Subscription

__all__ = [
    "Agent", "BatchResult", "Config", "ConfigError", "ConflictResolver", "Context", "Dissemination", "Event",
    "EventsLost", "FailureDetector", "GossipError", "KeyEvent", "MemberEvent", "MemberInfo", "PeerSelector",
    "PluginError", "Refused", "RuntimeFailure", "SecurityProvider", "Strategy", "Subscription", "WriteResult",
    "__version__", "hookimpl", "load_config", "parse_config",
]
_LAZY = {"Agent": "gossipmq.agent", "BatchResult": "gossipmq.agent", "Refused": "gossipmq.agent",
         "RuntimeFailure": "gossipmq.agent", "WriteResult": "gossipmq.agent",
         "Subscription": "gossipmq.transports.observers"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gossipmq' has no attribute {name!r}")

"""gossipmq: gossip-based, eventually consistent distributed systems over ZeroMQ.

The public face. Sub-packages, bottom to top: `gossipmq.core` (the sans-I/O kernel),
`gossipmq.plugins` (built-in strategies), `gossipmq.transports` (runtimes), `gossipmq.cli`.
"""
from gossipmq._version import __version__
from gossipmq.core.config import Config, load_config, parse_config
from gossipmq.core.errors import ConfigError, GossipError, PluginError
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import (ConflictResolver, Context, Dissemination, FailureDetector, PeerSelector,
                                      SecurityProvider, Strategy)

__all__ = [
    "Config", "ConfigError", "ConflictResolver", "Context", "Dissemination", "FailureDetector", "GossipError",
    "PeerSelector", "PluginError", "SecurityProvider", "Strategy", "__version__", "hookimpl", "load_config",
    "parse_config",
]

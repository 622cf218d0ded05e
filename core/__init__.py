"""gossipmq.core: the sans-I/O kernel, its wire format, config and plugin system."""
from .config import Config, load_config, parse_config
from .effects import (
                         Dropped,
                         KeyChanged,
                         MemberChanged,
                         Notice,
                         RoundCompleted,
                         Schedule,
                         Send,
)
from .errors import ConfigError, GossipError, PluginError, RemoteProtocolError
from .hookspecs import hookimpl
from .messages import Entry, Envelope, MemberUpdate
from .node import Node
from .strategies import (
                         ConflictResolver,
                         Context,
                         Dissemination,
                         FailureDetector,
                         NoOptions,
                         PeerSelector,
                         SecurityProvider,
                         Strategy,
)

__all__ = [
    "Config", "ConfigError", "ConflictResolver", "Context", "Dissemination", "Dropped", "Entry", "Envelope",
    "FailureDetector", "GossipError", "KeyChanged", "MemberChanged", "MemberUpdate", "NoOptions", "Node",
    "Notice", "PeerSelector", "PluginError", "RemoteProtocolError", "RoundCompleted", "Schedule",
    "SecurityProvider", "Send", "Strategy", "hookimpl", "load_config", "parse_config",
]

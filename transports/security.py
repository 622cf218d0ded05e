"""The transport half of a security strategy: what the ZeroMQ runtime asks of it.

A security strategy (plugins/security.py) is sans-I/O: it verifies and signs what the kernel
sees. Some strategies also need the sockets configured and a ZAP handler run; that half lives
here, in the runtime layer, and is found by the strategy's type - so no plugin imports a runtime.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import zmq

from gossipmq.core.strategies import SecurityProvider

if TYPE_CHECKING:
    from .zmq_runtime import ZmqRuntime


class TransportSecurity(Protocol):
    """Hooks the ZeroMQ runtime calls when a security strategy has a transport half."""

    async def start(self, runtime: ZmqRuntime) -> None:
        """Before the inbox binds: start ZAP, watch key files."""

    def stop(self) -> None:
        """When the runtime closes."""

    def configure_inbox(self, sock: zmq.Socket) -> None:
        """Server-side options of the ROUTER inbox (CURVE server key, ZAP domain)."""

    def configure_dealer(self, sock: zmq.Socket, address: str) -> bool:
        """Client-side options of a DEALER to `address`; False when it must not be dialled."""

    def identify(self, frame: zmq.Frame) -> str | None:
        """The member id the transport authenticated a received frame as (None: not trusted)."""

    def after_input(self) -> None:
        """After each handled message: re-dial peers whose key changed."""

    def alias(self, address: str, name: str) -> None:
        """`address` was resolved from the seed name `name` (it keeps the seed's key)."""

    async def control(self, request: dict[str, Any]) -> Any:
        """Control commands of this strategy (``keys_*``)."""


def transport_for(strategy: SecurityProvider, *, node_id: str, config_path: str | None,
                  seeds: Iterable[str] = ()) -> TransportSecurity | None:
    """The transport half of `strategy`, loaded with its keys; None when it needs none.
    ConfigError when its key files or trust store are unusable."""
    from gossipmq.plugins.security import CurveSecurity

    if isinstance(strategy, CurveSecurity):
        from .curve import CurveTransport
        return CurveTransport(strategy, node_id=node_id, config_path=config_path, seeds=seeds)
    return None

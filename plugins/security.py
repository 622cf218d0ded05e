"""Security providers."""
from __future__ import annotations

from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.strategies import NoOptions, SecurityProvider


class NoSecurity(SecurityProvider):
    """No encryption, no authentication: for trusted networks and tests."""

    def __init__(self, options: NoOptions) -> None:
        self.options = options


@hookimpl
def gossipmq_register_strategies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("security", "none", NoSecurity, NoOptions)

"""The `multi_value` resolver: concurrent writes are kept as siblings (Riak/Dynamo style).

``get`` returns every sibling and a causal context token; a ``put``/``delete`` that passes the
token back replaces exactly the siblings the reader saw, while writes it had not seen survive
as siblings. A put without a token replaces what this replica holds. At most `max_siblings`
are kept: the oldest by HLC beyond that are dropped (resolved by LWW) and counted as
``siblings_overflow`` in ``gossipctl status``.

A version's ``value`` is its sibling list ``[[origin, counter, hlc, value], ...]`` and its
``vv`` the causal context; the merge is the MV-Register of core/crdt.py.
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gossipmq.core.crdt import MVRegister
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import Entry

from .crdt import StateResolver


class MultiValueOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_siblings: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16   # more are resolved by LWW, counted


class MultiValue(StateResolver):
    """Keeps concurrent writes as siblings; a put with the read's context resolves them."""

    def __init__(self, options: MultiValueOptions) -> None:
        super().__init__(MVRegister(options.max_siblings), "mv")
        self.options = options

    def state(self, entry: Entry) -> Any:
        return {"s": entry.value}

    def encode(self, state: Any) -> Any:
        return state["s"]


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("conflict_resolution", "multi_value", MultiValue, MultiValueOptions)

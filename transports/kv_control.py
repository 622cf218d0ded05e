"""Control verbs on keys, shared by every runtime: put, get, delete, incr, sadd, srem, smembers.

Requests are the orjson objects of transports/control.py. Mutations return the new version's
dot; reads return the resolved view (``Read.as_dict``): value(s), causal context token, and
with ``verbose`` the causal context, every sibling/contribution with its origin, and the
versions the store keeps. Errors (a verb the key's resolver refuses, a bad context token)
raise ValueError, which the control channel reports to the caller.
"""
from __future__ import annotations

from typing import Any

from gossipmq.core.effects import Effect
from gossipmq.core.node import Node
from gossipmq.core.resolution import Op, decode_context

MUTATIONS = frozenset({"put", "delete", "incr", "sadd", "srem"})
COMMANDS = MUTATIONS | {"get", "smembers"}


def handle(node: Node, req: dict[str, Any], now: float) -> tuple[Any, list[Effect]]:
    """(result, effects) of one key command; the caller commits storage, then applies effects."""
    cmd, key = req["cmd"], str(req["key"])
    field = req.get("field")
    token = req.get("context")
    context = decode_context(str(token)) if token else None
    if cmd in ("get", "smembers"):
        read = node.read(key)
        if read is None or (read.deleted and not req.get("verbose")):
            return None, []
        if cmd == "smembers" and not isinstance(read.value, list):
            raise ValueError(f"{key!r} is not a set (it is {read.kind or 'lww'})")
        return read.as_dict(verbose=bool(req.get("verbose"))), []
    if cmd == "delete":
        entry, effects = node.delete(now, key, context=context, field=field)
        return {"key": key, "deleted": entry is not None,
                **({"origin": entry.origin, "counter": entry.counter} if entry is not None else {})}, effects
    value = req.get("value")
    if cmd == "incr":
        value = int(req.get("value", 1))
    elif cmd in ("sadd", "srem"):
        value = str(req["member"])
    entry, effects = node.mutate(now, key, Op(cmd, value, context, field))
    result = {"key": key, "origin": entry.origin, "counter": entry.counter, "hlc": entry.hlc}
    if cmd == "put":
        result["value"] = value
    else:
        read = node.read(key)
        result["value"] = read.value if read is not None else None
    return result, effects

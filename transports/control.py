"""Local control channel between `gossipctl` client commands and a running node.

REQ/REP over ipc:// (default) or tcp://127.0.0.1. Requests and replies are orjson
objects: ``{"cmd": "put", "key": "k", "value": ...}`` -> ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``.
"""
from __future__ import annotations

import os
from typing import Any

import orjson
import zmq


class ControlError(Exception):
    """The node could not be reached or refused the request."""


def request(endpoint: str, payload: dict[str, Any], timeout: float = 5.0, token: str | None = None) -> Any:
    """Send one request to the node at `endpoint` and return its result."""
    if token:
        payload = {**payload, "token": token}
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        raise ControlError(f"no node answered on {endpoint}: no such socket file (is it running?)")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    try:
        sock.connect(endpoint)
        sock.send(orjson.dumps(payload))
        reply = orjson.loads(sock.recv())
    except zmq.Again:
        raise ControlError(f"no node answered on {endpoint} within {timeout:g}s (is it running?)") from None
    except zmq.ZMQError as exc:
        raise ControlError(f"cannot reach {endpoint}: {exc}") from None
    finally:
        sock.close()
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "request failed"))
    return reply.get("result")

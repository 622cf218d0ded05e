"""`gossipctl members --watch`: follow a node's membership changes as they happen.

The node keeps its last 1000 member events, numbered; the client asks for those after the
last number it printed, several times a second, so transient changes (a suspicion refuted a
moment later) are printed too, not only the state at each poll.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from gossipmq.transports.control import request

POLL_S = 0.2


def format_event(event: dict[str, Any]) -> str:
    m = event["member"]
    stamp = datetime.fromtimestamp(event["time"]).strftime("%H:%M:%S.%f")[:-3]
    detail = f"  ({m['detail']})" if m.get("detail") else ""
    tags = ",".join(f"{k}={v}" for k, v in m.get("tags", {}).items())
    return (f"{stamp}  {event['reason']:<11} {m['id']:<16} {event['previous'] or '-':>7} -> {m['status']:<7} "
            f"inc {m['incarnation']}  {m['address']}{'  ' + tags if tags else ''}{detail}")


def watch(endpoint: str, echo: Callable[[str], None], *, after: int, as_json: bool = False,
          stop: Callable[[], bool] = lambda: False, token: str | None = None) -> int:
    """Print the events numbered above `after` as they come, until interrupted (or `stop()`);
    ControlError when the node stops answering (the caller fails with one line on stderr)."""
    last = after
    try:
        while not stop():
            reply = request(endpoint, {"cmd": "events", "after": last}, token=token)
            events = reply["events"]
            if events and events[0]["seq"] > last + 1 and last:
                echo(f"... {events[0]['seq'] - last - 1} events not shown (the node keeps the last 1000)")
            for event in events:
                echo(orjson.dumps(event).decode() if as_json else format_event(event))
            last = max(last, reply["last"])
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 0
    return 0

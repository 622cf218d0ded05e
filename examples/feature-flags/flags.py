"""A feature-flag service on gossipmq: every instance embeds an `Agent`, serves a tiny HTTP API and
logs every flag change it sees. Any instance takes writes; the others learn them by gossip.

    python examples/feature-flags/flags.py --id f1 --gossip 127.0.0.1:7301 --http 127.0.0.1:8301
    python examples/feature-flags/flags.py --id f2 --gossip 127.0.0.1:7302 --http 127.0.0.1:8302 --seed 127.0.0.1:7301

Flags live under the key prefix ``flags/``, one key per flag, last writer wins (the default
resolver): a flag is one value and the newest setting is the one an operator means. See README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gossipmq import Agent, EventsLost, GossipError, KeyEvent, Subscription

PREFIX = "flags/"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_BODY = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
log = logging.getLogger("flags")


class FlagService:
    """The HTTP face and the change log of one instance."""

    def __init__(self, agent: Agent, history: int = 100) -> None:
        self.agent = agent
        self.changes: deque[dict[str, Any]] = deque(maxlen=history)   # what GET /changes shows

    async def log_changes(self, events: Subscription) -> None:
        """Log every flag change this instance sees, local or gossiped. The subscription is a
        bounded queue: it never slows the node; if this task fell behind it is told how many
        changes it missed. It ends when the agent stops."""
        async for event in events:
            if isinstance(event, EventsLost):
                log.warning("%s missed %d flag changes; flags now: %s", self.agent.node_id, event.count,
                            json.dumps(self.flags()))
            elif isinstance(event, KeyEvent):
                name, after = event.key[len(PREFIX):], "deleted" if event.deleted else json.dumps(event.value)
                self.changes.append({"flag": name, "old": event.old_value, "new": event.value,
                                     "deleted": event.deleted, "origin": event.origin, "source": event.source})
                log.info("%s flag %s: %s -> %s (set on %s)", self.agent.node_id, name, json.dumps(event.old_value),
                         after, event.origin)

    def flags(self) -> dict[str, Any]:
        return {key[len(PREFIX):]: self.agent.get(key) for key in self.agent.keys(PREFIX)}

    async def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts == ["flags"] and method == "GET":
            return 200, self.flags()
        if parts == ["changes"] and method == "GET":
            return 200, list(self.changes)
        if parts == ["members"] and method == "GET":
            return 200, [{"id": m.id, "status": m.status, "address": m.address} for m in self.agent.members()]
        if len(parts) != 2 or parts[0] != "flags":
            return 404, {"error": f"no such resource {path}"}
        name = parts[1]
        if not NAME.fullmatch(name):
            return 400, {"error": "a flag name is 1-64 of A-Z a-z 0-9 _ . -"}
        key = PREFIX + name
        if method == "GET":
            value = self.agent.get(key, KeyError)
            return (404, {"error": f"no flag {name}"}) if value is KeyError else (200, value)
        ack = query.get("ack", ["local"])[0]
        ack_level: str | int = int(ack) if ack.isdigit() else ack
        if method == "PUT":
            result = await self.agent.put(key, json.loads(body), ack=ack_level)
            return 200, {"flag": name, "value": result.value, "acked": result.acked}
        if method == "DELETE":
            deleted = await self.agent.delete(key, ack=ack_level)
            return (200, {"flag": name, "deleted": True}) if deleted else (404, {"error": f"no flag {name}"})
        return 405, {"error": f"{method} is not supported"}

    async def serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection: enough HTTP/1.1 for curl and urllib, nothing more."""
        try:
            method, target, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length > MAX_BODY:
                raise ValueError(f"body over {MAX_BODY} bytes")
            url = urlsplit(target)
            status, payload = await self.route(method, url.path, parse_qs(url.query), await reader.readexactly(length))
        except (ValueError, TimeoutError) as exc:   # bad JSON, bad request line, bad ack level, ack timeout
            status, payload = 400, {"error": str(exc)}
        except Exception as exc:   # the node stopped under us, ...
            status, payload = 503, {"error": str(exc)}
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        finally:
            writer.close()


async def main(args: argparse.Namespace) -> None:
    agent = Agent.from_config(args.config, env=os.environ, node_id=args.id, bind=f"tcp://{args.gossip}",
                              seeds=[f"tcp://{s}" for s in args.seed], control=args.control)
    service = FlagService(agent)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with agent:   # leaving the block (SIGTERM, Ctrl-C) leaves the cluster gracefully
        changes = asyncio.create_task(service.log_changes(agent.events(prefix=PREFIX)))   # before serving
        host, port = args.http.rsplit(":", 1)
        server = await asyncio.start_server(service.serve_http, host, int(port))
        log.info("%s serving flags on http://%s, gossip on %s", agent.node_id, args.http, agent.address)
        async with server:
            stopped, closed = asyncio.create_task(stop.wait()), asyncio.create_task(agent.wait_closed())
            done, _ = await asyncio.wait([stopped, closed], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            closed.cancel()
            for task in done:
                task.result()   # RuntimeFailure from wait_closed(): the node broke
    await changes   # ended by the agent stopping
    log.info("%s left the cluster", agent.node_id)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A feature-flag service on gossipmq (see README.md).")
    parser.add_argument("--id", required=True, help="instance (member) id")
    parser.add_argument("--gossip", required=True, metavar="HOST:PORT", help="gossip address to bind")
    parser.add_argument("--http", required=True, metavar="HOST:PORT", help="HTTP address to serve")
    parser.add_argument("--seed", action="append", default=[], metavar="HOST:PORT", help="instance to join through")
    parser.add_argument("--control", help="gossipctl control endpoint (default ipc:///tmp/gossipmq-ID.ctl)")
    parser.add_argument("--config", help="gossipmq TOML config (default: the built-in defaults)")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(main(parse_args()))
    except GossipError as exc:   # a bad config, a busy port, a RuntimeFailure: one line, exit 1
        log.error("%s", exc)
        sys.exit(1)

"""A raw peer for real-socket tests: sends hand-made frames to a node's inbox, as an attacker or
a buggy implementation would (JSON written by hand, so out-of-range integers and odd shapes get
through the sender's side)."""
from __future__ import annotations

import time
from typing import Any

import orjson
import zmq

from gossipmq.core.codec import HEADER


class RawPeer:
    """A DEALER connected to one node's inbox (plain tcp, no CURVE)."""

    def __init__(self, address: str, routing_id: bytes | None = None) -> None:
        self.address = address
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        if routing_id is not None:
            self.sock.routing_id = routing_id
        self.sock.connect(address)
        time.sleep(0.05)   # let TCP connect before the first send (a DEALER queues, but keep it simple)

    def send_json(self, text: str | bytes) -> None:
        self.sock.send_multipart([HEADER, text.encode() if isinstance(text, str) else text])

    def send(self, doc: dict[str, Any]) -> None:
        self.send_json(orjson.dumps(doc))

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def reconnect(self) -> None:
        self.sock.close(linger=100)
        self.__init__(self.address)  # type: ignore[misc]

    def close(self) -> None:
        self.sock.close(linger=200)


def envelope(type: str, body: dict[str, Any], *, src: str = "mallory", addr: str = "tcp://127.0.0.1:9",
             inc: int = 1, members: list[Any] | None = None, rumors: list[Any] | None = None,
             cluster: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type, "src": src, "addr": addr, "inc": inc, "body": body}
    if members:
        doc["members"] = members
    if rumors:
        doc["rumors"] = rumors
    if cluster:
        doc["cluster"] = cluster
    return doc


def entry(key: str, value: Any, origin: str, counter: int, hlc: int, vv: dict[str, int] | None = None,
          deleted: bool = False, kind: str = "") -> list[Any]:
    """An entry as the wire carries it (array-like)."""
    return [key, value, deleted, origin, counter, hlc, vv if vv is not None else {origin: counter}, "", kind]


def now_hlc() -> int:
    return int(time.time() * 1000) << 16

"""Reading a ZeroMQ socket from the asyncio loop without a future per message.

`await sock.recv_multipart()` on a zmq.asyncio socket creates and resolves a future, and wakes a
task, for every message: about half the CPU of a control request that arrives alone. `Drain`
registers the socket's descriptor with the loop instead and calls a plain function with the
messages queued, up to `limit` per loop turn - and, with `max_bytes`, until that many bytes were
read, since one request can carry many writes (a flood must never starve timers: the rest waits
for the next turn, after everything else that is ready).

ZeroMQ's descriptor is edge-triggered: it signals when the socket's state changes, and any
operation on the socket (a send included) may consume that signal for a message that arrived
meanwhile. So after each batch, and after any send made outside `handle` (`kick`), the queue is
looked at again on the next turn.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import zmq


class Drain:
    def __init__(self, sock: zmq.Socket[Any], handle: Callable[[list[list[Any]]], None], limit: int,
                 copy: bool = True, max_bytes: int = 0) -> None:
        """`handle(messages)`: each message is its list of frames (bytes, or zmq.Frame when not
        `copy`). What `handle` raises ends `run` with that exception."""
        self.sock: zmq.Socket[Any] = zmq.Socket.shadow(sock.underlying)   # the same socket, without asyncio
        self.handle = handle
        self.limit = limit
        self.max_bytes = max_bytes   # 0: no byte budget (the frames are not even measured)
        self.copy = copy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: asyncio.Future[None] | None = None
        self._scheduled = False
        self._busy = False

    async def run(self) -> None:
        """Deliver until cancelled (or until `handle` raises: then raise it)."""
        loop = self._loop = asyncio.get_running_loop()
        self._failed = failed = loop.create_future()
        fd = cast(int, self.sock.get(zmq.FD))
        loop.add_reader(fd, self._ready)
        self.kick()   # messages queued before the reader was added
        try:
            await failed
        finally:
            loop.remove_reader(fd)

    def kick(self) -> None:
        """Look at the queue on the next loop turn (once, however often asked): call it after
        a send on the socket made outside `handle`."""
        if not self._scheduled and not self._busy and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._ready)

    def _ready(self) -> None:
        self._scheduled = False
        failed = self._failed
        if failed is None or failed.done() or self.sock.closed:
            return
        self._busy = True
        try:
            sock = self.sock
            messages: list[list[Any]] = []
            read, budget = 0, self.max_bytes
            while len(messages) < self.limit:
                try:
                    frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=self.copy)
                except zmq.Again:
                    break
                messages.append(frames)
                if budget:
                    read += sum(len(f) for f in frames)
                    if read >= budget:
                        break
            if messages:
                self.handle(messages)
            spent = len(messages) == self.limit or (budget and read >= budget)
            more = spent or bool(cast(int, sock.get(zmq.EVENTS)) & zmq.POLLIN)
        except BaseException as exc:   # ends run(): its task's supervisor sees the failure
            if not failed.done():
                failed.set_exception(exc)
            return
        finally:
            self._busy = False
        if more:
            self.kick()

"""transports/drain.py: a socket read from a loop callback, a bounded batch per loop turn - by
count and, with `max_bytes`, by bytes read - and nothing lost to the edge-triggered descriptor."""
from __future__ import annotations

import asyncio
from typing import Any

import zmq

from gossipmq.transports.drain import Drain


def test_a_byte_budget_splits_heavy_messages_over_loop_turns() -> None:
    async def scenario() -> list[int]:
        ctx = zmq.Context()
        server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        try:
            server.bind("inproc://drain-test")
            client.connect("inproc://drain-test")
            for i in range(10):
                client.send_multipart([b"%d" % i, b"x" * 1000])
            batches: list[int] = []
            seen: list[bytes] = []

            def handle(messages: list[list[Any]]) -> None:
                batches.append(len(messages))
                seen.extend(m[0] for m in messages)
                if len(seen) == 10:
                    drain_task.cancel()

            drain = Drain(server, handle, limit=100, max_bytes=2500)
            drain_task = asyncio.ensure_future(drain.run())
            try:
                await asyncio.wait_for(drain_task, 5)
            except asyncio.CancelledError:
                pass
            assert seen == [b"%d" % i for i in range(10)]   # every message, in order
            return batches
        finally:
            server.close(linger=0)
            client.close(linger=0)
            ctx.term()

    # 1001 bytes each: the third message crosses 2500 bytes, so a turn takes three at most
    assert asyncio.run(scenario()) == [3, 3, 3, 1]

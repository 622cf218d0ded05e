"""Two gossipmq agents in one asyncio program: write on one, read on the other, see the change arrive."""
import asyncio
import sys

from gossipmq import Agent

FAST = {"dissemination": {"interval_ms": 100}}   # a gossip round every 100 ms (default 200)


async def main(port_a: int = 7101, port_b: int = 7102) -> None:
    a = Agent.from_config(FAST, bind=f"tcp://127.0.0.1:{port_a}")
    b = Agent.from_config(FAST, bind=f"tcp://127.0.0.1:{port_b}")
    async with a, b:                                       # start both; leave gracefully at the end
        await b.join([a.address])                          # returns once a answered: both know each other
        with b.events(prefix="greeting") as changes:       # subscribe first: events are not replayed
            result = await a.put("greeting", "hello", ack="all")   # returns once b holds it too
            print(f"a wrote greeting; copies confirmed: {result.acked}")
            print(f"b reads greeting = {b.get('greeting')!r}")
            event = await asyncio.wait_for(anext(changes), timeout=5)
            print(f"b saw {event.key}: {event.old_value!r} -> {event.value!r} ({event.source} write)")


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:3])))

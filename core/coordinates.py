"""This node's network coordinate and the coordinates it knows of others (Vivaldi, as Serf).

The kernel owns it so that whoever measures round trips (SWIM: a ping and its direct ack) and
whoever uses the estimates (the `nearest` peer selector, Plumtree's latency optimisation,
`gossipctl rtt`) meet in one place, whatever the strategies. A peer's coordinate arrives with
its pings and acks; our coordinate moves only with RTTs we measured ourselves. Everything a
peer sends is checked (core/vivaldi.py's `check_coordinate`) and bounded: at most
`max_tracked_peers` coordinates are kept, least recently heard forgotten first.
"""
from __future__ import annotations

import random
from collections import OrderedDict

from .vivaldi import Coordinate, VivaldiClient, VivaldiOptions, check_coordinate, distance


class Coordinates:
    """Our Vivaldi client plus the last coordinate heard from each peer."""

    def __init__(self, node_id: str, options: VivaldiOptions | None = None) -> None:
        self.options = options or VivaldiOptions()
        # Its own RNG (used only to separate coinciding points): the node's is left untouched,
        # so runs without coordinates draw exactly the same numbers as before they existed.
        self.client = VivaldiClient(self.options, random.Random(f"vivaldi/{node_id}"))
        self.peers: OrderedDict[str, Coordinate] = OrderedDict()
        self.refused = 0

    @property
    def mine(self) -> Coordinate:
        return self.client.coordinate

    def learn(self, peer: str, coord: Coordinate | None) -> bool:
        """Remember `peer`'s coordinate (from any message of it that carries one)."""
        if coord is None:
            return False
        if check_coordinate(coord, self.options) is not None:
            self.refused += 1
            return False
        self.peers[peer] = coord
        self.peers.move_to_end(peer)
        while len(self.peers) > self.options.max_tracked_peers:
            self.peers.popitem(last=False)
        return True

    def observe(self, peer: str, coord: Coordinate | None, rtt: float) -> str | None:
        """A round trip to `peer` we timed ourselves, with the coordinate it answered with:
        moves our coordinate. Returns why it was refused, or None."""
        if coord is None:
            return "no coordinate"
        if not self.learn(peer, coord):
            return "bad coordinate"
        reason = self.client.update(peer, coord, rtt)
        if reason is not None:
            self.refused += 1
        return reason

    def of(self, peer: str) -> Coordinate | None:
        return self.peers.get(peer)

    def forget(self, peer: str) -> None:
        self.peers.pop(peer, None)
        self.client.forget(peer)

    def rtt(self, peer: str) -> float | None:
        """Estimated round trip to `peer` in seconds; None without its coordinate."""
        coord = self.peers.get(peer)
        return None if coord is None else distance(self.client.coordinate, coord)

    def between(self, a: Coordinate, b: Coordinate) -> float:
        return distance(a, b)

    def estimate(self, me: str, a: str, b: str | None = None) -> dict[str, object]:
        """`gossipctl rtt A [B]` (Serf's `serf rtt`): the estimated round trip between A and B
        (B defaults to this node, `me`) from their coordinates. ValueError naming a node whose
        coordinate is unknown here."""
        b = b or me

        def coord(node: str) -> Coordinate:
            found = self.mine if node == me else self.peers.get(node)
            if found is None:
                raise ValueError(f"no network coordinate known for {node!r} on {me!r}: coordinates ride on SWIM "
                                 f"probes ([failure_detection] strategy = \"swim\"), so only members this node "
                                 f"probed or was probed by have one")
            return found
        ca, cb = coord(a), coord(b)
        return {"a": a, "b": b, "rtt_ms": round(distance(ca, cb) * 1000, 3),
                "error": {a: round(ca.error, 3), b: round(cb.error, 3)}, "samples": self.client.updates}


__all__ = ["Coordinate", "Coordinates"]

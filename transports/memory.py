"""In-memory runtime: many kernels in one process, a virtual clock and a network model
(latency, loss, partitions, crashes). Deterministic for a given seed. Used by unit tests
and as the simulator's engine; it runs the very same Node and strategies as ZeroMQ.
"""
from __future__ import annotations

import heapq
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.config import Config
from gossipmq.core.effects import Effect, Schedule, Send
from gossipmq.core.errors import RemoteProtocolError
from gossipmq.core.messages import Envelope, MemberUpdate
from gossipmq.core.node import Node
from gossipmq.core.registry import StrategyRegistry
from gossipmq.core.timers import Timer

from .observers import Observers


def make_nodes(config: Config, registry: StrategyRegistry, n: int, *, seed: int = 0, scheme: str = "mem",
               prefill: bool = False, incarnation: int = 1) -> list[Node]:
    """Nodes n0..n{n-1} at ``{scheme}://n{i}``, all built from `config` (each seeded from `seed`).
    They join through n0, or with `prefill` start with complete member tables (no join phase)."""
    addresses = [f"{scheme}://n{i}" for i in range(n)]
    nodes = [Node.from_config(config.with_node(id=f"n{i}", advertise=address,
                                               seeds=[] if prefill or i == 0 else [addresses[0]]),
                              registry, incarnation=incarnation, rng_seed=seed * 1000 + i)
             for i, address in enumerate(addresses)]
    if prefill:
        claims = [MemberUpdate(node.node_id, node.address, node.inc, "alive") for node in nodes]
        for node in nodes:
            for claim in claims:
                if claim.id != node.node_id:
                    node.members.apply(claim, 0.0)
    return nodes


class MemoryNetwork:
    """Drives Nodes by virtual time. `latency` is a (min, max) range in seconds."""

    def __init__(self, *, seed: int = 0, latency: tuple[float, float] = (0.001, 0.005),
                 loss: float = 0.0, encode: bool = False, pm: pluggy.PluginManager | None = None,
                 refuse: bool = False, delay: Callable[[str, str], float] | None = None) -> None:
        """`pm`: a plugin manager whose event hooks see every node's events, exactly as under
        the ZeroMQ runtime (transports/observers.py). `refuse`: a message to a crashed node is
        reported back to its sender one round trip later (`Node.unreachable`), as a refused TCP
        connection would be - the signal HyParView's paper relies on. `delay(src, dst)`: the
        one-way latency of each message by link (a topology), instead of the uniform `latency`."""
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.encode = encode
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.on_send: Callable[[str, Send], None] | None = None
        #: when set, events go to this callback instead of piling up in `events` (simulator)
        self.on_event: Callable[[str, Effect], None] | None = None
        self.pm = pm
        self.observers: dict[str, Observers] = {}
        self._heap: list[tuple[float, int, str, str, Any]] = []
        self._seq = 0
        self._timer_at: dict[tuple[str, Timer], float] = {}
        self._groups: dict[str, int] | None = None
        self._cut: set[tuple[str, str]] = set()
        self.delivered = 0
        self.lost = 0
        self.refuse = refuse
        self.delay = delay

    # -- cluster management ---------------------------------------------------------------
    def add(self, node: Node) -> Node:
        self.nodes[node.address] = node
        if self.pm is not None:
            self.observers[node.address] = Observers(node, self.pm)
        self._apply(node.address, node.start(self.now))
        return node

    def crash(self, address: str) -> Node:
        """Stop a node without telling anyone (crash-stop)."""
        return self.nodes.pop(address)

    def partition(self, *groups: Iterable[str]) -> None:
        """Only nodes in the same group can talk (addresses)."""
        self._groups = {addr: i for i, group in enumerate(groups) for addr in group}

    def cut(self, a: str, b: str) -> None:
        self._cut.update({(a, b), (b, a)})

    def heal(self) -> None:
        self._groups = None
        self._cut.clear()

    # -- inputs -----------------------------------------------------------------------------
    def put(self, address: str, key: str, value: Any) -> None:
        entry, effects = self.nodes[address].put(self.now, key, value)
        self._apply(address, effects)

    def delete(self, address: str, key: str) -> None:
        _, effects = self.nodes[address].delete(self.now, key)
        self._apply(address, effects)

    def leave(self, address: str) -> None:
        self._apply(address, self.nodes[address].leave(self.now))

    def inject_frames(self, address: str, frames: list[bytes]) -> None:
        """Deliver raw frames as a hostile peer would (decode errors are counted)."""
        node = self.nodes[address]
        try:
            env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes, limits=node.limits)
        except RemoteProtocolError as exc:
            self._apply(address, node.record_drop(self.now, exc.cause, exc.detail))
            return
        self._apply(address, node.handle_message(self.now, env))

    # -- time --------------------------------------------------------------------------------
    def run_until(self, t: float, stop: Callable[[], bool] | None = None) -> bool:
        """Process events up to virtual time `t`; return early (True) once `stop()` holds."""
        while self._heap and self._heap[0][0] <= t:
            at, _, kind, address, payload = heapq.heappop(self._heap)
            node = self.nodes.get(address)
            if node is None:
                continue
            self.now = at
            if kind == "timer":
                if self._timer_at.get((address, payload)) != at:
                    continue  # replaced by a later Schedule
                del self._timer_at[(address, payload)]
                self._apply(address, node.handle_timer(at, payload))
            elif kind == "refused":
                self._apply(address, node.unreachable(at, payload))
            else:
                self.delivered += 1
                self._apply(address, node.handle_message(at, payload))
            if stop is not None and stop():
                return True
        self.now = max(self.now, t)
        return stop() if stop is not None else False

    def run_for(self, dt: float, stop: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.now + dt, stop)

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Run until `condition()` holds or `timeout` virtual seconds pass."""
        return condition() or self.run_for(timeout, condition)

    # -- effects -----------------------------------------------------------------------------
    def _apply(self, address: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(address, effect)
            elif isinstance(effect, Schedule):
                self._timer_at[(address, effect.timer)] = effect.at
                self._push(effect.at, "timer", address, effect.timer)
            else:
                observers = self.observers.get(address)
                if observers is not None:
                    observers.dispatch(effect)
                if self.on_event is not None:
                    self.on_event(address, effect)
                else:
                    self.events[address].append(effect)

    def _send(self, src: str, send: Send) -> None:
        if self.on_send is not None:
            self.on_send(src, send)
        dst = send.address
        if self._groups is not None and self._groups.get(src, -1) != self._groups.get(dst, -2):
            self.lost += 1
            return
        if (src, dst) in self._cut or (self.loss and self.rng.random() < self.loss):
            self.lost += 1
            return
        env: Envelope = send.envelope
        if self.refuse and dst not in self.nodes:
            lo, hi = self.latency
            self._push(self.now + 2 * (lo if hi <= lo else self.rng.uniform(lo, hi)), "refused", src, dst)
            return
        if self.encode:
            node = self.nodes.get(dst)
            if node is None:
                return
            env = decode_frames(encode_envelope(env), node.bodies, node.gossip.max_frame_bytes)
        if self.delay is not None:
            self._push(self.now + self.delay(src, dst), "msg", dst, env)
            return
        lo, hi = self.latency
        self._push(self.now + (lo if hi <= lo else self.rng.uniform(lo, hi)), "msg", dst, env)

    def _push(self, at: float, kind: str, address: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, address, payload))


def checksums(net: MemoryNetwork, addresses: Iterable[str] | None = None) -> Mapping[str, str]:
    return {a: net.nodes[a].store.checksum() for a in (addresses or net.nodes)}

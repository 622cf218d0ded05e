"""One observer path for every runtime: what happens to the kernel's events.

The ZeroMQ runtime, the in-memory runtime and the simulator hand every event effect to
`Observers.dispatch`, so a plugin tested in memory behaves as it will in production. An event
goes to the log, to every pluggy event-hook implementation and to the application's
subscriptions (`Agent.events()`).

Extension points are a trust boundary: each hook implementation is called on its own, and an
exception it raises is caught, counted per plugin and hook (``hook_errors``), logged once with
its traceback, and the node carries on - the next implementation and the next event still run.
Subscriptions are bounded queues: a subscriber that falls behind loses its oldest events and is
told how many (`EventsLost`); nothing an observer does can block the node.

Nobody listening costs nothing: where the observers are a node's only consumer of events (the
ZeroMQ runtime), they tell the kernel whether anyone wants key events
(`Replication.key_events`): a `gossipmq_key_changed` hook, a subscription that takes key
events, or the debug log. That is re-checked whenever a subscription opens or closes and
whenever a kernel timer fires (a plugin registered after start, a log level changed), and saves
~2 us per write on every node (building the event and dispatching it to nobody).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import pluggy

from gossipmq.core.effects import Dropped, KeyChanged, MemberChanged, Notice, RoundCompleted
from gossipmq.core.events import KINDS, EventsLost, KeyEvent, MemberEvent, MemberInfo
from gossipmq.core.messages import origin_node
from gossipmq.core.node import Node

#: member events kept for `gossipctl members --watch` (numbered; clients ask for those after N)
MEMBER_RING = 1000


class Subscription:
    """A bounded, non-blocking queue of events for one subscriber; an async iterator."""

    def __init__(self, prefix: str | None, kinds: Collection[str] | None, maxsize: int,
                 on_close: Callable[[Subscription], None]) -> None:
        unknown = set(kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)} (known: {', '.join(KINDS)})")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.prefix = prefix
        # a key prefix asks for key events: member events have no key to be under it
        self.kinds = frozenset(kinds) if kinds else frozenset({"key"}) if prefix is not None else None
        self.maxsize = maxsize
        self.lost = 0                 # dropped since the subscriber last heard of it
        self.lost_total = 0
        self._queue: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._on_close = on_close

    def wants(self, kind: str, key: str | None = None) -> bool:
        if self._closed or (self.kinds is not None and kind not in self.kinds):
            return False
        return key is None or self.prefix is None or key.startswith(self.prefix)

    def push(self, event: Any) -> None:
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.lost += 1
            self.lost_total += 1
        self._queue.append(event)
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        """No more events: the iteration ends once the queued ones are read - with `error` raised
        instead (the node stopped on a RuntimeFailure), so a subscriber never waits on a dead node."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._ready.set()
            self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self.lost:
                lost, self.lost = self.lost, 0
                return EventsLost(lost)
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def __len__(self) -> int:
        return len(self._queue)


class Observers:
    """Dispatches a node's events to logs, event hooks and subscriptions (see module docstring)."""

    def __init__(self, node: Node, pm: pluggy.PluginManager | None = None,
                 log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None, *,
                 sole_consumer: bool = False) -> None:
        """`sole_consumer`: nothing but these observers reads the node's events, so the node may
        skip building key events while nobody listens (see module docstring)."""
        self.node = node
        self.pm = pm
        self.log = log or logging.getLogger("gossipmq")
        self.sole_consumer = sole_consumer
        self.subscriptions: list[Subscription] = []
        self.closed = False
        self.hook_errors: Counter[str] = Counter()
        self.drops_logged: Counter[str] = Counter()
        self.member_events: deque[dict[str, Any]] = deque(maxlen=MEMBER_RING)
        self.member_seq = 0
        #: called with every member event (the runtime closes sockets to addresses that changed)
        self.on_member: Callable[[MemberChanged], None] | None = None
        self.refresh_key_events()

    def refresh_key_events(self) -> None:
        """Tell the node whether anyone wants key events (only as their sole consumer)."""
        if not self.sole_consumer:
            return
        hooked = self.pm is not None and bool(self.pm.hook.gossipmq_key_changed.get_hookimpls())
        self.node.replication.key_events = (hooked or self.log.isEnabledFor(logging.DEBUG)
                                            or any(sub.wants("key") for sub in self.subscriptions))

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(self, prefix: str | None = None, kinds: Collection[str] | None = None,
                  maxsize: int = 1000) -> Subscription:
        sub = Subscription(prefix, kinds, maxsize, self._unsubscribe)
        self.subscriptions.append(sub)
        self.refresh_key_events()
        if self.closed:   # the node stopped: nothing will ever arrive, so nobody may wait for it
            sub.close()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub)
        self.refresh_key_events()

    def close(self, error: BaseException | None = None) -> None:
        """End every subscription (raising `error` in each, when given) and refuse new ones."""
        self.closed = True
        for sub in list(self.subscriptions):
            sub.close(error)

    # -- dispatch ------------------------------------------------------------------------------
    def dispatch(self, event: Any) -> None:
        if isinstance(event, KeyChanged):
            self._key(event)
        elif isinstance(event, MemberChanged):
            self._member(event)
        elif isinstance(event, RoundCompleted):
            self.call_hook("gossipmq_round_completed", node_id=self.node.node_id, round=event.round,
                           stats=event.stats)
        elif isinstance(event, Dropped):
            self.log_drop(event)
            self.call_hook("gossipmq_message_dropped", node_id=self.node.node_id, cause=event.cause,
                           detail=event.detail)
        elif isinstance(event, Notice):
            self.log.info("%s: %s", event.kind, event.detail)

    def _key(self, event: KeyChanged) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("key %s changed (%s)", event.key, event.source)
        self.call_hook("gossipmq_key_changed", node_id=self.node.node_id, key=event.key, entry=event.entry,
                       source=event.source)
        wanting = [s for s in self.subscriptions if s.wants("key", event.key)]
        if not wanting:
            return   # no work for values nobody reads
        node = self.node
        now = node.read(event.key)
        before = node.router.for_key(event.key).read(event.key, event.before) if event.before else None
        value = None if now is None or now.deleted else now.value
        old = None if before is None or before.deleted else before.value
        key_event = KeyEvent(event.key, value, old, now is None or now.deleted, event.source,
                             origin_node(event.entry.origin))
        for sub in wanting:
            sub.push(key_event)

    def _member(self, event: MemberChanged) -> None:
        m = event.member
        self.member_seq += 1
        self.member_events.append({"seq": self.member_seq, "time": time.time(), "reason": event.reason,
                                   "previous": event.previous, "member": m})
        extra = f": {m['detail']}" if m.get("detail") else ""
        self.log.info("member %s %s (%s -> %s, incarnation %d)%s", m["id"], event.reason, event.previous,
                      m["status"], m["incarnation"], extra)
        if self.on_member is not None:
            self.on_member(event)
        self.call_hook("gossipmq_member_changed", node_id=self.node.node_id, member=m, previous=event.previous,
                       reason=event.reason)
        wanting = [s for s in self.subscriptions if s.wants(event.reason)]
        if wanting:
            member_event = MemberEvent(event.reason, MemberInfo.from_view(m), event.previous, m.get("detail", ""))
            for sub in wanting:
                sub.push(member_event)

    # -- hooks ---------------------------------------------------------------------------------
    def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of event hook `name`, each isolated from the others."""
        if self.pm is None:
            return
        caller = getattr(self.pm.hook, name)
        for impl in reversed(caller.get_hookimpls()):   # pluggy's order: last registered first
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception:
                where = f"{impl.plugin_name}.{name}"
                self.hook_errors[where] += 1
                if self.hook_errors[where] == 1:
                    self.log.exception("plugin %s raised in %s; the node carries on (counted in hook_errors, "
                                       "logged once)", impl.plugin_name, name)

    def log_drop(self, event: Dropped) -> None:
        """One line per cause the first time, then one line per 1000 more of that cause."""
        self.drops_logged[event.cause] += 1
        n = self.drops_logged[event.cause]
        if n == 1 or n % 1000 == 0:
            self.log.warning("dropped frame (%s, %d so far): %s", event.cause, n, event.detail)

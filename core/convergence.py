"""Convergence tracking: does every reachable member report this node's store checksum?

Every envelope carries its sender's checksum (Merkle root); the node remembers the last one per
member. Agreement is the cheap, read-only observable operators and `status --wait-converged`
use; `since` says for how long it has held (checked every `[gossip] convergence_check_ms` while
anything it reads changes: a converged, idle node does not wake for it)."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .timers import KERNEL

if TYPE_CHECKING:
    from .node import Node


class Convergence:
    def __init__(self, node: Node) -> None:
        self.node = node
        #: member -> the store checksum it last reported (strategies read it as ctx.peer_roots)
        self.peer_sums: dict[str, str] = {}
        # Whose reports say whether news is in flight (`all_report`): the members heard in this
        # epoch and those heard only in the one before it (their checksums are in peer_sums). A
        # report older than that is no evidence of news: at scale a node hears from a given peer
        # rarely, and the checksum it heard then would keep every round loud long after everyone
        # holds the news (10^4 nodes: 30,000 exchanges a round).
        self._recent: set[str] = set()
        self._aged: set[str] = set()
        self._reports: Counter[str] = Counter()   # checksum -> how many of those reported it
        self._epoch = 0.0                             # when the current epoch began
        #: when agreement was first seen by the periodic check; None while the replicas differ
        self.since: float | None = None
        self._armed = False
        self._changes = 0                             # reports that changed (heard, forget)
        self._checked: tuple[str, int, int] | None = None   # what the last check read

    def heard(self, member_id: str, checksum: str) -> None:
        old = self.peer_sums.get(member_id)
        if old != checksum:
            self._changes += 1
            self.peer_sums[member_id] = checksum
        if member_id in self._recent:
            if old != checksum:
                self._count(old, -1)
                self._count(checksum, 1)
            return
        if member_id in self._aged:
            self._aged.discard(member_id)
            self._count(old, -1)
        self._recent.add(member_id)
        self._count(checksum, 1)

    def forget(self, member_id: str) -> None:
        """`member_id` left the view: its last report no longer counts."""
        self._changes += 1
        old = self.peer_sums.pop(member_id, None)
        if member_id in self._recent or member_id in self._aged:
            self._recent.discard(member_id)
            self._aged.discard(member_id)
            self._count(old, -1)

    def all_report(self, checksum: str, now: float | None = None, within: float | None = None) -> bool:
        """Did every member we heard from last report `checksum`? O(1) (amortised): no news is in
        flight that this node knows of (quiet rounds read it). With `within` (seconds), only
        reports heard in the last one to two `within` count: an older one is no evidence."""
        if within is not None and now is not None and now - self._epoch >= within:
            self._rotate(now)
        return self._reports.get(checksum, 0) == len(self._recent) + len(self._aged)

    def _rotate(self, now: float) -> None:
        """A new epoch: the previous one's reports (not heard since) stop counting."""
        for member_id in self._aged:
            self._count(self.peer_sums[member_id], -1)
        self._aged, self._recent, self._epoch = self._recent, set(), now

    def _count(self, checksum: str | None, delta: int) -> None:
        if checksum is not None:
            left = self._reports[checksum] + delta
            if left:
                self._reports[checksum] = left
            else:
                del self._reports[checksum]

    def agrees(self) -> bool:
        """Do all reachable members last report our checksum? O(n), read-only."""
        node = self.node
        mine = node.store.checksum()
        return all(self.peer_sums.get(m) == mine for m in node.members.reachable_ids())

    def converged(self) -> bool:
        """Agreement now, and seen by the periodic check (so it has lasted a check interval)."""
        return self.since is not None and self.agrees()

    def start(self) -> None:
        if not self._armed and self.node.gossip.convergence_check_ms > 0:
            self._armed = True
            self.node.schedule(KERNEL, "convergence", self.node.gossip.convergence_check_ms / 1000)

    def _reads(self) -> tuple[str, int, int]:
        node = self.node
        return node.store.checksum(), self._changes, node.members.version

    def after_input(self) -> None:
        """After every input: a check is due again once anything it reads has changed."""
        if not self._armed and self._reads() != self._checked:
            self.start()

    def on_timer(self) -> None:
        """Track whether (and since when) every reachable member reports our checksum; keep
        checking until they do, then only after a change (`after_input`)."""
        self._armed = False
        self._checked = self._reads()
        if self.agrees():
            if self.since is None:
                self.since = self.node.now
                self.start()   # one more check confirms it lasted an interval with nothing new
        else:
            self.since = None
            self.start()

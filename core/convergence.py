"""Convergence tracking: does every reachable member report this node's store checksum?

Every envelope carries its sender's checksum (Merkle root); the node remembers the last one per
member. Agreement is the cheap, read-only observable operators and `status --wait-converged`
use; `since` says for how long it has held (checked every `[gossip] convergence_check_ms` while
anything it reads changes: a converged, idle node does not wake for it)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .timers import KERNEL

if TYPE_CHECKING:
    from .node import Node


class Convergence:
    def __init__(self, node: Node) -> None:
        self.node = node
        #: member -> the store checksum it last reported (strategies read it as ctx.peer_roots)
        self.peer_sums: dict[str, str] = {}
        #: the last reports heard, whoever sent them, as a run: the checksum the latest carried and
        #: how many in a row before it carried the same (`last_reports_agree`). Evidence ages by
        #: what is heard since, not by who said it: at scale a node hears from a given peer rarely,
        #: and the checksum that peer carried while a write spread would keep every round loud
        #: long after everyone holds it.
        self._run_sum: str | None = None
        self._run = 0
        #: when agreement was first seen by the periodic check; None while the replicas differ
        self.since: float | None = None
        self._armed = False
        self._changes = 0                             # reports that changed (heard, forget)
        self._checked: tuple[str, int, int] | None = None   # what the last check read

    def heard(self, member_id: str, checksum: str) -> None:
        if self.peer_sums.get(member_id) != checksum:
            self._changes += 1
            self.peer_sums[member_id] = checksum
        self._report(checksum)

    def _report(self, checksum: str) -> None:
        if checksum == self._run_sum:
            self._run += 1
        else:
            self._run_sum, self._run = checksum, 1

    def opened_exchange(self, checksum: str) -> None:
        """We opened a digest exchange while holding `checksum`. A peer with nothing to trade does
        not answer (push-pull), so silence is the usual word of agreement: the exchange counts as
        a report of `checksum` until the peer answers otherwise (its answer is heard after it)."""
        self._report(checksum)

    def forget(self, member_id: str) -> None:
        """`member_id` left the view: its last report no longer counts."""
        self._changes += 1
        self.peer_sums.pop(member_id, None)

    def last_reports_agree(self, checksum: str, last: int) -> bool:
        """Did the last `last` reports heard (from anyone) all carry `checksum`? O(1). Quiet
        rounds read it: a node with news, or one that just heard of news, hears other checksums
        and stays loud; once `last` reports in a row agree, the news it knew of has spread (the
        feedback-and-counter rule of Demers et al.'s rumor mongering). Fewer reports than that
        heard so far: no evidence, so False."""
        return self._run >= last and self._run_sum == checksum

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

"""Mean-field curves of the random phone call model, drawn beside simulated runs.

Synchronous rounds; each of the L live nodes (out of N, the rest crashed but still picked as
peers) contacts `fanout` peers chosen uniformly among the other N - 1. A contact succeeds when
all its messages get through (loss p per message). With I informed and U = L - I uninformed
live nodes, the expected uninformed count after one round is

    push       U' = U (1 - k q/(N-1))^I            an informed node pushes to k peers
    pull       U' = U (1 - q I/(N-1))^k            an uninformed node asks k peers
    push-pull  U' = U (1 - k q/(N-1))^I (1 - q I/(N-1))^k

with q = (1 - p)^m for the m messages a successful exchange needs here (a push: syn,
syn_ack, ack = 3; a pull: syn, syn_ack = 2; a rumor: 1; push-pull uses both). Rumor mongering spreads like
push while rumors are hot, so it gets the push curve. These are expectations: the real tail
(the last few nodes) is a little longer, which is why B1 reports simulated rounds, not these.
"""
from __future__ import annotations


def informed_curve(mode: str, n: int, fanout: int, rounds: int, *, live: int | None = None,
                   loss: float = 0.0, sources: int = 1) -> list[float]:
    """Expected informed fraction of live nodes after rounds 0..rounds. "plumtree" is not a
    round model: a tree push reaches every node within one round as long as the tree's depth
    times the link latency stays below the round (its IHAVE batching period)."""
    live = n if live is None else live
    if mode == "plumtree":
        return [min(sources, live) / live] + [1.0] * rounds
    k = fanout
    push_q = (1 - loss) ** (1 if mode == "rumor" else 3)
    pull_q = (1 - loss) ** 2
    informed = float(min(sources, live))
    out = [informed / live]
    for _ in range(rounds):
        uninformed = live - informed
        push_miss = (1 - k * push_q / (n - 1)) ** informed
        pull_miss = (1 - pull_q * informed / (n - 1)) ** k
        if mode in ("push", "rumor"):
            uninformed *= push_miss
        elif mode == "pull":
            uninformed *= pull_miss
        else:
            uninformed *= push_miss * pull_miss
        informed = live - uninformed
        out.append(informed / live)
    return out

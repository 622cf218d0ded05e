"""The transmit-limited queue behind membership broadcasts and rumors."""
from gossipmq.core.broadcast import BroadcastQueue, retransmit_limit


def test_retransmit_limit_follows_memberlist_rule():
    assert retransmit_limit(4, 1) == 4          # ceil(log10 2) = 1
    assert retransmit_limit(4, 9) == 4
    assert retransmit_limit(4, 10) == 8         # ceil(log10 11) = 2
    assert retransmit_limit(3, 999) == 9
    assert retransmit_limit(0, 5) == 1


def test_newer_item_invalidates_queued_older_one():
    q: BroadcastQueue[str] = BroadcastQueue()
    q.push("k", "v1")
    q.take(1, limit=10)                 # v1 sent once
    q.push("k", "v2")                   # replaces v1, transmit count starts again
    assert q.invalidated == 1
    assert q.items() == [("k", 0, "v2")]
    assert q.take(5, limit=10) == ["v2"]


def test_items_leave_after_limit_transmits():
    q: BroadcastQueue[str] = BroadcastQueue()
    q.push("a", "A")
    sent = [q.take(1, limit=3) for _ in range(5)]
    assert sent == [["A"], ["A"], ["A"], [], []]
    assert q.exhausted == 1 and len(q) == 0


def test_fewest_sent_first_then_newest():
    q: BroadcastQueue[str] = BroadcastQueue()
    q.push("a", "A")
    q.push("b", "B")
    assert q.take(1, limit=10) == ["B"]          # equal counts: newest first
    assert q.take(1, limit=10) == ["A"]          # A has fewer sends than B now
    q.push("c", "C")
    assert q.take(3, limit=10) == ["C", "B", "A"]


def test_items_that_do_not_fit_stay_queued_untouched():
    q: BroadcastQueue[str] = BroadcastQueue()
    q.push("big", "x" * 100)
    q.push("small", "y")
    assert q.take(5, limit=2, fits=lambda item: len(item) < 10) == ["y"]
    assert sorted(q.items()) == [("big", 0, "x" * 100), ("small", 1, "y")]


def test_discard_and_many_replacements_keep_the_heap_bounded():
    q: BroadcastQueue[int] = BroadcastQueue()
    for i in range(10_000):
        q.push(f"k{i % 10}", i)
    assert len(q) == 10
    assert len(q._heap) <= 2 * len(q) + 64
    q.discard("k3")
    assert sorted(q.take(100, limit=5)) == [9990, 9991, 9992, 9994, 9995, 9996, 9997, 9998, 9999]

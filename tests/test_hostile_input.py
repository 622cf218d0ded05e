"""Hostile input: codec round-trips, mutated and arbitrary frames never crash the decoder or
the handlers, limits turn into counted drops, the per-peer token bucket holds."""
from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gossipmq.core.codec import HEADER, decode_frames, encode_envelope
from gossipmq.core.errors import RemoteProtocolError
from gossipmq.core.limits import LimitsSection, RateLimiter
from gossipmq.core.messages import KERNEL_BODIES, Ack, Entry, Envelope, Join, JoinAck, Leave, MemberUpdate, Syn, SynAck
from gossipmq.core.signing import KeyPair
from tests._security_helpers import memory_node

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
ints = st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
counts = st.integers(min_value=0, max_value=2 ** 63 - 1)       # what the wire accepts for clocks, incarnations
counters = st.integers(min_value=1, max_value=2 ** 63 - 1)     # ... and for dot counters
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | ids,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ids, children, max_size=4),
    max_leaves=12)
entries = st.builds(Entry, ids, json_values, st.booleans(), ids, counters, counts,
                    st.dictionaries(ids, counters, max_size=3), st.text(max_size=8))
claims = st.builds(MemberUpdate, ids, ids, counts, st.sampled_from(["alive", "suspect", "dead", "left"]), counts,
                   st.dictionaries(ids, ids, max_size=3), ids, st.text(max_size=8))
digests = st.dictionaries(ids, counts, max_size=4)
bodies = st.one_of(
    st.just(("join", Join())), st.just(("leave", Leave())),
    st.builds(lambda m: ("join_ack", JoinAck(m)), st.lists(claims, max_size=3)),
    st.builds(lambda mode, d: ("syn", Syn(mode, d)), st.sampled_from(["push", "pull", "push-pull"]), digests),
    st.builds(lambda d, e, c: ("syn_ack", SynAck(d, e, c)), st.none() | digests, st.lists(entries, max_size=3), digests),
    st.builds(lambda e, c: ("ack", Ack(e, c)), st.lists(entries, max_size=3), digests),
)
envelopes = st.builds(lambda b, src, addr, inc, m, r, s: Envelope(type=b[0], src=src, addr=addr, inc=inc, body=b[1],
                                                                  members=m, rumors=r, sum=s),
                      bodies, ids, ids, counts, st.lists(claims, max_size=3), st.lists(entries, max_size=3), ids)

KEYS = {n: KeyPair.generate() for n in ("n1", "n2")}


def fresh_nodes():
    return [memory_node("n1", KEYS, signing="ed25519"), memory_node("n1", KEYS, signing="none")]


def _drops(node) -> int:
    return sum(v for k, v in node.stats.items() if k.startswith("dropped."))


def feed(node, frames: list[bytes]) -> None:
    """What the runtime does with one received message; anything escaping is a bug."""
    try:
        env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes, limits=node.limits)
    except RemoteProtocolError as exc:
        node.record_drop(1.0, exc.cause, exc.detail)
        return
    node.handle_message(1.0, env, peer=env.src)


@given(envelopes)
@settings(max_examples=300, deadline=None)
def test_codec_round_trip(env: Envelope) -> None:
    decoded = decode_frames(encode_envelope(env), KERNEL_BODIES)
    assert msgspec.to_builtins(decoded) == msgspec.to_builtins(env)


@given(envelopes, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, 3))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_frames_never_crash(env: Envelope, edits: list[tuple[int, int]], mode: int) -> None:
    header, body = encode_envelope(env)
    data = bytearray(body)
    for pos, byte in edits:
        if not data:
            break
        pos %= len(data)
        if mode == 0:
            data[pos] = byte                    # flip
        elif mode == 1:
            data.insert(pos, byte)              # insert
        elif mode == 2:
            del data[pos]                       # delete
        else:
            data = data[:pos]                   # truncate
    for node in fresh_nodes():
        start = node.start(0.0)
        assert start is not None
        feed(node, [header, bytes(data)])
        feed(node, [bytes(data[:4]) or b"x", bytes(data)])


@given(st.lists(st.binary(max_size=64), max_size=4))
@settings(max_examples=200, deadline=None)
def test_random_frames_are_counted_drops(frames: list[bytes]) -> None:
    node = memory_node("n1", KEYS)
    node.start(0.0)
    before = _drops(node)
    feed(node, frames)
    assert _drops(node) == before + 1


@given(st.dictionaries(st.sampled_from(["type", "src", "addr", "inc", "body", "members", "rumors", "sum", "x"]),
                       json_values, max_size=8),
       st.sampled_from(list(KERNEL_BODIES)))
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_documents_never_crash(doc: dict, type_name: str) -> None:
    doc.setdefault("type", type_name)
    try:
        body = orjson.dumps(doc)
    except TypeError:
        assume(False)
    for node in fresh_nodes():
        node.start(0.0)
        feed(node, [HEADER, body])


# ---- limits ------------------------------------------------------------------------------------------
def _frames(env: Envelope) -> list[bytes]:
    return encode_envelope(env)


def _entry(key: str = "k", value=1, vv: dict | None = None) -> Entry:
    return Entry(key, value, False, "n2", 1, 1, vv or {"n2": 1})


@pytest.mark.parametrize("env, cause", [
    (Envelope(type="ack", src="n2", addr="a", inc=1, body=Ack([_entry(f"k{i}") for i in range(5)])), "limit_entries"),
    (Envelope(type="join_ack", src="n2", addr="a", inc=1,
              body=JoinAck([MemberUpdate(f"m{i}", "a", 1, "alive") for i in range(5)])), "limit_members"),
    (Envelope(type="ack", src="n2", addr="a", inc=1, body=Ack([_entry("k" * 40)])), "limit_key"),
    (Envelope(type="ack", src="n2", addr="a", inc=1, body=Ack([_entry(value="v" * 100)])), "limit_value"),
    (Envelope(type="ack", src="n2", addr="a", inc=1, body=Ack([_entry(value={"a": ["b" * 100]})])), "limit_value"),
    (Envelope(type="syn", src="n2", addr="a", inc=1, body=Syn("push", {f"o{i}": 1 for i in range(5)})), "limit_origins"),
    (Envelope(type="ack", src="n2", addr="a", inc=1, body=Ack([_entry(vv={f"o{i}": 1 for i in range(5)})])),
     "limit_origins"),
    (Envelope(type="join", src="n" * 50, addr="a", inc=1, body=Join()), "limit_id"),
    (Envelope(type="join", src="n2", addr="a", inc=1, body=Join(), rumors=[_entry(f"k{i}") for i in range(5)]),
     "limit_entries"),
])
def test_limits_are_enforced_with_a_named_cause(env: Envelope, cause: str) -> None:
    limits = LimitsSection(max_entries=4, max_members=4, max_origins=4, max_key_bytes=32, max_value_bytes=64,
                           max_id_bytes=16)
    with pytest.raises(RemoteProtocolError) as info:
        decode_frames(_frames(env), KERNEL_BODIES, limits=limits)
    assert info.value.cause == cause
    decode_frames(_frames(env), KERNEL_BODIES)   # within the default limits it is fine


def test_oversized_frame_and_wrong_version_are_named() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frames([HEADER, b"x" * 2000], KERNEL_BODIES, max_frame_bytes=1000)
    assert info.value.cause == "oversized"
    with pytest.raises(RemoteProtocolError) as info:
        decode_frames([HEADER[:3] + b"\x09", b"{}"], KERNEL_BODIES)
    assert info.value.cause == "version"
    with pytest.raises(RemoteProtocolError) as info:
        decode_frames([HEADER, b"{}", b"extra"], KERNEL_BODIES)
    assert info.value.cause == "frame_count"


def test_local_writes_beyond_limits_are_refused() -> None:
    node = memory_node("n1", KEYS, limits={"max_key_bytes": 8, "max_value_bytes": 16})
    node.start(0.0)
    with pytest.raises(ValueError, match="max_key_bytes"):
        node.put(1.0, "k" * 9, 1)
    with pytest.raises(ValueError, match="max_value_bytes"):
        node.put(1.0, "k", "v" * 20)
    node.put(1.0, "k", "v")


def test_token_bucket_limits_each_peer_separately() -> None:
    limiter = RateLimiter(rate=10, burst=5, tracked=16)
    assert sum(limiter.allow("a", 0.0) for _ in range(20)) == 5      # burst, then empty
    assert all(limiter.allow("b", 0.0) for _ in range(5))            # another peer is unaffected
    assert sum(limiter.allow("a", 1.0) for _ in range(20)) == 5      # refilled at 10/s, capped by burst
    assert sum(limiter.allow("a", 1.25) for _ in range(20)) == 2   # 2.5 tokens
    for i in range(100):                                             # many identities: memory stays bounded
        limiter.allow(f"x{i}", 2.0)
    assert len(limiter) == 16
    assert all(RateLimiter(0, 1).allow("a", 0.0) for _ in range(1000))  # 0 = unlimited


def test_a_crossing_copy_of_a_kept_write_changes_nothing_and_a_forged_one_cannot_replace_it() -> None:
    """Push-pull delivers some writes twice; a copy of a kept version (or a forgery carrying its
    dot) is counted redundant, emits no event and leaves the store as it was."""
    from gossipmq.core.effects import KeyChanged
    from gossipmq.transports.memory import make_nodes
    from tests.helpers import config, registry
    writer, receiver = make_nodes(config(), registry(), 2, prefill=True)
    for node in (writer, receiver):
        node.start(0.0)
    entry, _ = writer.put(1.0, "k", "v")

    def delta(*entries: Entry) -> Envelope:
        return Envelope(type="syn_ack", src=writer.node_id, addr=writer.address, inc=writer.inc,
                        body=SynAck(None, list(entries), {}))

    assert any(isinstance(e, KeyChanged) for e in receiver.handle_message(1.0, delta(entry)))
    checksum = receiver.store.checksum()
    forged = msgspec.structs.replace(entry, value="forged", hlc=entry.hlc + 1)
    effects = receiver.handle_message(1.1, delta(entry, forged))
    assert not any(isinstance(e, KeyChanged) for e in effects)
    assert receiver.stats["entries_redundant"] == 2 and receiver.stats["entries_applied"] == 1
    assert receiver.read("k").value == "v" and receiver.store.checksum() == checksum

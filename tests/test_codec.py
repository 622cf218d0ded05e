from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipmq.core.codec import HEADER, decode_frames, encode_envelope
from gossipmq.core.errors import RemoteProtocolError
from gossipmq.core.messages import KERNEL_BODIES, Entry, Envelope, MemberUpdate, Syn, SynAck


def _env(**kw) -> Envelope:  # type: ignore[no-untyped-def]
    base = dict(type="syn", src="a", addr="tcp://127.0.0.1:1", inc=3, body=Syn("push-pull", {"a": 4}))
    base.update(kw)
    return Envelope(**base)


def test_round_trip_with_piggyback() -> None:
    entry = Entry("k", {"x": [1, 2]}, False, "a", 7, 123 << 16, {"a": 7, "b": 2})
    env = _env(type="syn_ack", body=SynAck({"a": 1}, [entry], {"a": 7}),
               members=[MemberUpdate("b", "tcp://h:2", 5, "suspect", 9, {"zone": "z"})], rumors=[entry], sum="ff")
    assert decode_frames(encode_envelope(env), KERNEL_BODIES) == env


@pytest.mark.parametrize("frames, cause", [
    ([HEADER], "frame_count"),
    ([HEADER, b"{}", b"x"], "frame_count"),
    ([b"XYZ\x01", b"{}"], "bad_magic"),
    ([b"GMQ\x02", b"{}"], "version"),
    ([HEADER, b"{not json"], "malformed"),
    ([HEADER, b"[1,2]"], "schema"),
    ([HEADER, orjson.dumps({"type": "nope", "src": "a", "addr": "x", "inc": 1, "body": {}})], "unknown_type"),
    ([HEADER, orjson.dumps({"type": "syn", "src": "a", "addr": "x", "inc": 1, "body": {"mode": "sideways",
                                                                                   "digest": {}}})], "schema"),
    ([HEADER, orjson.dumps({"type": "syn", "src": "a", "addr": "x", "inc": "one", "body": {}})], "schema"),
    ([HEADER, b" " * 2000], "oversized"),
])
def test_bad_frames_name_their_cause(frames: list[bytes], cause: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frames(frames, KERNEL_BODIES, max_frame_bytes=1000)
    assert info.value.cause == cause


def test_wrong_version_message_names_both_versions() -> None:
    with pytest.raises(RemoteProtocolError, match="unsupported protocol version 9 .this node speaks 1"):
        decode_frames([b"GMQ\x09", b"{}"], KERNEL_BODIES)


@given(st.lists(st.binary(max_size=64), max_size=4))
def test_arbitrary_bytes_never_escape_as_other_errors(frames: list[bytes]) -> None:
    try:
        decode_frames(frames, KERNEL_BODIES)
    except RemoteProtocolError:
        pass


@given(st.dictionaries(st.text(max_size=5), st.integers(min_value=0, max_value=2**62), max_size=5),
       st.text(max_size=20), st.integers(min_value=0, max_value=2**62))
def test_syn_round_trip_property(digest: dict[str, int], src: str, inc: int) -> None:
    env = _env(src=src, inc=inc, body=Syn("pull", digest))
    assert decode_frames(encode_envelope(env), KERNEL_BODIES) == env


@given(st.builds(Entry, st.text(max_size=20), st.recursive(
           st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=30), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
           max_leaves=8),
       st.booleans(), st.text(max_size=12), st.integers(1, 2 ** 63 - 1), st.integers(0, 2 ** 63 - 1),
       st.dictionaries(st.text(max_size=10), st.integers(1, 2 ** 63 - 1), max_size=4), st.text(max_size=90),
       st.sampled_from(["", "mv", "crdt:orset"])))
def test_entry_size_is_what_the_entry_adds_to_a_message(entry: Entry) -> None:
    """Byte budgets count `entry_size`: exactly the bytes one more entry adds to a list of them."""
    from gossipmq.core.limits import entry_size
    assert entry_size(entry) == len(msgspec.json.encode([entry, entry])) - len(msgspec.json.encode([entry]))

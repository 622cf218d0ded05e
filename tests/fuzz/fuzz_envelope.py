"""Fuzz target: the envelope decoder, the [limits] checks, signature verification and every
kernel handler, fed arbitrary frames the way the ZeroMQ runtime feeds them.

Coverage-guided with atheris (pip install -e '.[fuzz]'):

    python tests/fuzz/fuzz_envelope.py -runs=50000            # bounded run (CI-friendly)
    python tests/fuzz/fuzz_envelope.py -max_total_time=300 corpus/   # longer, keeps a corpus

Without atheris it falls back to a seeded random mutator over valid messages, same flags
(-runs=N), so the target itself is exercised everywhere. Any exception other than a counted
RemoteProtocolError is a bug: libFuzzer reports it with the crashing input.
"""
from __future__ import annotations

import random
import sys

try:
    import atheris
except ImportError:  # pragma: no cover - exercised in the fallback run
    atheris = None


def _imports():  # instrumented by atheris when present
    from gossipmq.core.codec import HEADER, decode_frames, encode_envelope
    from gossipmq.core.errors import RemoteProtocolError
    from gossipmq.core.messages import Entry, Envelope, MemberUpdate, Syn, SynAck
    from gossipmq.core.signing import KeyPair
    return HEADER, decode_frames, encode_envelope, RemoteProtocolError, Entry, Envelope, MemberUpdate, Syn, SynAck, KeyPair


if atheris is not None:
    with atheris.instrument_imports(include=["gossipmq"]):
        (HEADER, decode_frames, encode_envelope, RemoteProtocolError, Entry, Envelope, MemberUpdate, Syn, SynAck,
         KeyPair) = _imports()
else:
    (HEADER, decode_frames, encode_envelope, RemoteProtocolError, Entry, Envelope, MemberUpdate, Syn, SynAck,
     KeyPair) = _imports()

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])
from tests._security_helpers import memory_node  # noqa: E402

KEYS = {"n1": KeyPair.generate(), "n2": KeyPair.generate()}
_state = {"count": 0, "nodes": []}


def _nodes():
    if _state["count"] % 2000 == 0:   # fresh kernels now and then: state stays small
        _state["nodes"] = [memory_node("n1", KEYS, signing="ed25519", limits={"max_entries": 64}),
                           memory_node("n1", KEYS, signing="none")]
        for node in _state["nodes"]:
            node.start(0.0)
    _state["count"] += 1
    return _state["nodes"]


def feed(frames: list[bytes]) -> None:
    for node in _nodes():
        try:
            env = decode_frames(frames, node.bodies, node.gossip.max_frame_bytes, limits=node.limits)
        except RemoteProtocolError as exc:
            node.record_drop(1.0, exc.cause, exc.detail)
            continue
        node.handle_message(1.0 + _state["count"] * 0.01, env, peer=env.src)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode = data[0] % 3
    rest = data[1:]
    if mode == 0:        # a valid header and an arbitrary body: reaches the schema and the handlers
        feed([HEADER, rest])
    elif mode == 1:      # arbitrary frame split
        cut = rest[0] % (len(rest) + 1) if rest else 0
        feed([rest[:cut], rest[cut:]])
    else:                # arbitrary number of frames
        feed([rest[i:i + 7] for i in range(0, len(rest), 7)] or [b""])


def _seeds() -> list[bytes]:
    entry = Entry("k", {"a": [1, 2.5, None]}, False, "n2", 5, 10, {"n2": 5})
    claim = MemberUpdate("n2", "mem://n2", 3, "alive", 1, {"gmq.key": KEYS["n2"].identity})
    envs = [Envelope(type="syn", src="n2", addr="mem://n2", inc=3, body=Syn("push-pull", {"n2": 4}), members=[claim]),
            Envelope(type="syn_ack", src="n2", addr="mem://n2", inc=3, body=SynAck({"n2": 5}, [entry], {"n2": 5}),
                     rumors=[entry])]
    return [b"\x00" + encode_envelope(e)[1] for e in envs]


def fallback(argv: list[str]) -> None:
    runs = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("-runs=")), 10_000)
    rng = random.Random(next((int(a.split("=", 1)[1]) for a in argv if a.startswith("-seed=")), 0))
    seeds = _seeds()
    for i in range(runs):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            op, pos = rng.randrange(4), rng.randrange(len(data) or 1)
            if op == 0 and data:
                data[pos] = rng.randrange(256)
            elif op == 1:
                data.insert(pos, rng.randrange(256))
            elif op == 2 and data:
                del data[pos]
            else:
                data[0] = rng.randrange(3)
        TestOneInput(bytes(data))
    print(f"fallback mutator (atheris not installed): {runs} runs, no crash")


if __name__ == "__main__":
    if atheris is None:
        fallback(sys.argv)
    else:
        argv = list(sys.argv)
        if not any(not a.startswith("-") for a in argv[1:]):
            # no corpus given: start from valid messages in a scratch dir (never the source tree)
            import tempfile
            corpus = tempfile.mkdtemp(prefix="gossipmq-fuzz-")
            for i, seed in enumerate(_seeds()):
                with open(f"{corpus}/seed{i}", "wb") as fh:
                    fh.write(seed)
            argv.append(corpus)
        atheris.Setup(argv, TestOneInput)
        atheris.Fuzz()

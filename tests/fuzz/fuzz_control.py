"""Fuzz target: the control channel's request decoder and the write path it feeds, with
arbitrary bytes as a local client (or anyone who reached a tcp control endpoint) could send.

    python tests/fuzz/fuzz_control.py -runs=50000            # atheris (pip install -e '.[fuzz]')

Without atheris a seeded random mutator over valid requests runs instead (same -runs=N). Only a
ValueError naming the problem may come out of decoding or of a refused write; anything else is
a bug.
"""
from __future__ import annotations

import random
import sys

try:
    import atheris
except ImportError:  # pragma: no cover - exercised in the fallback run
    atheris = None


def _imports():  # instrumented by atheris when present
    from gossipmq.core.resolution import Op, context_of
    from gossipmq.transports.control import Delete, Incr, Put, Sadd, Srem, decode_request
    return Op, context_of, Delete, Incr, Put, Sadd, Srem, decode_request


if atheris is not None:
    with atheris.instrument_imports(include=["gossipmq"]):
        Op, context_of, Delete, Incr, Put, Sadd, Srem, decode_request = _imports()
else:
    Op, context_of, Delete, Incr, Put, Sadd, Srem, decode_request = _imports()

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])
from gossipmq.core.signing import KeyPair  # noqa: E402
from tests._security_helpers import memory_node  # noqa: E402

NODE = memory_node("n1", {"n1": KeyPair.generate()}, signing="none")
NODE.start(0.0)
_now = [1.0]


def TestOneInput(data: bytes) -> None:
    try:
        req = decode_request(data)
    except ValueError:
        return
    _now[0] += 0.001
    try:
        if isinstance(req, Put):
            NODE.mutate(_now[0], req.key, Op("put", req.value, context_of(req.context), req.field))
        elif isinstance(req, Delete):
            NODE.delete(_now[0], req.key, context=req.context, field=req.field)
        elif isinstance(req, Incr):
            NODE.mutate(_now[0], req.key, Op("incr", req.value, None, req.field))
        elif isinstance(req, Sadd | Srem):
            NODE.mutate(_now[0], req.key, Op(req.__struct_config__.tag, req.member, None, req.field))
    except ValueError:
        return   # refused, with a reason: that is the contract


SEEDS = [b'{"cmd":"put","key":"k","value":{"a":[1,2.5,null,"x"]}}', b'{"cmd":"incr","key":"c","value":3}',
         b'{"cmd":"sadd","key":"s","member":"m"}', b'{"cmd":"get","key":"k","verbose":true}',
         b'{"cmd":"put","key":"k","value":1,"ack":"majority","id":7,"token":"t"}', b'{"cmd":"delete","key":"k"}',
         b'{"cmd":"members","status":["alive"],"tags":{"zone":"a"}}', b'{"cmd":"join","addresses":["tcp://h:1"]}']


def fallback(argv: list[str]) -> None:
    runs = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("-runs=")), 10_000)
    rng = random.Random(next((int(a.split("=", 1)[1]) for a in argv if a.startswith("-seed=")), 0))
    for _ in range(runs):
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 6)):
            op, pos = rng.randrange(4), rng.randrange(len(data) or 1)
            if op == 0 and data:
                data[pos] = rng.randrange(256)
            elif op == 1:
                data.insert(pos, rng.choice(b'[{"9e-:,}]0123456789' + bytes([rng.randrange(256)])))
            elif op == 2 and data:
                del data[pos]
            else:
                data[pos:pos] = rng.choice([b"[" * 300, b"9" * 40, b'"\\ud800"', b"-0", b"1e999"])
        TestOneInput(bytes(data))
    print(f"fallback mutator (atheris not installed): {runs} runs, no crash")


if __name__ == "__main__":
    if atheris is None:
        fallback(sys.argv)
    else:
        argv = list(sys.argv)
        if not any(not a.startswith("-") for a in argv[1:]):
            import tempfile
            corpus = tempfile.mkdtemp(prefix="gossipmq-fuzz-control-")
            for i, seed in enumerate(SEEDS):
                with open(f"{corpus}/seed{i}", "wb") as fh:
                    fh.write(seed)
            argv.append(corpus)
        atheris.Setup(argv, TestOneInput)
        atheris.Fuzz()

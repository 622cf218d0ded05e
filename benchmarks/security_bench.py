"""Cost of curve security's signing on the hot path (prints figures; asserts nothing).

    python benchmarks/security_bench.py [--n 5000]

Measures raw Ed25519 sign/verify (PyNaCl), the kernel-facing costs (seal a local write, verify
a received entry the first time and from the (origin, dot) cache, sign/verify a membership
claim), and the decoder with and without [limits] checks on a 64-entry delta.
"""
from __future__ import annotations

import argparse
import time

import msgspec

from gossipmq.core.codec import decode_frames, encode_envelope
from gossipmq.core.limits import LimitsSection
from gossipmq.core.messages import KERNEL_BODIES, Entry, Envelope, MemberUpdate, SynAck
from gossipmq.core.signing import KeyPair, claim_payload, curve_public_of, verify
from gossipmq.plugins.security import CurveOptions, CurveSecurity, Trust, TrustedKey


def timeit(label: str, n: int, fn) -> None:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    per = (time.perf_counter() - start) / n
    print(f"{label:<46} {per * 1e6:8.1f} us   {1 / per:10.0f} /s")


class _Ctx:
    node_id = "n1"

    def __init__(self) -> None:
        self.drops = 0

    def drop(self, cause: str, detail: str) -> None:
        self.drops += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    kp, other = KeyPair.generate(), KeyPair.generate()
    payload = b"x" * 200
    sig = kp.sign(payload)
    timeit("ed25519 sign (200 B)", n, lambda i: kp.sign(payload))
    timeit("ed25519 verify (200 B)", n, lambda i: verify([kp.identity], payload, sig))

    sec = CurveSecurity(CurveOptions(key="-"))
    sec.install(other, Trust([TrustedKey("n2", kp.identity, curve_public_of(kp.identity))]))
    sec.ctx = _Ctx()  # type: ignore[assignment]
    entries = [Entry(f"key/{i}", {"v": i, "s": "x" * 64}, False, "n2", i + 1, i, {"n2": i + 1}) for i in range(n)]
    signer = CurveSecurity(CurveOptions(key="-"))
    signer.install(kp, Trust())
    sealed = [signer.seal_entry(e) for e in entries]
    timeit("seal_entry (sign a local write)", n, lambda i: signer.seal_entry(entries[i]))
    timeit("verify entry, first time", n, lambda i: sec._entry_valid(sealed[i]))
    timeit("verify entry, cached by (origin, dot)", n, lambda i: sec._entry_valid(sealed[i]))
    claim = MemberUpdate("n2", "tcp://127.0.0.1:7946", 1, "alive", 0, {"gmq.key": kp.identity})
    claims = [msgspec.structs.replace(claim, hb=i) for i in range(n)]
    signed = [msgspec.structs.replace(c, sig=kp.sign(claim_payload(c))) for c in claims]
    timeit("sign claim", n, lambda i: kp.sign(claim_payload(claims[i])))
    timeit("verify claim, first time", n, lambda i: sec._claim_valid(signed[i]))
    timeit("verify claim, cached", n, lambda i: sec._claim_valid(signed[i]))
    assert sec.ctx.drops == 0  # type: ignore[union-attr]

    env = Envelope(type="syn_ack", src="n2", addr="tcp://127.0.0.1:7946", inc=1, body=SynAck(None, sealed[:64], {}))
    frames = encode_envelope(env)
    limits = LimitsSection()
    m = max(200, n // 10)
    timeit("decode 64-entry delta", m, lambda i: decode_frames(frames, KERNEL_BODIES))
    timeit("decode 64-entry delta + [limits] checks", m, lambda i: decode_frames(frames, KERNEL_BODIES, limits=limits))


if __name__ == "__main__":
    main()

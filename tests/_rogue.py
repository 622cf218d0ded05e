"""A hostile peer for the real-socket security tests (run as a process):

    python -m tests._rogue flood  ADDRESS SERVERKEY SECRET_CERT|- SECONDS [MAX_FRAME]
    python -m tests._rogue forge  ADDRESS SERVERKEY SECRET_CERT VICTIM_ID
    python -m tests._rogue handshakes ADDRESS SERVERKEY SECONDS

`flood` cycles through random bytes, oversized frames, wrong protocol versions, too many
frames and valid-looking messages whose sender id is spoofed (claiming to be n2), as fast as
the socket takes them, for SECONDS. With SECRET_CERT "-" it uses a fresh, untrusted key (ZAP
must refuse it). `forge` speaks as a trusted but malicious member: it joins, then sends an
entry claiming VICTIM_ID wrote it and a claim that VICTIM_ID left, both signed with its own key.
Prints one JSON line of what it sent.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

import msgspec
import zmq

from gossipmq.core.codec import HEADER, encode_envelope
from gossipmq.core.messages import Entry, Envelope, Join, MemberUpdate, Syn, SynAck
from gossipmq.core.signing import KEY_TAG, KeyPair, claim_payload, entry_payload
from gossipmq.transports.curve import load_secret


def _socket(address: str, server_key: str, cert: str) -> tuple[zmq.Socket, str, KeyPair]:
    if cert == "-":
        node_id, kp = "eve", KeyPair.generate()
    else:
        node_id, kp = load_secret(cert)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = 1000
    sock.curve_secretkey = kp.curve_secret.encode()
    sock.curve_publickey = kp.curve_public.encode()
    sock.curve_serverkey = server_key.encode()
    sock.connect(address)
    return sock, node_id, kp


def flood(address: str, server_key: str, cert: str, seconds: float, max_frame: int = 65536) -> dict[str, int]:
    sock, node_id, kp = _socket(address, server_key, cert)
    rng = random.Random(os.getpid())
    spoof = encode_envelope(Envelope(type="syn", src="n2", addr="tcp://127.0.0.1:1", inc=1,
                                     body=Syn("push-pull", {"n2": 10 ** 9}),
                                     members=[MemberUpdate("n2", "tcp://127.0.0.1:1", 10 ** 15, "left")]))
    kinds = ["random", "oversized", "version", "frames", "spoofed"]
    sent = {k: 0 for k in kinds}
    blocked = 0
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        kind = kinds[i % len(kinds)]
        i += 1
        if kind == "random":
            frames = [rng.randbytes(rng.randint(0, 256)) for _ in range(rng.randint(1, 3))]
        elif kind == "oversized":
            frames = [HEADER, b"{" + b" " * rng.randint(max_frame + 1, 2 * max_frame)]
        elif kind == "version":
            frames = [HEADER[:3] + bytes([rng.randint(2, 255)]), spoof[1]]
        elif kind == "frames":
            frames = [HEADER] * rng.randint(3, 40)
        else:
            frames = spoof
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
            sent[kind] += 1
        except zmq.Again:
            blocked += 1
            time.sleep(0.001)
    return {**sent, "blocked": blocked}


def handshakes(address: str, server_key: str, seconds: float) -> dict[str, int]:
    """A fresh untrusted key per connection: every attempt costs the victim one ZAP round."""
    attempts = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock, _, _ = _socket(address, server_key, "-")
        try:
            sock.send_multipart([HEADER, b"{}"], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        time.sleep(0.02)
        sock.close(linger=0)
        attempts += 1
    return {"handshakes": attempts}


def forge(address: str, server_key: str, cert: str, victim: str) -> dict[str, int]:
    sock, me, kp = _socket(address, server_key, cert)
    mine = "tcp://127.0.0.1:9"   # nobody listens: members cannot answer us, which is fine here
    self_claim = MemberUpdate(me, mine, 1, "alive", 1, {KEY_TAG: kp.identity})
    self_claim = msgspec.structs.replace(self_claim, sig=kp.sign(claim_payload(self_claim)))
    entry = Entry("forged", "mallory was here", False, victim, 10 ** 12, 1, {victim: 10 ** 12})
    entry = msgspec.structs.replace(entry, sig=kp.sign(entry_payload(entry)))      # signed, but not by victim
    left = MemberUpdate(victim, "tcp://127.0.0.1:1", 10 ** 15, "left")
    left = msgspec.structs.replace(left, sig=kp.sign(claim_payload(left)))
    sent = 0
    for _ in range(20):
        for env in (Envelope(type="join", src=me, addr=mine, inc=1, body=Join(), members=[self_claim]),
                    Envelope(type="syn_ack", src=me, addr=mine, inc=1, body=SynAck(None, [entry], {}),
                             members=[self_claim, left], rumors=[entry])):
            sock.send_multipart(encode_envelope(env))
            sent += 1
        time.sleep(0.05)
    time.sleep(0.5)
    return {"sent": sent}


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flood":
        out = flood(args[0], args[1], args[2], float(args[3]), int(args[4]) if len(args) > 4 else 65536)
    elif cmd == "handshakes":
        out = handshakes(args[0], args[1], float(args[2]))
    else:
        out = forge(args[0], args[1], args[2], args[3])
    print(json.dumps(out), flush=True)

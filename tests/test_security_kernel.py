"""Signed updates in the sans-I/O kernel: forgery is dropped and counted, relays keep
signatures, replays are harmless by construction, the authenticated peer id is enforced."""
from __future__ import annotations

import msgspec
import pytest

from gossipmq.core.clock import LOGICAL_BITS
from gossipmq.core.messages import Entry, Envelope, MemberUpdate, SynAck, origin_node
from gossipmq.core.signing import KEY_TAG, KeyPair, claim_payload, entry_payload
from gossipmq.transports.memory import MemoryNetwork
from tests._security_helpers import memory_node

NAMES = ["n1", "n2", "n3"]


@pytest.fixture()
def keys() -> dict[str, KeyPair]:
    return {n: KeyPair.generate() for n in [*NAMES, "mallory"]}


def cluster(keys: dict[str, KeyPair], signing: str = "ed25519") -> MemoryNetwork:
    net = MemoryNetwork(seed=7, encode=True)
    net.add(memory_node("n1", keys, signing=signing))
    for n in NAMES[1:]:
        net.add(memory_node(n, keys, seeds=["mem://n1"], signing=signing))
    assert net.wait_for(lambda: all(len(node.members.reachable_ids()) == 2 for node in net.nodes.values()), 10)
    return net


def same_state(net: MemoryNetwork) -> bool:
    return len({node.store.checksum() for node in net.nodes.values()}) == 1


def envelope(src: str, body: msgspec.Struct, typ: str, members=(), rumors=()) -> Envelope:
    return Envelope(type=typ, src=src, addr=f"mem://{src}", inc=1, body=body, members=list(members),
                    rumors=list(rumors))


def sign_entry(entry: Entry, key: KeyPair) -> Entry:
    """`entry` as `key` signed it (whoever its origin says it is from)."""
    return msgspec.structs.replace(entry, sig=key.sign(entry_payload(entry)))


def test_signed_cluster_converges_without_drops(keys):
    net = cluster(keys)
    net.put("mem://n2", "k", "v")
    assert net.wait_for(lambda: all(n.get("k") is not None for n in net.nodes.values()), 10)
    assert same_state(net)
    for node in net.nodes.values():
        assert not any(k.startswith("dropped.") for k in node.stats), dict(node.stats)
        entry = node.get("k")
        assert origin_node(entry.origin) == "n2" and entry.sig   # relays kept the origin's signature
        assert node.tags[KEY_TAG] == keys[node.node_id].identity


def test_forged_and_unsigned_entries_are_dropped_and_counted(keys):
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    forged = Entry("k", "evil", False, "n1", 1 << 40, 1, {"n1": 1 << 40})
    forged = sign_entry(forged, keys["n2"])   # n2 signs as n1
    unsigned = Entry("k2", "evil", False, "n1", (1 << 40) + 1, 1, {"n1": (1 << 40) + 1})
    honest = Entry("k3", "fine", False, "n2", 1 << 41, 1, {"n2": 1 << 41})
    honest = sign_entry(honest, keys["n2"])
    victim.handle_message(net.now, envelope("n2", SynAck(None, [forged, unsigned, honest], {}), "syn_ack"), peer="n2")
    assert victim.get("k") is None and victim.get("k2") is None
    assert victim.get("k3").value == "fine"         # the honest entry in the same message survives
    assert victim.stats["dropped.forged_entry"] == 1
    assert victim.stats["dropped.unsigned_entry"] == 1
    tampered = msgspec.structs.replace(honest, value="changed in transit")
    victim.handle_message(net.now, envelope("n2", SynAck(None, [tampered], {}), "syn_ack"), peer="n2")
    assert victim.get("k3").value == "fine" and victim.stats["dropped.forged_entry"] == 2


def test_member_claims_need_the_members_own_signature(keys):
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    n1 = victim.members.get("n1")
    fake_leave = MemberUpdate("n1", n1.addr, n1.inc + 5, "left")
    signed_by_other = msgspec.structs.replace(fake_leave, sig=keys["n2"].sign(claim_payload(fake_leave)))
    victim.handle_message(net.now, envelope("n2", SynAck(), "syn_ack", members=[fake_leave, signed_by_other]),
                          peer="n2")
    assert victim.members.get("n1").status == "alive"
    assert victim.stats["dropped.unsigned_claim"] == 1 and victim.stats["dropped.forged_claim"] == 1
    # an accusation is valid when signed by the accuser it names
    accusation = MemberUpdate("n1", n1.addr, victim.members.get("n1").inc, "suspect", n1.hb, dict(n1.tags), by="n2")
    accusation = msgspec.structs.replace(accusation, sig=keys["n2"].sign(claim_payload(accusation)))
    victim.handle_message(net.now, envelope("n2", SynAck(), "syn_ack", members=[accusation]), peer="n2")
    assert victim.members.get("n1").status == "suspect"
    # ... and n1 refutes it with its own signed claim once gossip runs: alive again everywhere
    assert net.wait_for(lambda: all(m.status == "alive" for node in net.nodes.values()
                                    for m in node.members.all()), 10)


def test_untrusted_signer_cannot_vouch(keys):
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    stranger = Entry("x", 1, False, "mallory", 1 << 40, 1, {"mallory": 1 << 40})
    stranger = sign_entry(stranger, keys["mallory"])
    victim_trust = victim.security.trust
    assert "mallory" in victim_trust.active      # the fixture trusts mallory: now revoke it
    from tests._security_helpers import trust_of
    victim.security.set_trust(trust_of({n: keys[n] for n in NAMES}))
    victim.handle_message(net.now, envelope("n2", SynAck(None, [stranger], {}), "syn_ack"), peer="n2")
    assert victim.get("x") is None and victim.stats["dropped.forged_entry"] == 1


def test_authenticated_peer_must_match_sender(keys):
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    before = victim.store.checksum()
    honest = Entry("k", "v", False, "n2", 1 << 41, 1, {"n2": 1 << 41})
    honest = sign_entry(honest, keys["n2"])
    victim.handle_message(net.now, envelope("n2", SynAck(None, [honest], {}), "syn_ack"), peer="mallory")
    assert victim.stats["dropped.spoofed_sender"] == 1 and victim.store.checksum() == before


def test_a_message_under_the_receivers_own_id_is_refused(keys):
    """docs/security.md C3: nobody speaks as the receiver itself, authenticated or not."""
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    before = victim.store.checksum()
    forged = Entry("k", "v", False, "n3", 1 << 41, 1, {"n3": 1 << 41})
    forged = sign_entry(forged, keys["n3"])
    victim.handle_message(net.now, envelope("n3", SynAck(None, [forged], {}), "syn_ack"))
    assert victim.stats["dropped.spoofed_self"] == 1 and victim.store.checksum() == before


def test_an_entry_timestamped_beyond_the_clock_skew_bound_is_refused(keys):
    """docs/security.md C13: a validly signed entry whose HLC is further ahead of the receiver's
    clock than [limits] max_clock_skew_ms (60 s) is dropped as clock_skew; within it, kept."""
    net = cluster(keys)
    victim = net.nodes["mem://n3"]
    now_ms = int(net.now * 1000)

    def signed(key: str, ahead_ms: int) -> Entry:
        entry = Entry(key, "v", False, "n2", 1 << 41 | len(key), (now_ms + ahead_ms) << LOGICAL_BITS, {"n2": 1 << 41 | len(key)})
        return sign_entry(entry, keys["n2"])

    victim.handle_message(net.now, envelope("n2", SynAck(None, [signed("far", 3_600_000)], {}), "syn_ack"), peer="n2")
    assert victim.stats["dropped.clock_skew"] == 1 and victim.get("far") is None
    victim.handle_message(net.now, envelope("n2", SynAck(None, [signed("near", 1_000)], {}), "syn_ack"), peer="n2")
    assert victim.stats["dropped.clock_skew"] == 1 and victim.get("near") is not None


def test_replayed_updates_are_harmless(keys):
    """Old signed entries and claims stay valid signatures, yet change nothing: dots and
    incarnations order them below what the cluster already holds."""
    net = cluster(keys)
    captured: list[Envelope] = []
    net.on_send = lambda src, send: captured.append(send.envelope)
    net.put("mem://n1", "k", "v1")
    assert net.wait_for(lambda: all(n.get("k") is not None for n in net.nodes.values()), 10)
    old_entries = [e for env in captured for e in [*env.rumors, *getattr(env.body, "entries", [])] if e.key == "k"]
    old_claims = [c for env in captured for c in env.members if c.id == "n1" and c.sig]
    assert old_entries and old_claims
    net.put("mem://n1", "k", "v2")
    assert net.wait_for(lambda: all(n.get("k").value == "v2" for n in net.nodes.values()), 10)
    net.leave("mem://n1")
    assert net.wait_for(lambda: all(n.members.get("n1").status == "left" for a, n in net.nodes.items()
                                    if a != "mem://n1"), 10)
    victim = net.nodes["mem://n3"]
    before = (victim.store.checksum(), victim.members.get("n1").status)
    victim.handle_message(net.now, envelope("n2", SynAck(None, old_entries, {}), "syn_ack",
                                            members=old_claims), peer="n2")
    assert (victim.store.checksum(), victim.members.get("n1").status) == before == (before[0], "left")
    assert victim.get("k").value == "v2"
    assert victim.stats["dropped.forged_entry"] == victim.stats["dropped.forged_claim"] == 0  # valid, just old


def test_signing_off_still_binds_keys_but_accepts_unsigned(keys):
    net = cluster(keys, signing="none")
    net.put("mem://n1", "k", "v")
    assert net.wait_for(lambda: all(n.get("k") is not None for n in net.nodes.values()), 10)
    assert net.nodes["mem://n2"].get("k").sig == ""
    assert net.nodes["mem://n2"].security.dial_key("mem://n1") is not None   # learned from n1's key tag

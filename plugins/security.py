"""Security providers.

`none`  - no encryption, no authentication: for trusted networks and tests.
`curve` - CurveZMQ on every socket with a ZAP allow-list (the I/O half lives in
          transports/curve.py), the authenticated key bound to the member id, and optionally
          (`signing = "ed25519"`) end-to-end signatures on every entry and membership claim.

This module is the sans-I/O half of `curve`: it holds key material handed to it by the runtime
(never reads files), verifies and filters what arrives, signs what leaves, and keeps the
directory "address -> CURVE server key" the runtime dials with. See docs/security.md.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from gossipmq.core.hashing import blake2b
from gossipmq.core.hookspecs import hookimpl
from gossipmq.core.messages import Entry, Envelope, MemberUpdate, body_lists, origin_node
from gossipmq.core.signing import (
    KEY_TAG,
    KeyPair,
    LruSet,
    claim_content,
    claim_payload,
    claim_signer,
    entry_payload,
    verify,
)
from gossipmq.core.strategies import Context, NoOptions, SecurityProvider
from gossipmq.core.timers import Timer


class NoSecurity(SecurityProvider):
    """No encryption, no authentication: for trusted networks and tests."""

    def __init__(self, options: NoOptions) -> None:
        self.options = options


# ---- trust --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustedKey:
    """One public identity key the node trusts, and for which member id."""

    node_id: str
    identity: str          # Ed25519 verify key, Z85
    curve: str             # CURVE public key derived from it, Z85
    status: str = "active"  # "active": may connect and sign; "retired": only old entry signatures count
    source: str = "config"
    added: float = 0.0     # file mtime: among several active keys of one node the newest is dialled


class Trust:
    """Immutable snapshot of the trust store (rebuilt on every reload)."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self.keys = sorted(keys, key=lambda k: (k.node_id, k.added))
        self.by_curve: dict[str, TrustedKey] = {}
        self.active: dict[str, list[str]] = defaultdict(list)   # node -> identities, newest last
        self.signers: dict[str, list[str]] = defaultdict(list)  # node -> identities incl. retired
        for key in self.keys:
            if key.status == "active":
                other = self.by_curve.get(key.curve)
                if other is not None and other.node_id != key.node_id:
                    raise ValueError(f"key {key.identity} is trusted for both {other.node_id!r} "
                                     f"({other.source}) and {key.node_id!r} ({key.source})")
                self.by_curve[key.curve] = key
                if key.identity not in self.active[key.node_id]:
                    self.active[key.node_id].append(key.identity)
            if key.identity not in self.signers[key.node_id]:
                self.signers[key.node_id].append(key.identity)

    def node_of(self, curve: str) -> str | None:
        key = self.by_curve.get(curve)
        return key.node_id if key is not None else None

    def curve_of(self, node_id: str, identity: str) -> str | None:
        """CURVE key of `identity` if it is an active key of `node_id`."""
        for key in self.keys:
            if key.node_id == node_id and key.identity == identity and key.status == "active":
                return key.curve
        return None

    def newest_curve(self, node_id: str) -> str | None:
        identities = self.active.get(node_id)
        return self.curve_of(node_id, identities[-1]) if identities else None


# ---- the curve strategy ------------------------------------------------------------------------------
class CurveOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: str = ""                       # own secret cert ("{id}" -> node id; relative to the config file)
    trust_dir: str = ""                 # directory of trusted public certs (retired/ inside: old keys)
    trusted: dict[str, list[str]] = {}  # inline trust: node id -> identity keys (Z85)
    signing: Literal["ed25519", "none"] = "ed25519"
    reload_ms: Annotated[int, msgspec.Meta(ge=0)] = 1000      # trust_dir poll period; 0 = only `keys reload`
    handshake_ms: Annotated[int, msgspec.Meta(ge=100)] = 5000  # a stalled CURVE handshake fails after this


@dataclass
class _Announcement:
    order: tuple[int, int]   # (incarnation, heartbeat) of the claim that announced it
    addr: str
    identity: str


class CurveSecurity(SecurityProvider):
    """CurveZMQ + ZAP allow-list, member id bound to the key, optional Ed25519 update signing."""

    def __init__(self, options: CurveOptions) -> None:
        self.options = options
        self.signing = options.signing == "ed25519"
        self.keypair: KeyPair | None = None
        self.previous: list[KeyPair] = []       # older own keys (rollover): our old entries still verify
        self.trust = Trust()
        self.ctx: Context | None = None
        self.entry_ok = LruSet(65_536)          # (origin, counter) -> digest of signed bytes + sig
        self.claim_ok = LruSet(16_384)          # digest of payload + sig -> True
        self.claim_sigs = LruSet(16_384)        # content digest -> (by, sig): relays re-attach these
        self.self_claims: dict[str, MemberUpdate] = {}      # member -> newest verified self-signed claim
        self.announced: dict[str, _Announcement] = {}       # member -> key it serves with
        self.addr_keys: dict[str, str] = {}     # address -> CURVE server key (announced)
        self.seed_keys: dict[str, str] = {}     # address -> CURVE server key (from seed specs)
        self.seed_nodes: dict[str, str] = {}    # address -> node id (seed spec "id@address")
        self.rekey: set[str] = set()            # addresses whose server key changed or was revoked
        self._own: tuple[bytes, MemberUpdate] | None = None

    # -- set up by the runtime -----------------------------------------------------------------
    def install(self, keypair: KeyPair, trust: Trust) -> None:
        self.keypair = keypair
        self.trust = trust

    def add_seed(self, address: str, node_id: str | None, identity: str | None) -> None:
        """A seed spec's key (`address#KEY`) or member id (`id@address`, key from the trust store)."""
        if identity is not None:
            from gossipmq.core.signing import curve_public_of
            self.seed_keys[address] = curve_public_of(identity)
        if node_id is not None:
            self.seed_nodes[address] = node_id

    def set_trust(self, trust: Trust) -> set[str]:
        """Swap in a reloaded trust store; returns addresses whose dial key is no longer trusted."""
        self.trust = trust
        cut = {addr for addr, curve in self.addr_keys.items() if curve not in trust.by_curve}
        cut |= {addr for addr, curve in self.seed_keys.items() if curve not in trust.by_curve}
        for member_id, ann in list(self.announced.items()):
            if trust.curve_of(member_id, ann.identity) is None:
                del self.announced[member_id]
                self.addr_keys.pop(ann.addr, None)
                self.self_claims.pop(member_id, None)
        self.rekey |= cut
        return cut

    def rotate(self, keypair: KeyPair) -> None:
        """Serve and sign with `keypair` from now on; the old one still verifies our old entries."""
        assert self.keypair is not None
        if keypair.identity != self.keypair.identity:
            self.previous.append(self.keypair)
        self.keypair = keypair
        self._own = None
        if self.ctx is not None:
            self.ctx.tags[KEY_TAG] = keypair.identity

    # -- asked by the runtime --------------------------------------------------------------------
    def dial_key(self, address: str) -> str | None:
        """CURVE server key to dial `address` with; None when nothing trusted is known for it."""
        key = self.addr_keys.get(address) or self.seed_keys.get(address)
        if key is None and address in self.seed_nodes:
            key = self.trust.newest_curve(self.seed_nodes[address])
        return key if key is not None and key in self.trust.by_curve else None

    def peer_id(self, curve: str) -> str | None:
        """Member id bound to an authenticated CURVE key (None once it is no longer trusted)."""
        return self.trust.node_of(curve)

    def take_rekey(self) -> set[str]:
        out, self.rekey = self.rekey, set()
        return out

    # -- strategy surface --------------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        if self.keypair is None:
            raise RuntimeError("curve security was not given its keys (the runtime installs them)")
        self.ctx = ctx
        ctx.tags[KEY_TAG] = self.keypair.identity

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        if timer.name == "announce":
            # After a key rotation: a fresher self-claim (new key tag) straight to every member, so
            # they re-dial us with the new server key at once instead of after a few rounds.
            ctx.bump_heartbeat()
            for member_id in list(ctx.members.reachable_ids()):
                ctx.start_sync(member_id, "push")

    def admit(self, env: Envelope) -> Envelope:
        """`env` without the entries and claims that fail verification (each dropped and counted);
        the same object when everything verifies, a new one otherwise (never changed in place)."""
        members, rumors = self._claims(env.members), self._entries(env.rumors)
        body = env.body
        changes: dict[str, Any] = {}
        for name, items in body_lists(body):
            kept: list[Any] = self._entries(items) if isinstance(items[0], Entry) else self._claims(items)
            if len(kept) != len(items):
                changes[name] = kept
        if changes:
            body = msgspec.structs.replace(body, **changes)
        if members is env.members and rumors is env.rumors and body is env.body:
            return env
        return msgspec.structs.replace(env, members=members, rumors=rumors, body=body)

    def seal_entry(self, entry: Entry) -> Entry:
        if not self.signing or self.keypair is None:
            return entry
        return msgspec.structs.replace(entry, sig=self.keypair.sign(entry_payload(entry)))

    def seal_claims(self, claims: list[MemberUpdate]) -> list[MemberUpdate]:
        ctx = self.ctx
        if ctx is None or not claims:
            return claims
        me = ctx.node_id
        if not self.signing:
            return [ctx.self_update() if c.id == me else c for c in claims]
        out: list[MemberUpdate] = []
        for claim in claims:
            if claim.id == me:
                out.append(self._signed_self())
            elif claim.sig:
                out.append(claim)
            else:
                sealed = self._seal_other(claim, me)
                if sealed is not None:
                    out.append(sealed)
                else:
                    ctx.count("claims_unprovable")
        return out

    # -- internals ------------------------------------------------------------------------------
    def _signers(self, node_id: str, retired: bool) -> list[str]:
        ids = list((self.trust.signers if retired else self.trust.active).get(node_id, ()))
        if self.ctx is not None and node_id == self.ctx.node_id and self.keypair is not None:
            ids += [self.keypair.identity] + [k.identity for k in self.previous]
        return ids

    def _drop(self, cause: str, detail: str) -> None:
        ctx = self.ctx
        if ctx is not None:
            ctx.drop(cause, detail)

    def _entries(self, entries: list[Entry]) -> list[Entry]:
        if not self.signing or not entries:
            return entries
        out: list[Entry] | None = None
        for i, entry in enumerate(entries):
            ok = self._entry_valid(entry)
            if ok and out is not None:
                out.append(entry)
            elif not ok and out is None:
                out = list(entries[:i])
        return entries if out is None else out

    def _entry_valid(self, entry: Entry) -> bool:
        if not entry.sig:
            self._drop("unsigned_entry", f"entry {entry.origin}:{entry.counter} ({entry.key[:64]!r}) has no signature")
            return False
        payload = entry_payload(entry)
        digest = blake2b(payload + entry.sig.encode(), digest_size=16).digest()
        dot = (entry.origin, entry.counter)
        if self.entry_ok.get(dot) == digest:
            return True
        if verify(self._signers(origin_node(entry.origin), retired=True), payload, entry.sig):
            self.entry_ok.put(dot, digest)
            return True
        self._drop("forged_entry", f"entry {entry.origin}:{entry.counter} ({entry.key[:64]!r}) is not signed "
                                   f"by a trusted key of {origin_node(entry.origin)!r}")
        return False

    def _claims(self, claims: list[MemberUpdate]) -> list[MemberUpdate]:
        if not claims:
            return claims
        out: list[MemberUpdate] | None = None
        for i, claim in enumerate(claims):
            ok = self._claim_valid(claim) if self.signing else True
            if ok:
                self._note(claim)
                if out is not None:
                    out.append(claim)
            elif out is None:
                out = list(claims[:i])
        return claims if out is None else out

    def _claim_valid(self, claim: MemberUpdate) -> bool:
        if not claim.sig:
            self._drop("unsigned_claim", f"{claim.status} claim about {claim.id} has no signature")
            return False
        signer = claim_signer(claim)
        payload = claim_payload(claim)
        digest = blake2b(payload + claim.sig.encode(), digest_size=16).digest()
        if signer is not None and self.claim_ok.get(digest):
            return True
        if signer is None or not verify(self._signers(signer, retired=False), payload, claim.sig):
            self._drop("forged_claim", f"{claim.status} claim about {claim.id} (by {claim.by or claim.id}) "
                                       f"is not signed by a trusted key of {signer!r}")
            return False
        self.claim_ok.put(digest, True)
        self.claim_sigs.put(claim_content(claim), (claim.by, claim.sig))
        return True

    def _note(self, claim: MemberUpdate) -> None:
        """Learn the key a member serves with from its own claims (never from others' claims)."""
        if claim.status not in ("alive", "left") or claim.by not in ("", claim.id):
            return
        if self.ctx is not None and claim.id == self.ctx.node_id:
            return
        order = (claim.inc, claim.hb)
        if self.signing:
            best = self.self_claims.get(claim.id)
            if best is None or (best.inc, best.hb) <= order:
                self.self_claims[claim.id] = claim
        identity = claim.tags.get(KEY_TAG)
        if not identity:
            return
        curve = self.trust.curve_of(claim.id, identity)
        if curve is None:
            return
        previous = self.announced.get(claim.id)
        if previous is not None and previous.order > order:
            return
        self.announced[claim.id] = _Announcement(order, claim.addr, identity)
        if previous is not None and previous.addr != claim.addr:
            self.addr_keys.pop(previous.addr, None)
        if self.addr_keys.get(claim.addr) != curve:
            if claim.addr in self.addr_keys:
                self.rekey.add(claim.addr)
            self.addr_keys[claim.addr] = curve

    def _signed_self(self) -> MemberUpdate:
        assert self.ctx is not None and self.keypair is not None
        current = self.ctx.self_update()
        payload = claim_payload(current)
        if self._own is not None and self._own[0] == payload:
            return self._own[1]
        signed = msgspec.structs.replace(current, sig=self.keypair.sign(payload))
        self._own = (payload, signed)
        return signed

    def _seal_other(self, claim: MemberUpdate, me: str) -> MemberUpdate | None:
        """The kernel rebuilds claims from its table without signatures: find the one we verified,
        sign our own accusations, or substitute the member's newest self-signed claim."""
        assert self.keypair is not None
        found = self.claim_sigs.get(claim_content(claim))
        if found is not None:
            by, sig = found
            return msgspec.structs.replace(claim, by=by, sig=sig)
        if (claim.status in ("suspect", "dead") and claim.by in ("", me)) or (claim.status == "left"
                                                                             and claim.by == me != claim.id):
            accusation = msgspec.structs.replace(claim, by=me)
            sig = self.keypair.sign(claim_payload(accusation))
            self.claim_sigs.put(claim_content(accusation), (me, sig))
            return msgspec.structs.replace(accusation, sig=sig)
        best = self.self_claims.get(claim.id)
        if best is not None and best.inc == claim.inc and best.status == claim.status:
            return best
        return None


@hookimpl
def gossipmq_register_strategies(registry) -> None:
    registry.register("security", "none", NoSecurity, NoOptions)
    registry.register("security", "curve", CurveSecurity, CurveOptions,
                      description="CurveZMQ with a ZAP allow-list; optional Ed25519 signed updates")

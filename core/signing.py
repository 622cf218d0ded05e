"""End-to-end authenticity of gossiped state: Ed25519 signatures over entries and membership
claims (pure logic, no I/O; keys come in as bytes).

Why: CURVE authenticates only the hop a message travels. Gossip relays state through
intermediaries, so a relay could otherwise forge "node X wrote k=v" or "node X left". Each update
is therefore signed once where it is born and forwarded with its signature unchanged:

* an entry is signed by its origin (the dot's owner);
* an alive or left claim about X is signed by X itself;
* a suspect or dead claim about X is signed by its accuser (`by`).

What is signed is a canonical encoding (orjson, sorted keys) of every field of the struct except
`sig`, prefixed by a domain tag, so fields added later are covered automatically and an entry
signature can never be replayed as a claim signature. Verification costs ~60 us, so results are
cached: entries by (origin, counter) together with a digest of the signed bytes, claims by the
digest of their content.

Identity keys: every node owns one Ed25519 key pair. Its CURVE key pair is derived from it
(libsodium's Ed25519 -> X25519 conversion), so one secret serves transport and signatures, and a
trust store entry is a single 40-character Z85 "identity key".
"""
from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from zmq.utils import z85

from .addresses import split_seed

if TYPE_CHECKING:   # PyNaCl is imported only where a key is used: nodes without curve never load libsodium
    from nacl.signing import SigningKey
from .clock import encode_hook
from .hashing import blake2b
from .messages import Entry, MemberUpdate

__all__ = ["KEY_TAG", "KeyPair", "LruSet", "claim_payload", "entry_payload", "split_seed", "verify"]

ENTRY_DOMAIN = b"gossipmq/entry/v1\x00"
CLAIM_DOMAIN = b"gossipmq/claim/v1\x00"
#: member tag through which a node announces the identity key it currently serves with
KEY_TAG = "gmq.key"


# ---- keys -----------------------------------------------------------------------------------
def z85_key(raw: bytes) -> str:
    return z85.encode(raw).decode("ascii")


def parse_key(text: str) -> bytes:
    """40-character Z85 -> 32 raw bytes; ValueError on anything else."""
    if not isinstance(text, str) or len(text) != 40:
        raise ValueError("a key is 40 Z85 characters")
    try:
        raw = z85.decode(text.encode("ascii"))
    except Exception as exc:  # z85.decode raises KeyError/ValueError on bad characters
        raise ValueError(f"not a Z85 key: {exc!r}") from None
    if len(raw) != 32:
        raise ValueError("a key is 32 bytes")
    return raw


def curve_public_of(identity: str) -> str:
    """CURVE (X25519) public key, Z85, derived from an Ed25519 identity key."""
    from nacl.signing import VerifyKey
    return z85_key(bytes(VerifyKey(parse_key(identity)).to_curve25519_public_key()))


@dataclass(frozen=True)
class KeyPair:
    """A node's identity: Ed25519 signing key plus the CURVE key pair derived from it."""

    signing: SigningKey

    @classmethod
    def generate(cls) -> KeyPair:
        from nacl.signing import SigningKey
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed_z85: str) -> KeyPair:
        from nacl.signing import SigningKey
        return cls(SigningKey(parse_key(seed_z85)))

    @property
    def identity(self) -> str:
        """Public identity key (Ed25519 verify key, Z85): what trust stores and seeds name."""
        return z85_key(bytes(self.signing.verify_key))

    @property
    def seed(self) -> str:
        return z85_key(bytes(self.signing))

    @property
    def curve_public(self) -> str:
        return z85_key(bytes(self.signing.verify_key.to_curve25519_public_key()))

    @property
    def curve_secret(self) -> str:
        return z85_key(bytes(self.signing.to_curve25519_private_key()))

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.signing.sign(payload).signature).decode("ascii")


# ---- canonical payloads --------------------------------------------------------------------
def _payload(domain: bytes, obj: msgspec.Struct) -> bytes:
    values: list[Any] = [getattr(obj, f) for f in obj.__struct_fields__ if f != "sig"]
    return domain + orjson.dumps(msgspec.to_builtins(values, enc_hook=encode_hook), option=orjson.OPT_SORT_KEYS)


def entry_payload(entry: Entry) -> bytes:
    return _payload(ENTRY_DOMAIN, entry)


def claim_payload(claim: MemberUpdate) -> bytes:
    return _payload(CLAIM_DOMAIN, claim)


def claim_content(claim: MemberUpdate) -> bytes:
    """Digest of what a claim says, without who signed it (kernel re-creates claims from its table
    without signatures; this finds the signature again when it relays them)."""
    values = [getattr(claim, f) for f in claim.__struct_fields__ if f not in ("sig", "by")]
    return blake2b(orjson.dumps(msgspec.to_builtins(values), option=orjson.OPT_SORT_KEYS),
                           digest_size=16).digest()


def claim_signer(claim: MemberUpdate) -> str | None:
    """Who must have signed `claim`: the member itself for alive and for its own leave; the
    accuser for suspect/dead and for a forced leave (`gossipctl force-leave`, by = operator's node)."""
    if claim.status == "alive":
        return claim.id if claim.by in ("", claim.id) else None
    if claim.status == "left" and claim.by in ("", claim.id):
        return claim.id
    return claim.by or None


def verify(identities: Iterable[str], payload: bytes, sig: str) -> bool:
    """Does `sig` (base64 of 64 bytes) sign `payload` under any of `identities`?"""
    try:
        raw = base64.b64decode(sig, validate=True)
    except (ValueError, TypeError):
        return False
    if len(raw) != 64:
        return False
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey
    for identity in identities:
        try:
            VerifyKey(parse_key(identity)).verify(payload, raw)
            return True
        except (BadSignatureError, ValueError):
            continue
    return False


class LruSet:
    """Bounded memo of verified things (so a flood of distinct items cannot grow memory)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

"""The I/O half of the `curve` security plugin: certificate files, the trust store directory,
the ZAP handler and the hooks the ZeroMQ runtime calls (plugins/security.py is the pure half).

Files (zmq.auth's certificate format, so `zmq.auth.load_certificates(dir)` reads them too)::

    NODE.key          public:  metadata node-id, identity (Ed25519 verify key); curve public-key
    NODE.key_secret   secret:  the same plus identity-secret and curve secret-key; mode 0600

Trust store directory: `*.key` files are active keys (may connect, may sign); `retired/*.key`
are old keys of a finished rotation (no connections; signatures on entries made before the
rotation still verify). Removing a file revokes the key: a running node notices within
`reload_ms` (or on `gossipctl keys reload`), refuses it in ZAP, drops what arrives on sessions
authenticated with it, stops dialling it and re-binds its inbox so those sessions are cut.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import zmq
import zmq.auth.asyncio

from gossipmq.core.addresses import split_seed
from gossipmq.core.errors import ConfigError
from gossipmq.core.signing import KeyPair, curve_public_of
from gossipmq.core.timers import Timer
from gossipmq.plugins.security import CurveOptions, CurveSecurity, Trust, TrustedKey

if TYPE_CHECKING:
    from gossipmq.core.node import Node
    from gossipmq.transports.zmq_runtime import ZmqRuntime

log = logging.getLogger("gossipmq.security")

ZAP_DOMAIN = "gossipmq"
RETIRED = "retired"
_BANNER = """#   ****  Generated on {now} by gossipmq  ****
#   ZeroMQ CURVE {kind} Certificate
#   {advice}

"""


# ---- certificate files -------------------------------------------------------------------------
def _write_cert(path: Path, kind: str, metadata: dict[str, str], curve: dict[str, str], mode: int) -> None:
    advice = ("Exchange securely, or check its contents after exchange." if kind == "Public"
              else "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.")
    text = _BANNER.format(now=datetime.datetime.now().isoformat(timespec="seconds"), kind=kind, advice=advice)
    text += "metadata\n" + "".join(f'    {k} = "{v}"\n' for k, v in metadata.items())
    text += "curve\n" + "".join(f'    {k} = "{v}"\n' for k, v in curve.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)  # O_CREAT's mode is masked by umask; the secret must be 0600 whatever it is


def read_cert(path: str | Path) -> dict[str, str]:
    """`key = "value"` pairs of a certificate file (sections flattened; the names do not clash)."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("\"' \t")
    return values


def keygen(out: str | Path, name: str, *, force: bool = False) -> tuple[Path, Path, KeyPair]:
    """Write NAME.key and NAME.key_secret (0600) into `out`; refuses to overwrite without force."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not force and (public.exists() or secret.exists()):
        raise FileExistsError(f"{public} or {secret} already exists (use --force to replace)")
    kp = KeyPair.generate()
    meta = {"node-id": name, "identity": kp.identity}
    _write_cert(public, "Public", meta, {"public-key": kp.curve_public}, 0o644)
    _write_cert(secret, "Secret", {**meta, "identity-secret": kp.seed},
                {"public-key": kp.curve_public, "secret-key": kp.curve_secret}, 0o600)
    return public, secret, kp


def load_secret(path: str | Path) -> tuple[str, KeyPair]:
    """(node id, key pair) from a secret certificate; ValueError says what is wrong."""
    values = read_cert(path)
    seed = values.get("identity-secret")
    if not seed:
        raise ValueError("not a gossipmq secret certificate (no identity-secret; make one with gossipctl keygen)")
    kp = KeyPair.from_seed(seed)
    if values.get("identity") not in (None, kp.identity):
        raise ValueError("identity does not match identity-secret (file damaged?)")
    if values.get("secret-key") not in (None, kp.curve_secret):
        raise ValueError("curve secret-key does not match identity-secret (file damaged?)")
    mode = os.stat(path).st_mode & 0o077
    if mode:
        log.warning("secret key file %s is readable by group/others (mode %o); chmod 600 it", path,
                    os.stat(path).st_mode & 0o777)
    return values.get("node-id", Path(path).name.split(".")[0]), kp


def load_public(path: str | Path, status: str = "active") -> TrustedKey:
    """A trusted key from a public (or secret) certificate; ValueError says what is wrong."""
    values = read_cert(path)
    identity = values.get("identity")
    if not identity:
        raise ValueError("no identity key (certificates must come from gossipctl keygen)")
    curve = curve_public_of(identity)
    if values.get("public-key") not in (None, curve):
        raise ValueError("curve public-key does not derive from the identity key (file damaged?)")
    node_id = values.get("node-id") or Path(path).name.split(".")[0]
    return TrustedKey(node_id, identity, curve, status, str(path), os.stat(path).st_mtime)


def _cert_files(directory: Path) -> list[tuple[Path, str]]:
    files = [(p, "active") for p in sorted(directory.glob("*.key"))]
    retired = directory / RETIRED
    if retired.is_dir():
        files += [(p, "retired") for p in sorted(retired.glob("*.key"))]
    return files


def scan_signature(directory: str | Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap fingerprint of the trust directory (names, sizes, mtimes) to notice changes."""
    out = []
    for path, _ in _cert_files(Path(directory)):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_trust(trust_dir: str | Path | None, inline: dict[str, list[str]] | None = None
               ) -> tuple[Trust, list[str]]:
    """Trust snapshot from a directory and inline keys; problems (skipped files) are returned."""
    keys: list[TrustedKey] = []
    problems: list[str] = []
    if trust_dir:
        directory = Path(trust_dir)
        if not directory.is_dir():
            raise FileNotFoundError(f"trust directory {directory} does not exist")
        for path, status in _cert_files(directory):
            try:
                keys.append(load_public(path, status))
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
    for node_id, identities in (inline or {}).items():
        for i, identity in enumerate(identities):
            try:
                keys.append(TrustedKey(node_id, identity, curve_public_of(identity), "active", "config", float(i)))
            except ValueError as exc:
                problems.append(f"trusted.{node_id}[{i}]: {exc}")
    return Trust(keys), problems


def find_keys(directory: str | Path, selector: str) -> list[Path]:
    """Certificates in a trust dir (active and retired) matching a node id or an identity key."""
    hits = []
    for path, _ in _cert_files(Path(directory)):
        try:
            key = load_public(path)
        except (OSError, ValueError):
            continue
        if selector in (key.node_id, key.identity, key.curve, path.name):
            hits.append(path)
    return hits


def trust_cert(directory: str | Path, cert: str | Path) -> Path:
    """Copy the public part of `cert` into the trust directory (a secret cert is never copied)."""
    key = load_public(cert)
    target_dir = Path(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{key.node_id}-{key.identity[:8].translate(_SAFE)}.key"
    _write_cert(target, "Public", {"node-id": key.node_id, "identity": key.identity},
                {"public-key": key.curve}, 0o644)
    return target


def retire(directory: str | Path, selector: str) -> list[Path]:
    moved = []
    retired = Path(directory) / RETIRED
    for path in find_keys(directory, selector):
        if path.parent.name == RETIRED:
            continue
        retired.mkdir(exist_ok=True)
        target = retired / path.name
        shutil.move(str(path), target)
        moved.append(target)
    return moved


def revoke(directory: str | Path, selector: str) -> list[Path]:
    removed = find_keys(directory, selector)
    for path in removed:
        path.unlink()
    return removed


_SAFE = str.maketrans({c: "_" for c in "./\\:*?&<>()[]{}@%$#!^=+"})


# ---- runtime adapter -------------------------------------------------------------------------------
class CurveTransport:
    """What the ZeroMQ runtime calls when security is `curve` (see ZmqRuntime.security)."""

    def __init__(self, security: CurveSecurity, *, node_id: str, config_path: str | None,
                 seeds: Iterable[str] = ()) -> None:
        if not zmq.has("curve"):
            raise ConfigError("this libzmq has no CURVE support (install pyzmq's wheel)",
                              path=config_path, table="security", key="strategy")
        self.security = security
        self.options: CurveOptions = security.options
        self.node_id = node_id
        self.config_path = config_path
        base = Path(config_path).parent if config_path and not config_path.startswith("<") else Path(".")
        self.key_path = self._resolve(base, self.options.key.replace("{id}", node_id), "key")
        self.trust_dir = self._resolve(base, self.options.trust_dir, "trust_dir") if self.options.trust_dir else None
        keypair = self.load_own(self.key_path)
        trust = self._load_trust()
        security.install(keypair, trust)
        for spec in seeds:
            address, seed_id, identity = split_seed(spec)
            try:
                security.add_seed(address, seed_id, identity)
            except ValueError as exc:
                raise ConfigError(f"seed {spec!r}: {exc}", path=config_path, table="node", key="seeds") from None
        self.runtime: ZmqRuntime | None = None
        self.auth: zmq.auth.asyncio.AsyncioAuthenticator | None = None
        self._signature = scan_signature(self.trust_dir) if self.trust_dir else ()
        self._refused: set[str] = set()
        self._refusals = 0
        self._watch: asyncio.Task[None] | None = None
        self._dealer_keys: dict[str, str] = {}
        self._aliases: dict[str, str] = {}   # resolved address -> the seed address (DNS name) it came from
        self.reloads = 0

    def _resolve(self, base: Path, value: str, key: str) -> Path:
        if not value:
            raise ConfigError("curve security needs the path of this node's secret certificate "
                              "(make one with: gossipctl keygen --out DIR --name NODE)",
                              path=self.config_path, table="security", key=key)
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

    def load_own(self, path: Path) -> KeyPair:
        try:
            node_id, keypair = load_secret(path)
        except FileNotFoundError:
            raise ConfigError(f"secret certificate {path} not found", path=self.config_path,
                              table="security", key="key") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}", path=self.config_path, table="security", key="key") from None
        if node_id != self.node_id:
            raise ConfigError(f"{path} is the key of node {node_id!r}, not of {self.node_id!r}",
                              path=self.config_path, table="security", key="key")
        return keypair

    def _load_trust(self) -> Trust:
        try:
            trust, problems = load_trust(self.trust_dir, self.options.trusted)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc), path=self.config_path, table="security",
                              key="trust_dir" if self.trust_dir else "trusted") from None
        for problem in problems:
            log.warning("trust store: skipped %s", problem)
        return trust

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, runtime: ZmqRuntime) -> None:
        self.runtime = runtime
        self.auth = zmq.auth.asyncio.AsyncioAuthenticator(runtime.actx, log=logging.getLogger("gossipmq.zap"))
        self.auth.start()
        self.auth.configure_curve_callback(ZAP_DOMAIN, self)
        if self.trust_dir and self.options.reload_ms > 0:
            self._watch = asyncio.create_task(self._watch_trust())

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

    # -- ZAP ---------------------------------------------------------------------------------------
    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP credentials provider: admit exactly the active keys of the trust store."""
        curve = key.decode("ascii", "replace")
        if curve in self.security.trust.by_curve:
            return True
        node = self._node()
        if node is not None:
            node.stats["dropped.auth_refused"] += 1
        self._refusals += 1
        if curve not in self._refused and len(self._refused) < 100:   # once per key, for the first 100 keys
            self._refused.add(curve)
            log.warning("refused a connection authenticated with untrusted key %s", curve)
        elif self._refusals % 1000 == 0:                                # then a summary now and then
            log.warning("refused %d connections with untrusted keys so far", self._refusals)
        return False

    def _node(self) -> Node | None:
        return self.runtime.node if self.runtime is not None else None

    # -- sockets -------------------------------------------------------------------------------------
    def configure_inbox(self, sock: zmq.Socket) -> None:
        kp = self.security.keypair
        assert kp is not None
        sock.curve_secretkey = kp.curve_secret.encode()
        sock.curve_publickey = kp.curve_public.encode()
        sock.curve_server = True
        sock.zap_domain = ZAP_DOMAIN.encode()
        sock.setsockopt(zmq.HANDSHAKE_IVL, self.options.handshake_ms)

    def alias(self, address: str, name: str) -> None:
        """`address` was resolved from the seed address `name` (`n1@tcp://host:port`): dial it
        with the key trusted for `name`."""
        if address != name:
            self._aliases[address] = name

    def _dial_key(self, address: str) -> str | None:
        server = self.security.dial_key(address)
        if server is None and address in self._aliases:
            server = self.security.dial_key(self._aliases[address])
        return server

    def configure_dealer(self, sock: zmq.Socket, address: str) -> bool:
        """CURVE client options for a DEALER to `address`; False when no trusted key is known."""
        server = self._dial_key(address)
        if server is None:
            return False
        kp = self.security.keypair
        assert kp is not None
        sock.curve_secretkey = kp.curve_secret.encode()
        sock.curve_publickey = kp.curve_public.encode()
        sock.curve_serverkey = server.encode()
        sock.setsockopt(zmq.HANDSHAKE_IVL, self.options.handshake_ms)
        self._dealer_keys[address] = server
        return True

    def identify(self, frame: zmq.Frame) -> str | None:
        """Member id bound to the CURVE key the frame's connection authenticated with, or None
        when that key has been revoked since the connection was made."""
        user = cast(str, frame.get("User-Id"))   # a metadata property: always str
        return self.security.peer_id(user) if user else None

    def after_input(self) -> None:
        """Close DEALERs whose server key changed (rotation) or is no longer trusted."""
        runtime = self.runtime
        if runtime is None or not self.security.rekey:
            return
        for name in self.security.take_rekey():
            for address in [name, *(a for a, n in self._aliases.items() if n == name)]:
                if self._dealer_keys.get(address) == self._dial_key(address):
                    continue
                runtime.close_peer(address)
                self._dealer_keys.pop(address, None)

    # -- trust reload, rotation ------------------------------------------------------------------------
    async def _watch_trust(self) -> None:
        assert self.trust_dir is not None
        while True:
            await asyncio.sleep(self.options.reload_ms / 1000)
            signature = scan_signature(self.trust_dir)
            if signature != self._signature:
                try:
                    await self.reload()
                except ConfigError as exc:
                    log.error("trust store reload failed, keeping the previous one: %s", exc)

    async def reload(self) -> dict[str, Any]:
        """Re-read the trust store; cut sessions and DEALERs of keys that are gone."""
        before = set(self.security.trust.by_curve)
        if self.trust_dir:
            self._signature = scan_signature(self.trust_dir)
        trust = self._load_trust()
        self.security.set_trust(trust)
        removed = before - set(trust.by_curve)
        added = set(trust.by_curve) - before
        self.reloads += 1
        log.info("trust store reloaded: %d active keys (%d added, %d removed)", len(trust.by_curve),
                 len(added), len(removed))
        if removed and self.runtime is not None:
            self.after_input()
            for address, server in list(self._dealer_keys.items()):
                if server in removed:
                    self.runtime.close_peer(address)
                    self._dealer_keys.pop(address, None)
            await self.runtime.rebind_inbox()   # drops every session; trusted peers reconnect at once
        return {"active": len(trust.by_curve), "added": len(added), "removed": len(removed),
                "keys": [k.identity for k in trust.keys]}

    async def rotate(self, key_path: str) -> dict[str, Any]:
        """Switch to a new key pair without a restart (the new key must already be trusted by the
        peers): new inbox server key, new client key on every DEALER, and an immediate
        announcement of the new key to every member."""
        runtime = self.runtime
        assert runtime is not None
        keypair = self.load_own(Path(key_path).expanduser())
        old = self.security.keypair
        self.security.rotate(keypair)
        for address in list(self._dealer_keys):
            runtime.close_peer(address)
        self._dealer_keys.clear()
        await runtime.rebind_inbox()
        runtime.apply(runtime.node.handle_timer(time.time(), Timer("security", "announce")))
        log.info("rotated identity key %s -> %s", old.identity if old else None, keypair.identity)
        return {"old": old.identity if old else None, "new": keypair.identity}

    async def control(self, req: dict[str, Any]) -> Any:
        cmd = req.get("cmd")
        if cmd == "keys_reload":
            return await self.reload()
        if cmd == "keys_rotate":
            return await self.rotate(str(req["key"]))
        if cmd == "keys_status":
            kp = self.security.keypair
            return {"identity": kp.identity if kp else None, "signing": self.security.signing,
                    "active_keys": len(self.security.trust.by_curve), "reloads": self.reloads,
                    "refused": self._refusals, "dialled": len(self._dealer_keys)}
        raise ValueError(f"unknown control command {cmd!r}")

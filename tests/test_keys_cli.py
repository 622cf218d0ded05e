"""Key files and trust store management: `gossipctl keygen` and `gossipctl keys ...`, and the
config errors curve security reports (file, table, key)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth
from typer.testing import CliRunner

from gossipmq.cli import app
from gossipmq.core.errors import ConfigError
from gossipmq.core.signing import KeyPair, curve_public_of, split_seed
from gossipmq.plugins.security import Trust, TrustedKey
from gossipmq.transports.curve import load_public, load_secret, load_trust

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_keygen_writes_zmq_readable_certs_with_a_private_secret(tmp_path: Path) -> None:
    code, out = invoke("keygen", "--out", str(tmp_path), "--name", "n1")
    assert code == 0, out
    secret = tmp_path / "n1.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    node_id, kp = load_secret(secret)
    assert node_id == "n1" and kp.identity in out
    public, secret_key = zmq.auth.load_certificate(str(secret))   # zmq.auth reads our format
    assert public.decode() == kp.curve_public and secret_key.decode() == kp.curve_secret
    assert zmq.curve_public(secret_key) == public                 # the derived CURVE pair is a real pair
    assert load_public(tmp_path / "n1.key").identity == kp.identity
    code, out = invoke("keygen", "--out", str(tmp_path), "--name", "n1")
    assert code != 0 and "already exists" in out


def test_trust_list_retire_revoke(tmp_path: Path) -> None:
    trust_dir = tmp_path / "trusted"
    for name in ("n1", "n2"):
        assert invoke("keygen", "--out", str(tmp_path), "--name", name)[0] == 0
    code, out = invoke("keys", "trust", str(tmp_path / "n1.key"), str(tmp_path / "n2.key_secret"), "--dir", str(trust_dir))
    assert code == 0, out
    assert not list(trust_dir.glob("*secret*"))                  # only public parts are copied
    trust, problems = load_trust(trust_dir)
    assert sorted(trust.active) == ["n1", "n2"] and not problems
    n2 = trust.active["n2"][0]
    # a Z85 key may start with "-": after "--" it is never taken for an option
    assert invoke("keys", "retire", "--dir", str(trust_dir), "--", n2)[0] == 0
    assert invoke("keys", "retire", "--dir", str(trust_dir), "--", "-" + n2[1:])[0] != 2   # not a usage error
    trust, _ = load_trust(trust_dir)
    assert "n2" not in trust.active and trust.signers["n2"] == [n2]   # retired: signatures only
    code, out = invoke("keys", "list", "--dir", str(trust_dir))
    assert "retired" in out and "active" in out
    assert invoke("keys", "revoke", "n2", "--dir", str(trust_dir))[0] == 0
    trust, _ = load_trust(trust_dir)
    assert "n2" not in trust.signers
    assert invoke("keys", "revoke", "n2", "--dir", str(trust_dir))[0] == 1


def test_damaged_or_foreign_certs_are_skipped_and_named(tmp_path: Path) -> None:
    zmq.auth.create_certificates(str(tmp_path), "plain")         # no identity key: not ours
    (tmp_path / "bad.key").write_text('metadata\n    identity = "short"\n')
    trust, problems = load_trust(tmp_path)
    assert not trust.keys
    assert any("plain.key" in p for p in problems) and any("bad.key" in p for p in problems)


def test_one_key_cannot_be_trusted_for_two_members() -> None:
    kp = KeyPair.generate()
    curve = curve_public_of(kp.identity)
    with pytest.raises(ValueError, match="trusted for both"):
        Trust([TrustedKey("a", kp.identity, curve), TrustedKey("b", kp.identity, curve)])


def test_seed_specs() -> None:
    key = KeyPair.generate().identity
    assert split_seed("tcp://127.0.0.1:7946") == ("tcp://127.0.0.1:7946", None, None)
    assert split_seed(f"tcp://127.0.0.1:7946#{key}") == ("tcp://127.0.0.1:7946", None, key)
    assert split_seed("n1@tcp://h:1") == ("tcp://h:1", "n1", None)
    assert split_seed(f"n1@tcp://h:1#{key}") == ("tcp://h:1", "n1", key)


@pytest.mark.parametrize("security, key", [
    ('strategy = "curve"', "key"),                                   # no key path
    ('strategy = "curve"\nkey = "missing.key_secret"', "key"),       # file not there
    ('strategy = "curve"\nkey = "keys/{id}.key_secret"\ntrust_dir = "nowhere"', "trust_dir"),
    ('strategy = "curve"\nkey = "keys/other.key_secret"', "key"),    # somebody else's key
])
def test_curve_config_errors_name_file_table_and_key(tmp_path: Path, security: str, key: str) -> None:
    from gossipmq.core.config import load_config
    from gossipmq.core.plugins import build_registry, make_plugin_manager
    from gossipmq.core.registry import create_strategies
    from gossipmq.transports.security import transport_for
    assert invoke("keygen", "--out", str(tmp_path / "keys"), "--name", "n1")[0] == 0
    assert invoke("keygen", "--out", str(tmp_path / "keys"), "--name", "other")[0] == 0
    path = tmp_path / "c.toml"
    path.write_text(f"[security]\n{security}\n")
    registry = build_registry(make_plugin_manager(load_entrypoints=False))
    cfg = load_config(path, registry)
    security_strategy = create_strategies(registry, cfg.strategies)["security"]
    with pytest.raises(ConfigError) as info:
        transport_for(security_strategy, node_id="n1", config_path=str(path), seeds=[])
    assert str(path) in str(info.value) and "[security]" in str(info.value) and f"key '{key}'" in str(info.value)


def test_bad_seed_key_is_a_config_error(tmp_path: Path) -> None:
    from gossipmq.core.config import parse_config
    from gossipmq.core.plugins import build_registry, make_plugin_manager
    from gossipmq.core.registry import create_strategies
    from gossipmq.transports.security import transport_for
    assert invoke("keygen", "--out", str(tmp_path / "keys"), "--name", "n1")[0] == 0
    registry = build_registry(make_plugin_manager(load_entrypoints=False))
    cfg = parse_config({"security": {"strategy": "curve", "key": str(tmp_path / "keys/n1.key_secret")}}, registry,
                       str(tmp_path / "c.toml"))
    sec = create_strategies(registry, cfg.strategies)["security"]
    with pytest.raises(ConfigError, match=r"\[node\] key 'seeds'"):
        transport_for(sec, node_id="n1", config_path=str(tmp_path / "c.toml"), seeds=["tcp://h:1#" + "~" * 40])

from __future__ import annotations

from pathlib import Path

import pytest

from gossipmq.core.config import load_config
from gossipmq.core.errors import ConfigError
from tests.helpers import registry

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path, registry())
    assert set(cfg.strategies) == {"peer_selection", "dissemination", "failure_detection",
                                   "conflict_resolution", "security"}


def test_modes_of_the_three_base_configs() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for mode in ("push", "pull", "hybrid"):
        assert load_config(root / f"{mode}.toml", registry()).strategies["dissemination"].name == mode


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    load_config(path, registry())


@pytest.mark.parametrize("text, pieces", [
    ("[dissemination]\nstrategy='push'\nfanot=3\n", ["bad.toml", "[dissemination]", "key 'fanot'", "unknown key",
                                                     "fanout", "interval_ms"]),
    ("[dissemination]\nfanout='three'\n", ["[dissemination]", "key 'fanout'", "Expected `int`, got `str`"]),
    ("[dissemination]\nfanout=0\n", ["[dissemination]", "key 'fanout'", ">= 1"]),
    ("[dissemination]\nstrategy='gossipy'\n", ["[dissemination]", "key 'strategy'", "unknown dissemination strategy",
                                               "'gossipy'", "installed: ", "hybrid", "pull", "push"]),
    ("[node]\nbindd='tcp://x:1'\n", ["[node]", "key 'bindd'", "unknown key"]),
    ("[node]\nseeds='tcp://x:1'\n", ["[node]", "key 'seeds'", "Expected `array`"]),
    ("[nodes]\nid='x'\n", ["[nodes]", "unknown table"]),
    ("[failure_detection]\nsuspect_after_ms=5000\ndead_after_ms=1000\n",
     ["[failure_detection]", "dead_after_ms must be greater than suspect_after_ms"]),
    ("[node\nid=1", ["bad.toml", "not valid TOML"]),
    # ids peers could not use (docs/security.md C31): too long for [limits] max_id_bytes less the
    # life tag, or with spaces / control characters
    ("[node]\nid='" + "n" * 250 + "'\n", ["[node]", "key 'id'", "250 bytes; at most 240", "peers would drop"]),
    ("[node]\nid='n 1'\n", ["[node]", "key 'id'", "may not contain spaces or control characters"]),
    ("[node]\ncluster=\"a\\tb\"\n", ["[node]", "key 'cluster'", "may not contain spaces or control characters"]),
    # HyParView swaps (core/hyparview.py): a rate >= 0 (0 = off), a memory of at least one tick
    ("[membership]\nswap_rate=-1\n", ["[membership]", "key 'swap_rate'", ">= 0.0"]),
    ("[membership]\nswap_memory=0\n", ["[membership]", "key 'swap_memory'", ">= 1"]),
    ("[membership]\nswap_rat=4\n", ["[membership]", "key 'swap_rat'", "unknown key", "swap_memory", "swap_rate"]),
    # pull_peers shapes push-pull only: on push or pull it is a key that would do nothing
    ("[dissemination]\nstrategy='push'\npull_peers=1\n", ["[dissemination]", "key 'pull_peers'", "unknown key"]),
    ("[dissemination]\nstrategy='hybrid'\npull_peers=-1\n", ["[dissemination]", "key 'pull_peers'", ">= 0"]),
])
def test_config_errors_name_file_table_and_key(tmp_path: Path, text: str, pieces: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    for piece in pieces:
        assert piece in str(info.value), f"{piece!r} missing from: {info.value}"


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load_config(tmp_path / "nope.toml", registry())

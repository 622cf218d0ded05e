from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from gossipmq.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_config_check_accepts_a_shipped_config() -> None:
    result = runner.invoke(app, ["config", "check", str(ROOT / "configs" / "pull.toml"), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["strategies"]["dissemination"] == "pull"


def test_config_check_names_file_table_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text("[failure_detection]\nstrategy = 'heartbeet'\n")
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "typo.toml [failure_detection] key 'strategy': unknown failure_detection strategy 'heartbeet'" \
        in result.output
    assert "installed: " in result.output and "heartbeat" in result.output


def test_run_refuses_a_bad_config_before_binding_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gossip]\nmax_message_bytes = 'lots'\n")
    result = runner.invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2 and "[gossip] key 'max_message_bytes'" in result.output


def test_client_without_a_target_explains_how_to_name_one() -> None:
    result = runner.invoke(app, ["status"], env={"GOSSIPMQ_CONTROL": ""})
    assert result.exit_code == 2 and "--control ENDPOINT" in result.output


def test_the_lean_run_path_and_the_typer_command_take_the_same_flags() -> None:
    """`gossipctl run` parses with argparse (no CLI framework in a node); `run --help` shows the
    typer command. Both come from one list of flags and environment variables."""
    import typer.main

    from gossipmq.cli.run import RUN_OPTIONS
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    typer_flags = {opt: (param.envvar or "") for param in command.params for opt in param.opts if opt.startswith("--")}
    typer_flags.pop("--help", None)
    lean = {flag: env for flag, _, env, _ in RUN_OPTIONS}
    assert set(typer_flags) == set(lean)
    assert all(typer_flags[f] in (lean[f], "") for f in lean)   # --seed reads GOSSIPMQ_SEEDS itself (a list)

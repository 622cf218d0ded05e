"""What every `gossipctl` command shares: option types, config loading, talking to a running
node, and the one way a command fails (one line on stderr, exit code 2, never a traceback).

With `--json`, a failure also prints ``{"error": "..."}`` on stdout, so a script that parses
stdout always gets a document.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import orjson
import typer

from gossipmq.core.errors import ConfigError, GossipError

if TYPE_CHECKING:
    import pluggy

    from gossipmq.core.config import Config
    from gossipmq.core.registry import StrategyRegistry

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", envvar="GOSSIPMQ_CONFIG",
                                                   help="TOML config of the node.")]
ControlOpt = Annotated[str | None, typer.Option("--control", envvar="GOSSIPMQ_CONTROL",
                                                   help="Control endpoint of a running node.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="GOSSIPMQ_CONTROL_TOKEN",
                                                 help="Access token of a tcp control endpoint.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (stable shape).")]

#: set by commands that were given --json, so `fail` prints a JSON error document too
_json_errors = False


def want_json(flag: bool) -> bool:
    """Record that this command speaks JSON (errors included); returns `flag`."""
    global _json_errors
    _json_errors = flag
    return flag


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command: one line naming the problem, no traceback."""
    if _json_errors:
        typer.echo(orjson.dumps({"error": message}).decode())
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def registry() -> tuple[pluggy.PluginManager, StrategyRegistry]:
    from gossipmq.core.plugins import build_registry, make_plugin_manager
    try:
        pm = make_plugin_manager()
        return pm, build_registry(pm)
    except GossipError as exc:
        fail(str(exc))


def load(config: Path | None) -> tuple[pluggy.PluginManager, StrategyRegistry, Config]:
    """(plugin manager, registry, config) from a file, or the defaults without one."""
    from gossipmq.core.config import load_config, parse_config
    pm, reg = registry()
    try:
        cfg = load_config(config, reg) if config is not None else parse_config({}, reg, "<defaults>")
    except ConfigError as exc:
        fail(str(exc))
    return pm, reg, cfg


def endpoint(config: Path | None, control: str | None) -> tuple[str, str | None]:
    """(control endpoint, access token from the config) of the node a client command talks to."""
    if control:
        token = None
        if config is not None:
            token = load(config)[2].node.control_token or None
        return control, token
    if config is None:
        fail("say which node: --control ENDPOINT, GOSSIPMQ_CONTROL, or --config FILE")
    cfg = load(config)[2]
    return cfg.identity().control, cfg.node.control_token or None


def call(config: Path | None, control: str | None, payload: dict[str, Any], token: str | None = None,
         timeout: float = 5.0) -> Any:
    """One request to a running node; a failure ends the command with one line."""
    from gossipmq.transports.control import ControlError, request
    address, configured = endpoint(config, control)
    try:
        return request(address, payload, timeout=timeout, token=token or configured)
    except ControlError as exc:
        fail(str(exc))


def console() -> Any:
    """A rich console that does not squeeze tables to 80 columns when piped."""
    from rich.console import Console
    out = Console()
    return out if out.is_terminal else Console(width=200)


def print_json(obj: Any) -> None:
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode())

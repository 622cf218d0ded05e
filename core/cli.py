"""`gossipctl`: run a node, talk to a running node, start a local demo cluster.

Every command is a plain sync function (typer does not await `async def` commands); the
node itself runs under `asyncio.run`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from .errors import ConfigError, GossipError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="gossipmq: gossip-based, eventually consistent clusters over ZeroMQ.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect and validate configuration files.")
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config of the node.")]
ControlOpt = Annotated[Optional[str], typer.Option("--control", envvar="GOSSIPMQ_CONTROL",
                                                   help="Control endpoint of a running node.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (stable shape).")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _registry():  # type: ignore[no-untyped-def]
    from .plugins import build_registry, make_plugin_manager
    pm = make_plugin_manager()
    return pm, build_registry(pm)


def _load(config: Path | None):  # type: ignore[no-untyped-def]
    from .config import load_config, parse_config
    pm, registry = _registry()
    try:
        cfg = load_config(config, registry) if config is not None else parse_config({}, registry, "<defaults>")
    except ConfigError as exc:
        _fail(str(exc))
    return pm, registry, cfg


def _endpoint(config: Path | None, control: str | None) -> str:
    if control:
        return control
    if config is None:
        _fail("say which node: --control ENDPOINT, GOSSIPMQ_CONTROL, or --config FILE")
    from .bootstrap import resolve_identity
    _, _, cfg = _load(config)
    return resolve_identity(cfg)[2]


def _call(config: Path | None, control: str | None, payload: dict[str, Any]) -> Any:
    from gossipmq.transports.control import ControlError, request
    try:
        return request(_endpoint(config, control), payload)
    except ControlError as exc:
        _fail(str(exc))


def _console():  # type: ignore[no-untyped-def]
    """A rich console that does not squeeze tables to 80 columns when piped."""
    from rich.console import Console
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _print_json(obj: Any) -> None:
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode())


# ---- running a node ---------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOpt = None,
    node_id: Annotated[Optional[str], typer.Option("--node-id", help="Member id (overrides [node] id).")] = None,
    bind: Annotated[Optional[str], typer.Option(help="Inbox endpoint to bind, e.g. tcp://0.0.0.0:7946.")] = None,
    advertise: Annotated[Optional[str], typer.Option(help="Address peers dial, e.g. tcp://n1:7946.")] = None,
    seed: Annotated[Optional[list[str]], typer.Option("--seed", help="Seed address (repeatable).")] = None,
    control: Annotated[Optional[str], typer.Option(help="Control endpoint to bind.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run one node in the foreground until SIGINT/SIGTERM (it leaves gracefully first)."""
    from gossipmq.transports.zmq_runtime import ZmqRuntime

    from .bootstrap import build_node, resolve_identity
    pm, registry, cfg = _load(config)
    cfg = cfg.with_node(id=node_id, bind=bind, advertise=advertise, seeds=seed or [], control=control)
    node_id_, _, control_ = resolve_identity(cfg)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {node_id_}: %(message)s")
    node = build_node(cfg, registry, incarnation=int(time.time() * 1000))
    security = node.security
    runtime = ZmqRuntime(node, bind=cfg.node.bind, control=control_, pm=pm,
                         socket_options={r: security.socket_options(r) for r in ("inbox", "outbox")})
    try:
        asyncio.run(runtime.run())
    except GossipError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc}")


# ---- client commands --------------------------------------------------------------------------
@app.command()
def put(key: str, value: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
        value_json: Annotated[bool, typer.Option("--value-json", help="Parse VALUE as JSON.")] = False) -> None:
    """Write KEY = VALUE on the node; it spreads from there."""
    parsed: Any = value
    if value_json:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            _fail(f"VALUE is not JSON: {exc}")
    result = _call(config, control, {"cmd": "put", "key": key, "value": parsed})
    _print_json(result) if json else typer.echo(f"{key} written ({result['origin']}:{result['counter']})")


@app.command()
def get(key: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Read KEY from the node's replica (exit code 1 when absent)."""
    result = _call(config, control, {"cmd": "get", "key": key})
    if result is None:
        if json:
            _print_json({"key": key, "error": "not found"})
        typer.echo(f"key {key!r} not found", err=True)
        raise typer.Exit(1)
    if json:
        _print_json(result)
    else:
        value = result["value"]
        typer.echo(value if isinstance(value, str) else orjson.dumps(value).decode())


@app.command()
def delete(key: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Delete KEY (a tombstone spreads). Exit code 1 when there was nothing to delete."""
    result = _call(config, control, {"cmd": "delete", "key": key})
    if json:
        _print_json(result)
    elif result["deleted"]:
        typer.echo(f"{key} deleted")
    if not result["deleted"]:
        typer.echo(f"key {key!r} not found", err=True)
        raise typer.Exit(1)


@app.command()
def members(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """List the members this node knows, with status and incarnation."""
    result = _call(config, control, {"cmd": "members"})
    if json:
        _print_json(result)
        return
    from rich.table import Table
    table = Table("id", "address", "status", "incarnation", "heartbeat", "tags")
    for m in result:
        tags = ",".join(f"{k}={v}" for k, v in m["tags"].items())
        table.add_row(m["id"] + (" (self)" if m.get("self") else ""), m["address"], m["status"],
                      str(m["incarnation"]), str(m["heartbeat"]), tags)
    _console().print(table)


@app.command()
def status(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Node id, members by state, keys, store checksum, convergence and traffic counters."""
    result = _call(config, control, {"cmd": "status"})
    if json:
        _print_json(result)
        return
    m = result["members"]
    typer.echo(f"node       {result['node_id']} ({result['address']}, incarnation {result['incarnation']})")
    typer.echo(f"members    {m['alive']} alive, {m['suspect']} suspect, {m['dead']} dead, {m['left']} left")
    typer.echo(f"keys       {result['keys']} (checksum {result['checksum']})")
    typer.echo(f"converged  {'yes' if result['converged'] else 'no'}")
    typer.echo(f"messages   in {result['messages_in']}, out {result['messages_out']}; "
               f"bytes in {result['bytes_in']}, out {result['bytes_out']}")
    if result["dropped"]:
        typer.echo("dropped    " + ", ".join(f"{k}={v}" for k, v in sorted(result["dropped"].items())))


@app.command()
def leave(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Ask the node to leave the cluster gracefully and exit."""
    result = _call(config, control, {"cmd": "leave"})
    _print_json(result) if json else typer.echo(f"{result['node_id']} is leaving")


# ---- plugins and config ------------------------------------------------------------------------
@app.command()
def plugins(json: JsonOpt = False) -> None:
    """List every installed strategy by concern, with the package it came from."""
    try:
        _, registry = _registry()
    except GossipError as exc:
        _fail(str(exc))
    rows = [{"concern": s.concern, "name": s.name, "package": s.package, "description": s.description,
             "options": sorted(s.options.__struct_fields__)} for s in registry.all()]
    if json:
        _print_json(rows)
        return
    from rich.table import Table
    table = Table("concern", "strategy", "package", "options", "description")
    for r in rows:
        table.add_row(r["concern"], r["name"], r["package"], ", ".join(r["options"]), r["description"])
    _console().print(table)


@config_app.command("check")
def config_check(path: Path, json: JsonOpt = False) -> None:
    """Validate a config file without starting a node (exit code 2 on the first error)."""
    from .bootstrap import resolve_identity
    _, _, cfg = _load(path)
    node_id, advertise, control = resolve_identity(cfg)
    summary = {"file": str(path), "node_id": node_id, "advertise": advertise, "control": control,
               "strategies": {c: s.name for c, s in cfg.strategies.items()}}
    if json:
        _print_json(summary)
    else:
        chosen = ", ".join(f"{c}={s}" for c, s in summary["strategies"].items())
        typer.echo(f"{path}: ok ({chosen})")


# ---- the local demo cluster -----------------------------------------------------------------------
@app.command()
def cluster(
    config: ConfigOpt = Path("configs/hybrid.toml"),
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, max=64, help="Node processes to start.")] = 5,
    duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    base_port: Annotated[int, typer.Option(help="First TCP port on 127.0.0.1.")] = 7946,
    writes: Annotated[float, typer.Option(help="Demo writes per second on random nodes (0 = none).")] = 0.5,
    log_dir: Annotated[Optional[Path], typer.Option(help="Where node logs go (default: a temp dir).")] = None,
    json: JsonOpt = False,
) -> None:
    """Start N real node processes on loopback from one config, show a live table, stop them cleanly."""
    from .demo import run_cluster
    _load(config)  # fail fast on a bad config, before starting anything
    code = run_cluster(config, nodes=nodes, duration=duration, base_port=base_port, writes_per_s=writes,
                       log_dir=log_dir, as_json=json)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

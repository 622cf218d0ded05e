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

from gossipmq.core.errors import ConfigError, GossipError

from .common import ConfigOpt, ControlOpt, JsonOpt, call, console, endpoint, fail, load, print_json, registry
from .keys import keygen as _keygen
from .keys import keys_app
from .simulate import simulate as _simulate

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="gossipmq: gossip-based, eventually consistent clusters over ZeroMQ.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect and validate configuration files.")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.command("keygen")(_keygen)
app.command("simulate")(_simulate)


# ---- running a node ---------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOpt = None,
    node_id: Annotated[Optional[str], typer.Option("--node-id", envvar="GOSSIPMQ_NODE_ID",
                                                   help="Member id (overrides \\[node] id).")] = None,
    bind: Annotated[Optional[str], typer.Option(envvar="GOSSIPMQ_BIND",
                                                help="Inbox endpoint to bind, e.g. tcp://0.0.0.0:7946.")] = None,
    advertise: Annotated[Optional[str], typer.Option(envvar="GOSSIPMQ_ADVERTISE",
                                                     help="Address peers dial, e.g. tcp://n1:7946.")] = None,
    seed: Annotated[Optional[list[str]], typer.Option("--seed", help="Seed address (repeatable; GOSSIPMQ_SEEDS "
                                                                     "takes a comma-separated list).")] = None,
    control: Annotated[Optional[str], typer.Option(envvar="GOSSIPMQ_CONTROL", help="Control endpoint to bind.")] = None,
    log_level: Annotated[str, typer.Option(envvar="GOSSIPMQ_LOG_LEVEL", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run one node in the foreground until SIGINT/SIGTERM (it leaves gracefully first)."""
    from gossipmq.transports.zmq_runtime import ZmqRuntime

    from gossipmq.core.node import Node
    pm, registry, cfg = load(config)
    if not seed and os.environ.get("GOSSIPMQ_SEEDS"):
        seed = [s.strip() for s in os.environ["GOSSIPMQ_SEEDS"].split(",") if s.strip()]
    cfg = cfg.with_node(id=node_id, bind=bind, advertise=advertise, seeds=seed or [], control=control)
    from gossipmq.transports.chaos import Chaos
    from gossipmq.transports.event_scripts import EventScripts
    from gossipmq.transports.seeds import SeedResolver, normalize_seed
    cfg = cfg.with_node(seeds=[normalize_seed(s) for s in cfg.node.seeds])
    node_id_, advertise_, control_ = cfg.identity()
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {node_id_}: %(message)s")
    try:
        chaos = Chaos.from_config(cfg.chaos, os.environ)
    except ConfigError as exc:
        fail(str(exc))
    if chaos is not None:
        logging.getLogger("gossipmq").warning("chaos injection on: %s", chaos.describe())
    scripts = EventScripts.from_config(cfg.hooks)
    if scripts is not None:
        pm.register(scripts, name="gossipmq.event_scripts")
    node = Node.from_config(cfg, registry, incarnation=int(time.time() * 1000))
    security = node.security
    from gossipmq.transports.security import transport_for
    try:
        transport_security = transport_for(security, node_id=node_id_, config_path=cfg.path, seeds=cfg.node.seeds)
    except ConfigError as exc:
        fail(str(exc))
    from gossipmq.transports.storage import StorageError, attach
    try:
        storage = attach(node, cfg.storage)   # [storage] backend = "sqlite": restore the replica
    except StorageError as exc:
        fail(str(exc))
    from gossipmq.core.signing import split_seed
    runtime = ZmqRuntime(node, bind=cfg.node.bind, control=control_, pm=pm, storage=storage,
                         socket_options={r: security.socket_options(r) for r in ("inbox", "outbox")},
                         chaos=chaos, seeds=SeedResolver([split_seed(s)[0] for s in cfg.node.seeds],
                                                         own=(advertise_, cfg.node.bind)),
                         security=transport_security)
    try:
        asyncio.run(runtime.run())
    except GossipError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc}")


# ---- client commands --------------------------------------------------------------------------
ContextOpt = Annotated[Optional[str], typer.Option(
    "--context", help="Causal context token from `get` (multi-value/mvreg keys): replace exactly what was read.")]
FieldOpt = Annotated[Optional[str], typer.Option("--field", help="Field of an OR-Map key.")]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


@app.command()
def put(key: str, value: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
        value_json: Annotated[bool, typer.Option("--value-json", help="Parse VALUE as JSON.")] = False,
        context: ContextOpt = None, field: FieldOpt = None) -> None:
    """Write KEY = VALUE on the node; it spreads from there."""
    parsed: Any = value
    if value_json:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            fail(f"VALUE is not JSON: {exc}")
    result = call(config, control, {"cmd": "put", "key": key, "value": parsed, "context": context, "field": field})
    print_json(result) if json else typer.echo(f"{key} written ({result['origin']}:{result['counter']})")


@app.command()
def get(key: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every value with its origin, the "
                                                                      "causal context and the versions kept.")] = False
        ) -> None:
    """Read KEY from the node's replica (exit code 1 when absent). Multi-value keys print one
    sibling per line; pass the `context` of `--json` back to `put --context` to resolve them."""
    result = call(config, control, {"cmd": "get", "key": key, "verbose": verbose})
    if result is None:
        if json:
            print_json({"key": key, "error": "not found"})
        typer.echo(f"key {key!r} not found", err=True)
        raise typer.Exit(1)
    if json:
        print_json(result)
    elif verbose:
        kind = result["kind"]
        typer.echo(f"key       {key} ({kind}{', deleted' if result['deleted'] else ''})")
        typer.echo(f"value     {_show(result['value'])}")
        for v in result["values"]:   # each sibling / member tag / counter slot with its origin
            shown = " ".join(f"{k}={x}" for k, x in v.items() if k != "value")
            typer.echo(f"  from    {_show(v['value']) + '  ' if 'value' in v else ''}{shown}")
        typer.echo(f"context   {orjson.dumps(result['causal_context']).decode()}")
        typer.echo(f"token     {result['context']}")
        for e in result["versions"]:
            typer.echo(f"version   {e['origin']}:{e['counter']} hlc={e['hlc']}{' deleted' if e['deleted'] else ''} "
                       f"vv={orjson.dumps(e['vv']).decode()}")
    elif isinstance(result["value"], list) and result.get("siblings", 0) > 1:
        for value in result["value"]:
            typer.echo(_show(value))
    else:
        typer.echo(_show(result["value"]))


@app.command()
def delete(key: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
           context: ContextOpt = None, field: FieldOpt = None) -> None:
    """Delete KEY (a tombstone spreads). Exit code 1 when there was nothing to delete."""
    result = call(config, control, {"cmd": "delete", "key": key, "context": context, "field": field})
    if json:
        print_json(result)
    elif result["deleted"]:
        typer.echo(f"{key} deleted")
    if not result["deleted"]:
        typer.echo(f"key {key!r} not found", err=True)
        raise typer.Exit(1)


@app.command()
def incr(key: str, n: Annotated[int, typer.Argument(help="Amount; negative needs `--`: incr KEY -- -3.")] = 1,
         config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False, field: FieldOpt = None) -> None:
    """Add N (default 1) to the counter KEY (crdt gcounter/pncounter, or an ormap field)."""
    result = call(config, control, {"cmd": "incr", "key": key, "value": n, "field": field})
    print_json(result) if json else typer.echo(_show(result["value"]))


@app.command()
def sadd(key: str, member: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
         field: FieldOpt = None) -> None:
    """Add MEMBER to the set KEY (crdt orset, add-wins; or an ormap field)."""
    result = call(config, control, {"cmd": "sadd", "key": key, "member": member, "field": field})
    print_json(result) if json else typer.echo(f"{member} added to {key}")


@app.command()
def srem(key: str, member: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
         field: FieldOpt = None) -> None:
    """Remove MEMBER from the set KEY (the adds this replica has seen; concurrent adds win)."""
    result = call(config, control, {"cmd": "srem", "key": key, "member": member, "field": field})
    print_json(result) if json else typer.echo(f"{member} removed from {key}")


@app.command()
def smembers(key: str, config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """List the members of the set KEY, one per line (exit code 1 when absent or empty)."""
    result = call(config, control, {"cmd": "smembers", "key": key})
    members_ = result["value"] if result is not None else []
    if json:
        print_json({"key": key, "members": members_})
    else:
        for m in members_:
            typer.echo(m)
    if not members_:
        raise typer.Exit(1)


@app.command()
def members(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
            watch: Annotated[bool, typer.Option("--watch", "-w", help="Then print membership changes as they "
                                                                      "happen, until Ctrl-C.")] = False) -> None:
    """List the members this node knows, with status, incarnation and tags."""
    if watch:  # the event count first, so no change between the view and the stream is lost
        last = call(config, control, {"cmd": "events", "after": 1 << 62})["last"]
    result = call(config, control, {"cmd": "members"})
    if watch:
        from .watch import watch as follow
        if json:  # first line: the current view; then one event per line
            typer.echo(orjson.dumps({"members": result}, default=str).decode())
        else:
            typer.echo(f"{len(result)} members ({', '.join(m['id'] + ':' + m['status'] for m in result)}); "
                       f"watching for changes (Ctrl-C stops)")
        raise typer.Exit(follow(endpoint(config, control)[0], typer.echo, after=last, as_json=json))
    if json:
        print_json(result)
        return
    from rich.table import Table
    table = Table("id", "address", "status", "incarnation", "heartbeat", "tags")
    for m in result:
        tags = ",".join(f"{k}={v}" for k, v in m["tags"].items())
        table.add_row(m["id"] + (" (self)" if m.get("self") else ""), m["address"], m["status"],
                      str(m["incarnation"]), str(m["heartbeat"]), tags)
    console().print(table)


@app.command()
def status(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False,
           wait_converged: Annotated[bool, typer.Option(
               "--wait-converged", help="Block until every live member reports this node's Merkle root; "
                                        "exit code 0 when it does, 1 on --timeout.")] = False,
           timeout: Annotated[float, typer.Option(help="Seconds --wait-converged waits at most.", min=0)] = 30.0,
           ) -> None:
    """Node id, members by state, keys, Merkle root, convergence (since when), propagation lag
    and traffic counters."""
    result = call(config, control, {"cmd": "status"})
    if wait_converged:
        deadline = time.monotonic() + timeout
        while not result["converged"] and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            result = call(config, control, {"cmd": "status"})
    if json:
        print_json(result)
        if wait_converged and not result["converged"]:
            raise typer.Exit(1)
        return
    m = result["members"]
    typer.echo(f"node       {result['node_id']} ({result['address']}, incarnation {result['incarnation']})")
    typer.echo(f"members    {m['alive']} alive, {m['suspect']} suspect, {m['dead']} dead, {m['left']} left")
    typer.echo(f"keys       {result['keys']} (checksum {result['checksum']})")
    conflicts = {k: v for k, v in (result.get("conflicts") or {}).items() if v}
    if conflicts or result.get("storage", "memory") != "memory":   # docs/conflict-resolution.md
        typer.echo(f"storage    {result.get('storage', 'memory')}"
                   + "".join(f", {k}={v}" for k, v in sorted(conflicts.items())))
    since = result.get("converged_since")
    if result["converged"] and since is not None:
        typer.echo(f"converged  yes, for {max(0.0, time.time() - since):.1f} s "
                   f"(since {time.strftime('%H:%M:%S', time.localtime(since))})")
    else:
        typer.echo(f"converged  {'yes' if result['converged'] else 'no'}")
    if result.get("lag_samples"):
        typer.echo(f"lag        p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms "
                   f"over the last {result['lag_samples']} updates")
    typer.echo(f"messages   in {result['messages_in']}, out {result['messages_out']}; "
               f"bytes in {result['bytes_in']}, out {result['bytes_out']}")
    if result["dropped"]:
        typer.echo("dropped    " + ", ".join(f"{k}={v}" for k, v in sorted(result["dropped"].items())))
    if wait_converged and not result["converged"]:
        typer.echo(f"not converged within {timeout:g} s", err=True)
        raise typer.Exit(1)


@app.command()
def leave(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Ask the node to leave the cluster gracefully and exit."""
    result = call(config, control, {"cmd": "leave"})
    print_json(result) if json else typer.echo(f"{result['node_id']} is leaving")


# ---- plugins and config ------------------------------------------------------------------------
@app.command()
def plugins(json: JsonOpt = False) -> None:
    """List every installed strategy by concern, with the package it came from."""
    _, installed = registry()
    from gossipmq.core.plugins import LOAD_FAILURES
    for name, reason in LOAD_FAILURES.items():
        typer.echo(f"warning: plugin entry point {name!r} failed to load and was skipped: {reason}", err=True)
    rows = [{"concern": s.concern, "name": s.name, "package": s.package, "description": s.description,
             "options": sorted(s.options.__struct_fields__)} for s in installed.all()]
    if json:
        print_json(rows)
        return
    from rich.table import Table
    table = Table("concern", "strategy", "package", "options", "description")
    for r in rows:
        table.add_row(r["concern"], r["name"], r["package"], ", ".join(r["options"]), r["description"])
    console().print(table)


@config_app.command("check")
def config_check(path: Path, json: JsonOpt = False) -> None:
    """Validate a config file without starting a node (exit code 2 on the first error)."""
    _, _, cfg = load(path)
    node_id, advertise, control = cfg.identity()
    summary = {"file": str(path), "node_id": node_id, "advertise": advertise, "control": control,
               "strategies": {c: s.name for c, s in cfg.strategies.items()}}
    if json:
        print_json(summary)
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
    load(config)  # fail fast on a bad config, before starting anything
    code = run_cluster(config, nodes=nodes, duration=duration, base_port=base_port, writes_per_s=writes,
                       log_dir=log_dir, as_json=json)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

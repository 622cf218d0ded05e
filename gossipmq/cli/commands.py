"""`gossipctl`: run a node, talk to a running node, start a local demo cluster.

Every command is a plain sync function (typer does not await `async def` commands); the
node itself runs under `asyncio.run`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from gossipmq._version import __version__

from .common import (
    ConfigOpt,
    ControlOpt,
    JsonOpt,
    TokenOpt,
    call,
    console,
    endpoint,
    fail,
    load,
    print_json,
    registry,
    want_json,
)
from .keys import keygen as _keygen
from .keys import keys_app
from .simulate import simulate as _simulate

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="gossipmq: gossip-based, eventually consistent clusters over ZeroMQ.")
config_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect and validate configuration files.")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.command("keygen")(_keygen)
app.command("simulate")(_simulate)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gossipctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version_: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                  help="Print the version and exit.")] = False) -> None:
    """gossipmq: gossip-based, eventually consistent clusters over ZeroMQ."""


# ---- running a node ---------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOpt = None,
    node_id: Annotated[str | None, typer.Option("--node-id", envvar="GOSSIPMQ_NODE_ID",
                                                   help="Member id (overrides [node] id).")] = None,
    bind: Annotated[str | None, typer.Option(envvar="GOSSIPMQ_BIND",
                                                help="Inbox endpoint to bind, e.g. tcp://0.0.0.0:7946.")] = None,
    advertise: Annotated[str | None, typer.Option(envvar="GOSSIPMQ_ADVERTISE",
                                                     help="Address peers dial, e.g. tcp://n1:7946.")] = None,
    seed: Annotated[list[str] | None, typer.Option("--seed", help="Seed address (repeatable; GOSSIPMQ_SEEDS "
                                                                     "takes a comma-separated list).")] = None,
    control: Annotated[str | None, typer.Option(envvar="GOSSIPMQ_CONTROL", help="Control endpoint to bind.")] = None,
    cluster_name: Annotated[str | None, typer.Option("--cluster", envvar="GOSSIPMQ_CLUSTER",
                                                        help="Cluster name: nodes of other clusters are ignored.")
                            ] = None,
    token: TokenOpt = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", envvar="GOSSIPMQ_METRICS", metavar="HOST:PORT",
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (overrides [metrics] listen; needs "
             "pip install 'gossipmq[metrics]').")] = None,
    log_level: Annotated[str, typer.Option(envvar="GOSSIPMQ_LOG_LEVEL",
                                           help="debug, info, warning or error.")] = "info",
    log_format: Annotated[str, typer.Option(envvar="GOSSIPMQ_LOG_FORMAT", help="text or json.")] = "text",
) -> None:
    """Run one node in the foreground until SIGINT/SIGTERM or `gossipctl leave` (it leaves
    gracefully first). Every option also reads an environment variable (GOSSIPMQ_*); any config
    key can be set with GOSSIPMQ_<TABLE>__<KEY>."""
    from .run import RunFailed, serve
    try:
        serve(config=str(config) if config is not None else None, node_id=node_id, bind=bind, advertise=advertise,
              seed=seed, control=control, cluster_name=cluster_name, token=token, metrics=metrics,
              log_level=log_level, log_format=log_format)
    except RunFailed as exc:
        if exc.code == 130:
            raise typer.Exit(130) from None
        fail(exc.message, code=exc.code)


# ---- client commands --------------------------------------------------------------------------
ContextOpt = Annotated[str | None, typer.Option(
    "--context", help="Causal context token from `get` (multi-value/mvreg keys): replace exactly what was read.")]
FieldOpt = Annotated[str | None, typer.Option("--field", help="Field of an OR-Map key.")]
AckOpt = Annotated[str, typer.Option(
    "--ack", help="Return once this many copies hold the write: local (default), majority, all, or a number "
                  "(this node included).")]
AckTimeoutOpt = Annotated[float, typer.Option("--ack-timeout", min=0.0, help="Seconds --ack waits at most.")]


class Client:
    """How a client command reaches its node (flags, environment or config)."""

    def __init__(self, config: Path | None, control: str | None, token: str | None, json: bool) -> None:
        want_json(json)
        self.config, self.control, self.token, self.json = config, control, token, json

    def __call__(self, cmd: str, wait: float = 5.0, **fields: Any) -> Any:
        """One request; `wait`: seconds to wait for the answer."""
        payload = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        return call(self.config, self.control, payload, token=self.token, timeout=wait)

    def endpoint(self) -> tuple[str, str | None]:
        address, configured = endpoint(self.config, self.control)
        return address, self.token or configured


def _show(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _ack(ack: str) -> str | int:
    if ack in ("local", "majority", "all"):
        return ack
    if ack.isdigit() and int(ack) >= 1:
        return int(ack)
    fail(f"--ack {ack!r}: use local, majority, all or a number of copies (>= 1)")


def _acked(result: dict[str, Any]) -> str:
    return f", {result['acked']} copies confirmed" if "acked" in result else ""


@app.command()
def put(key: str, value: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
        json: JsonOpt = False,
        value_json: Annotated[bool, typer.Option("--value-json", help="Parse VALUE as JSON.")] = False,
        context: ContextOpt = None, field: FieldOpt = None, ack: AckOpt = "local", ack_timeout: AckTimeoutOpt = 5.0,
        ) -> None:
    """Write KEY = VALUE on the node; it spreads from there."""
    client = Client(config, control, token, json)
    parsed: Any = value
    if value_json:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            fail(f"VALUE is not JSON: {exc}")
    result = client("put", wait=ack_timeout + 5, key=key, value=parsed, context=context, field=field,
                    ack=_ack(ack))
    print_json(result) if json else typer.echo(f"{key} written ({result['origin']}:{result['counter']}"
                                               f"{_acked(result)})")


def _load_items(source: str) -> list[tuple[str, Any]]:
    """KEY/VALUE pairs from a JSON object ({"key": value, ...}) or JSON lines ({"key": k,
    "value": v} per line); `-` reads standard input."""
    import sys
    try:
        text = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror}")
    try:
        doc = orjson.loads(text)   # one JSON document: an object of key -> value
    except orjson.JSONDecodeError:
        doc = None                 # else JSON lines
    if doc is not None:
        if not isinstance(doc, dict):
            fail(f'{source}: expected a JSON object {{"key": value, ...}} or JSON lines')
        if set(doc) == {"key", "value"} and isinstance(doc["key"], str):
            return [(doc["key"], doc["value"])]   # a single JSON line
        return list(doc.items())
    items: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            fail(f"{source}:{number}: not JSON ({exc})")
        if not isinstance(row, dict) or not isinstance(row.get("key"), str) or "value" not in row:
            fail(f'{source}:{number}: expected {{"key": "...", "value": ...}}')
        items.append((row["key"], row["value"]))
    return items


@app.command("load")
def load_keys(
    source: Annotated[str, typer.Argument(help='A JSON object {"key": value, ...}, or JSON lines '
                                                '{"key": "k", "value": v}; - reads standard input.')],
    config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Writes per request.")] = 1000,
    ack: AckOpt = "local", ack_timeout: AckTimeoutOpt = 5.0,
) -> None:
    """Write many keys at once (bulk load): each request carries --batch puts, applied in order with
    one commit and one set of sends. Exit code 1 when any write was refused (each is named)."""
    client = Client(config, control, token, json)
    items = _load_items(source)
    written, failed, acked = 0, [], None
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        result = client("put_many", wait=ack_timeout + 30, items=chunk, ack=_ack(ack))
        written += result["written"]
        failed += [{**f, "index": f["index"] + start} for f in result["failed"]]
        if result["written"]:
            acked = result["acked"] if acked is None else min(acked, result["acked"])
    summary = {"written": written, "failed": failed, "acked": acked or 0}
    if json:
        print_json(summary)
    else:
        typer.echo(f"{written} of {len(items)} keys written" + (f", {acked} copies confirmed" if ack != "local" and
                                                                 acked else ""))
        for f in failed[:20]:
            typer.echo(f"refused: {f['key']!r}: {f['error']}", err=True)
        if len(failed) > 20:
            typer.echo(f"... and {len(failed) - 20} more refused", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def get(key: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every value with its origin, the "
                                                                      "causal context and the versions kept.")] = False
        ) -> None:
    """Read KEY from the node's replica (exit code 1 when absent). Multi-value keys print one
    sibling per line; pass the `context` of `--json` back to `put --context` to resolve them."""
    result = Client(config, control, token, json)("get", key=key, verbose=verbose)
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
def delete(key: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
           json: JsonOpt = False, context: ContextOpt = None, field: FieldOpt = None, ack: AckOpt = "local",
           ack_timeout: AckTimeoutOpt = 5.0) -> None:
    """Delete KEY (a tombstone spreads). Exit code 1 when there was nothing to delete."""
    result = Client(config, control, token, json)("delete", wait=ack_timeout + 5, key=key, context=context,
                                                  field=field, ack=_ack(ack))
    if json:
        print_json(result)
    elif result["deleted"]:
        typer.echo(f"{key} deleted{_acked(result)}")
    if not result["deleted"]:
        typer.echo(f"key {key!r} not found", err=True)
        raise typer.Exit(1)


@app.command()
def incr(key: str, n: Annotated[int, typer.Argument(help="Amount; negative needs `--`: incr KEY -- -3.")] = 1,
         config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
         field: FieldOpt = None, ack: AckOpt = "local", ack_timeout: AckTimeoutOpt = 5.0) -> None:
    """Add N (default 1) to the counter KEY (crdt gcounter/pncounter, or an ormap field)."""
    result = Client(config, control, token, json)("incr", wait=ack_timeout + 5, key=key, value=n, field=field,
                                                  ack=_ack(ack))
    print_json(result) if json else typer.echo(_show(result["value"]))


@app.command()
def sadd(key: str, member: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
         json: JsonOpt = False, field: FieldOpt = None, ack: AckOpt = "local", ack_timeout: AckTimeoutOpt = 5.0
         ) -> None:
    """Add MEMBER to the set KEY (crdt orset, add-wins; or an ormap field)."""
    _set_change("sadd", "added to", key, member, Client(config, control, token, json), field, ack, ack_timeout)


@app.command()
def srem(key: str, member: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
         json: JsonOpt = False, field: FieldOpt = None, ack: AckOpt = "local", ack_timeout: AckTimeoutOpt = 5.0
         ) -> None:
    """Remove MEMBER from the set KEY (the adds this replica has seen; concurrent adds win)."""
    _set_change("srem", "removed from", key, member, Client(config, control, token, json), field, ack, ack_timeout)


def _set_change(cmd: str, done: str, key: str, member: str, client: Client, field: str | None, ack: str,
                ack_timeout: float) -> None:
    result = client(cmd, wait=ack_timeout + 5, key=key, member=member, field=field, ack=_ack(ack))
    print_json(result) if client.json else typer.echo(f"{member} {done} {key}{_acked(result)}")


@app.command()
def smembers(key: str, config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
             json: JsonOpt = False) -> None:
    """List the members of the set KEY, one per line (exit code 1 when absent or empty)."""
    result = Client(config, control, token, json)("smembers", key=key)
    members_ = result["value"] if result is not None else []
    if json:
        print_json({"key": key, "members": members_})
    else:
        for m in members_:
            typer.echo(m)
    if not members_:
        raise typer.Exit(1)


@app.command("ls")
def list_keys(prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
              config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
              json: JsonOpt = False) -> None:
    """List the live keys of the replicated store (sorted), optionally under PREFIX."""
    keys = Client(config, control, token, json)("keys", prefix=prefix)
    if json:
        print_json({"prefix": prefix, "keys": keys})
    else:
        for key in keys:
            typer.echo(key)


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"{pair!r}: tags are given as NAME=VALUE")
        tags[name] = value
    return tags


@app.command()
def members(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
            status_: Annotated[list[str] | None, typer.Option(
                "--status", help="Only members in this status (alive, suspect, dead, left; repeatable).")] = None,
            tag: Annotated[list[str] | None, typer.Option(
                "--tag", help="Only members with this tag, NAME=VALUE (repeatable: all must match).")] = None,
            watch: Annotated[bool, typer.Option("--watch", "-w", help="Then print membership changes as they "
                                                                      "happen, until Ctrl-C.")] = False) -> None:
    """List the members this node knows, with status, incarnation and tags."""
    client = Client(config, control, token, json)
    if watch:  # the event count first, so no change between the view and the stream is lost
        last = client("events", after=1 << 62)["last"]
    result = client("members", status=status_ or None, tags=_parse_tags(tag or []) or None)
    if watch:
        from .watch import watch as follow
        if json:  # first line: the current view; then one event per line
            typer.echo(orjson.dumps({"members": result}, default=str).decode())
        else:
            typer.echo(f"{len(result)} members ({', '.join(m['id'] + ':' + m['status'] for m in result)}); "
                       f"watching for changes (Ctrl-C stops)")
        address, token_ = client.endpoint()
        from gossipmq.transports.control import ControlError
        try:
            code = follow(address, typer.echo, after=last, as_json=json, token=token_)
        except ControlError as exc:   # the node went away: one line on stderr (and {"error"} with --json)
            fail(str(exc))
        raise typer.Exit(code)
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
    me = next((m for m in result if m.get("self")), None)
    if me is not None and me.get("overlay"):   # a partial view: say what the table is
        views = [m.get("view") for m in result]
        estimate = me.get("size_estimate")
        typer.echo(f"overlay {me['overlay']}: {views.count('active')} active, {views.count('passive')} passive; "
                   f"cluster size estimate {f'~{estimate:,.0f}' if estimate else 'unknown yet'}")


@app.command()
def status(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
           wait_converged: Annotated[bool, typer.Option(
               "--wait-converged", help="Block until every live member reports this node's Merkle root; "
                                        "exit code 0 when it does, 1 on --timeout.")] = False,
           timeout: Annotated[float, typer.Option(help="Seconds --wait-converged waits at most.", min=0)] = 30.0,
           ) -> None:
    """Node id, members by state, keys, Merkle root, convergence (since when), propagation lag
    and traffic counters."""
    client = Client(config, control, token, json)
    result = client("status")
    if wait_converged:
        deadline = time.monotonic() + timeout
        while not result["converged"] and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            result = client("status")
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
    problems = {k: v for k, v in (("hook_errors", sum(result.get("hook_errors", {}).values())),
                                  ("timer_errors", result.get("timer_errors", 0)),
                                  ("encode_errors", result.get("encode_errors", 0))) if v}
    if problems:
        typer.echo("errors     " + ", ".join(f"{k}={v}" for k, v in problems.items()))
    if wait_converged and not result["converged"]:
        typer.echo(f"not converged within {timeout:g} s", err=True)
        raise typer.Exit(1)


@app.command()
def rtt(a: Annotated[str, typer.Argument(help="A member id.")],
        b: Annotated[str | None, typer.Argument(help="Another member id (default: the node asked).")] = None,
        config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Estimated round-trip time between A and B (or this node) from Vivaldi network coordinates."""
    result = Client(config, control, token, json)("rtt", a=a, b=b)
    if json:
        print_json(result)
        return
    typer.echo(f"Estimated {result['a']} <-> {result['b']} rtt: {result['rtt_ms']:.3f} ms "
               f"(using Vivaldi network coordinates)")


@app.command()
def info(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Version, uptime, configuration summary (strategies by their config names) and every counter."""
    result = Client(config, control, token, json)("info")
    if json:
        print_json(result)
        return
    typer.echo(f"gossipmq   {result['version']} (protocol {result['protocol']})")
    typer.echo(f"node       {result['node_id']} at {result['address']} (bind {result['bind']}, incarnation "
               f"{result['incarnation']}), up {result['uptime_s']:.0f} s")
    typer.echo(f"cluster    {result['cluster'] or '(no name)'}")
    typer.echo("strategies " + ", ".join(f"{k}={v}" for k, v in result["strategies"].items()))
    typer.echo(f"storage    {result['storage']}")
    if result["tags"]:
        typer.echo("tags       " + ", ".join(f"{k}={v}" for k, v in result["tags"].items()))
    for section in ("counters", "runtime"):
        for name, value in result[section].items():
            typer.echo(f"  {name:<32} {value}")
    for where, n in result["hook_errors"].items():
        typer.echo(f"  hook error {where:<22} {n}")


@app.command()
def join(addresses: Annotated[list[str], typer.Argument(help="Addresses of members to contact (tcp://host:port, "
                                                              "host:port or a DNS name).")],
         config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
         timeout: Annotated[float, typer.Option(min=0.0, max=300.0, help="Seconds to wait for an answer.")] = 5.0,
         ) -> None:
    """Make a running node contact these members now (merges their cluster view into its own)."""
    from gossipmq.transports.seeds import normalize_seed
    result = Client(config, control, token, json)("join", wait=timeout + 5,
                                                  addresses=[normalize_seed(a) for a in addresses], timeout=timeout)
    print_json(result) if json else typer.echo(
        f"joined: {result['members']} members known" + (f" (new: {', '.join(result['new_members'])})"
                                                         if result["new_members"] else ""))


@app.command("force-leave")
def force_leave(member: Annotated[str, typer.Argument(help="Id of a failed member.")], config: ConfigOpt = None,
                control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Mark a failed member as left now (it is reaped like one that left and no longer counts as failed)."""
    result = Client(config, control, token, json)("force_leave", member=member)
    print_json(result) if json else typer.echo(f"{member} is now marked left")


tags_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Change this node's tags at runtime (gossiped to every member).")
app.add_typer(tags_app, name="tags")


@tags_app.command("set")
def tags_set(pairs: Annotated[list[str], typer.Argument(help="NAME=VALUE pairs.")], config: ConfigOpt = None,
             control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Set tags (others keep their values)."""
    result = Client(config, control, token, json)("tags_set", tags=_parse_tags(pairs))
    print_json(result) if json else typer.echo(", ".join(f"{k}={v}" for k, v in result["tags"].items()) or "(none)")


@tags_app.command("delete")
def tags_delete(names: Annotated[list[str], typer.Argument(help="Tag names.")], config: ConfigOpt = None,
                control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Delete tags."""
    result = Client(config, control, token, json)("tags_delete", keys=names)
    print_json(result) if json else typer.echo(", ".join(f"{k}={v}" for k, v in result["tags"].items()) or "(none)")


@app.command()
def monitor(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False,
            level: Annotated[str, typer.Option(help="Lowest log level shown: debug, info, warning, error.")] = "info",
            events: Annotated[bool, typer.Option("--events", help="Also stream membership events.")] = False,
            no_logs: Annotated[bool, typer.Option("--no-logs", help="Only events (with --events).")] = False,
            duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None) -> None:
    """Stream a running node's log lines (and events) as they happen, until Ctrl-C."""
    from gossipmq.transports.control import ControlError, stream
    client = Client(config, control, token, json)
    address, token_ = client.endpoint()
    deadline = time.monotonic() + duration if duration is not None else None

    def show(item: dict[str, Any]) -> None:
        if json:
            typer.echo(orjson.dumps(item, default=str).decode())
        elif "log" in item:
            line = item["log"]
            stamp = time.strftime("%H:%M:%S", time.localtime(line["time"]))
            typer.echo(f"{stamp} {line['level'].upper():<7} {line['message']}")
        elif "event" in item:
            from .watch import format_event
            typer.echo(format_event(item["event"]))
        elif "result" in item:
            typer.echo(f"monitoring {item['result']['monitoring']} (Ctrl-C stops)", err=True)

    try:
        stream(address, {"cmd": "monitor", "level": level, "events": events, "logs": not no_logs}, show,
               token=token_, stop=lambda: deadline is not None and time.monotonic() >= deadline)
    except ControlError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def version(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None,
            json: JsonOpt = False) -> None:
    """This gossipctl's version, and a running node's (with --control or --config)."""
    want_json(json)
    out: dict[str, Any] = {"gossipctl": __version__}
    if control or config:
        out["node"] = Client(config, control, token, json)("version")
    if json:
        print_json(out)
    else:
        typer.echo(f"gossipctl {__version__}")
        if "node" in out:
            typer.echo(f"node      {out['node']['version']} (protocol {out['node']['protocol']})")


@app.command()
def leave(config: ConfigOpt = None, control: ControlOpt = None, token: TokenOpt = None, json: JsonOpt = False) -> None:
    """Ask the node to leave the cluster gracefully and exit."""
    result = Client(config, control, token, json)("leave")
    print_json(result) if json else typer.echo(f"{result['node_id']} is leaving")


# ---- plugins and config ------------------------------------------------------------------------
@app.command()
def plugins(json: JsonOpt = False) -> None:
    """List every installed strategy by concern, with the package it came from."""
    _, installed = registry()
    from gossipmq.core.plugins import LOAD_FAILURES
    for name, reason in LOAD_FAILURES.items():
        typer.echo(f"warning: plugin entry point {name!r} failed to load and was skipped: {reason}", err=True)
    rows: list[dict[str, Any]] = [
        {"concern": s.concern, "name": s.name, "package": s.package, "description": s.description,
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
    strategies = {c: s.name for c, s in cfg.strategies.items()}
    summary = {"file": str(path), "node_id": node_id, "advertise": advertise, "control": control,
               "strategies": strategies}
    if json:
        print_json(summary)
    else:
        chosen = ", ".join(f"{c}={s}" for c, s in strategies.items())
        typer.echo(f"{path}: ok ({chosen})")


# ---- the local demo cluster -----------------------------------------------------------------------
@app.command()
def cluster(
    config: ConfigOpt = Path("configs/hybrid.toml"),
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, max=64, help="Node processes to start.")] = 5,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    base_port: Annotated[int, typer.Option(help="First TCP port on 127.0.0.1.")] = 7946,
    writes: Annotated[float, typer.Option(help="Demo writes per second on random nodes (0 = none).")] = 0.5,
    log_dir: Annotated[Path | None, typer.Option(help="Where node logs go (default: a temp dir).")] = None,
    json: JsonOpt = False,
) -> None:
    """Start N real node processes on loopback from one config, show a live table, stop them cleanly."""
    from .demo import run_cluster
    if config is None:   # only reachable from Python: the option has a default
        fail("cluster needs a config file (--config)")
    load(config)  # fail fast on a bad config, before starting anything
    code = run_cluster(config, nodes=nodes, duration=duration, base_port=base_port, writes_per_s=writes,
                       log_dir=log_dir, as_json=json)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

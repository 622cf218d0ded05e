"""`gossipctl keygen` and `gossipctl keys ...`: key pairs and the trust store of the `curve`
security plugin (file work is done by gossipmq.transports.curve; running nodes are told through
their control channel)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import ConfigOpt, ControlOpt, JsonOpt, call, fail, load, print_json

keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Manage the trust store of curve security.")

DirOpt = Annotated[Path | None, typer.Option("--dir", "-d", help="Trust store directory (default: the [security] "
                                                                   "trust_dir of --config).")]


def _trust_dir(directory: Path | None, config: Path | None) -> Path:
    if directory is not None:
        return directory
    if config is None:
        fail("say which trust store: --dir DIR or --config FILE")
    _, _, cfg = load(config)
    options = cfg.strategies["security"].options
    trust_dir = getattr(options, "trust_dir", "")
    if not trust_dir:
        fail(f"{config}: [security] has no trust_dir")
    path = Path(trust_dir).expanduser()
    return path if path.is_absolute() else config.parent / path


def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for NAME.key and NAME.key_secret.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Node id the key belongs to.")],
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    json: JsonOpt = False,
) -> None:
    """Create a node's identity key pair: NAME.key (public) and NAME.key_secret (mode 0600)."""
    from gossipmq.transports.curve import keygen as make
    try:
        public, secret, kp = make(out, name, force=force)
    except (FileExistsError, OSError) as exc:
        fail(str(exc))
    result = {"node_id": name, "identity": kp.identity, "curve_public": kp.curve_public,
              "public": str(public), "secret": str(secret)}
    if json:
        print_json(result)
    else:
        typer.echo(f"{name}: identity key {kp.identity}\n  public  {public}\n  secret  {secret} (mode 0600)\n"
                   f"trust it on every node: gossipctl keys trust {public} --dir TRUST_DIR")


@keys_app.command("list")
def list_keys(directory: DirOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Show the trusted keys (active and retired) with the node each belongs to."""
    from gossipmq.transports.curve import load_trust
    trust_dir = _trust_dir(directory, config)
    try:
        trust, problems = load_trust(trust_dir)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    rows = [{"node_id": k.node_id, "identity": k.identity, "status": k.status, "file": k.source}
            for k in trust.keys]
    if json:
        print_json({"keys": rows, "problems": problems})
        return
    for r in rows:
        typer.echo(f"{r['node_id']:<16} {r['identity']}  {r['status']:<8} {r['file']}")
    for problem in problems:
        typer.echo(f"skipped: {problem}", err=True)


@keys_app.command("trust")
def trust(certs: list[Path], directory: DirOpt = None, config: ConfigOpt = None) -> None:
    """Add public certificates (CERT...) to the trust store; running nodes pick them up."""
    from gossipmq.transports.curve import trust_cert
    trust_dir = _trust_dir(directory, config)
    for cert in certs:
        try:
            target = trust_cert(trust_dir, cert)
        except (OSError, ValueError) as exc:
            fail(f"{cert}: {exc}")
        typer.echo(f"trusted {cert} as {target}")


@keys_app.command("revoke")
def revoke(selector: Annotated[str, typer.Argument(help="Node id or identity key.")],
           directory: DirOpt = None, config: ConfigOpt = None) -> None:
    """Remove keys (a node's, or one key) from the trust store: holders are cut off."""
    from gossipmq.transports.curve import revoke as remove
    removed = remove(_trust_dir(directory, config), selector)
    if not removed:
        fail(f"no trusted key matches {selector!r}", code=1)
    for path in removed:
        typer.echo(f"revoked {path}")


@keys_app.command("retire")
def retire(selector: Annotated[str, typer.Argument(help="Node id or identity key.")],
           directory: DirOpt = None, config: ConfigOpt = None) -> None:
    """End a rotation: the old key may no longer connect, but entries it signed still verify."""
    from gossipmq.transports.curve import retire as move
    moved = move(_trust_dir(directory, config), selector)
    if not moved:
        fail(f"no active key matches {selector!r}", code=1)
    for path in moved:
        typer.echo(f"retired {path}")


@keys_app.command("reload")
def reload(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Make a running node re-read its trust store now (it also polls it every reload_ms)."""
    result = call(config, control, {"cmd": "keys_reload"})
    if json:
        print_json(result)
    else:
        typer.echo(f"{result['active']} active keys ({result['added']} added, {result['removed']} removed)")


@keys_app.command("rotate")
def rotate(key: Annotated[Path, typer.Option("--key", help="The node's new secret certificate.")],
           config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """Switch a running node to a new key pair (trust the new public key everywhere first)."""
    result = call(config, control, {"cmd": "keys_rotate", "key": str(key.resolve())})
    if json:
        print_json(result)
    else:
        typer.echo(f"now serving with {result['new']} (was {result['old']})")


@keys_app.command("status")
def status(config: ConfigOpt = None, control: ControlOpt = None, json: JsonOpt = False) -> None:
    """The key a running node serves with and its trust store counters."""
    result = call(config, control, {"cmd": "keys_status"})
    if json:
        print_json(result)
    else:
        for name, value in result.items():
            typer.echo(f"{name:<14} {value}")

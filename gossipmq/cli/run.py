"""`gossipctl run`: one node in the foreground, as a shell over `Agent`.

This is the command a deployment starts thousands of times, so it has a lean path: `main()` in
gossipmq/cli/__init__.py sends ``gossipctl run ...`` here before the CLI framework (typer, click,
rich) is imported, and this module parses the same flags with argparse. The typer command in
commands.py (for ``--help`` and the other commands' look) calls the same `serve`. RUN_OPTIONS is the
one list of flags; tests/test_cli.py checks both faces against it.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: (flag, destination, environment variable, help); every flag also reads its variable
RUN_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--config", "config", "GOSSIPMQ_CONFIG", "TOML config of the node."),
    ("--node-id", "node_id", "GOSSIPMQ_NODE_ID", "Member id (overrides [node] id)."),
    ("--bind", "bind", "GOSSIPMQ_BIND", "Inbox endpoint to bind, e.g. tcp://0.0.0.0:7946."),
    ("--advertise", "advertise", "GOSSIPMQ_ADVERTISE", "Address peers dial, e.g. tcp://n1:7946."),
    ("--seed", "seed", "GOSSIPMQ_SEEDS", "Seed address (repeatable; GOSSIPMQ_SEEDS takes a comma-separated list)."),
    ("--control", "control", "GOSSIPMQ_CONTROL", "Control endpoint to bind."),
    ("--cluster", "cluster_name", "GOSSIPMQ_CLUSTER", "Cluster name: nodes of other clusters are ignored."),
    ("--token", "token", "GOSSIPMQ_CONTROL_TOKEN", "Access token of a tcp control endpoint."),
    ("--metrics", "metrics", "GOSSIPMQ_METRICS",
     "Serve Prometheus metrics on http://HOST:PORT/metrics (overrides [metrics] listen; needs "
     "pip install 'gossipmq[metrics]')."),
    ("--log-level", "log_level", "GOSSIPMQ_LOG_LEVEL", "debug, info, warning or error."),
    ("--log-format", "log_format", "GOSSIPMQ_LOG_FORMAT", "text or json."),
)


@dataclass
class RunFailed(Exception):
    """`serve` could not start or the node stopped badly: one line for the user, an exit code."""

    message: str
    code: int = 2


def serve(config: str | None = None, node_id: str | None = None, bind: str | None = None,
          advertise: str | None = None, seed: Sequence[str] | None = None, control: str | None = None,
          cluster_name: str | None = None, token: str | None = None, metrics: str | None = None,
          log_level: str = "info", log_format: str = "text") -> None:
    """Run the node until SIGINT/SIGTERM or `gossipctl leave`; RunFailed on a problem."""
    import asyncio

    from gossipmq.agent import Agent
    from gossipmq.core.errors import GossipError
    from gossipmq.transports.zmq_runtime import RuntimeFailure

    if not seed and os.environ.get("GOSSIPMQ_SEEDS"):
        seed = [s.strip() for s in os.environ["GOSSIPMQ_SEEDS"].split(",") if s.strip()]
    try:
        agent = Agent.from_config(config or None, env=os.environ, node_id=node_id, bind=bind, advertise=advertise,
                                  seeds=seed, control=control, cluster=cluster_name, control_token=token,
                                  metrics=metrics)
    except (GossipError, ValueError) as exc:
        raise RunFailed(str(exc)) from None
    setup_logging(log_level, log_format, agent.node_id)
    try:
        asyncio.run(agent.run_forever(install_signals=True))
    except RuntimeFailure as exc:
        raise RunFailed(f"node {agent.node_id} stopped: {exc}", 1) from None
    except (GossipError, OSError) as exc:
        raise RunFailed(str(exc)) from None
    except KeyboardInterrupt:
        raise RunFailed("interrupted", 130) from None
    except Exception as exc:  # a bug: the log keeps the traceback, the user gets one line
        logging.getLogger("gossipmq").exception("node %s crashed", agent.node_id)
        raise RunFailed(f"node {agent.node_id} crashed: {exc!r} (traceback in the log above)", 1) from None


def setup_logging(level: str, fmt: str, node_id: str) -> None:
    """stderr logging for `run`: text (with the node id) or JSON lines (log pipelines)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise RunFailed(f"--log-level {level!r}: use debug, info, warning or error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(numeric)
    handler.addFilter(_DefaultNodeId(node_id))
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(node_id)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    elif fmt == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(node_id)s: %(message)s"))
    else:
        raise RunFailed(f"--log-format {fmt!r}: use text or json")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


class _DefaultNodeId(logging.Filter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node_id"):
            record.node_id = self.node_id
        return True


def main(argv: Sequence[str]) -> int:
    """The lean path: argparse instead of the CLI framework; same flags, same behaviour."""
    # A node speaks ZeroMQ, never TLS: keep asyncio from loading OpenSSL (~5 MiB of RSS per node).
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:   # one line, as every other failure
            sys.stderr.write(f"error: {message} (see gossipctl run --help)\n")
            raise SystemExit(2)

    parser = Parser(prog="gossipctl run", description="Run one node in the foreground.")
    for flag, dest, env, text in RUN_OPTIONS:
        if dest == "seed":
            parser.add_argument(flag, dest=dest, action="append", help=text)
        elif dest in ("log_level", "log_format"):
            parser.add_argument(flag, dest=dest, default=os.environ.get(env, "info" if dest == "log_level" else "text"),
                                help=text)
        else:
            parser.add_argument(*((flag, "-c") if dest == "config" else (flag,)), dest=dest,
                                default=os.environ.get(env) or None, help=text)
    args: dict[str, Any] = vars(parser.parse_args(list(argv)))
    try:
        serve(**args)
    except RunFailed as exc:
        if exc.code != 130:
            sys.stderr.write(f"error: {exc.message}\n")
        return exc.code
    return 0

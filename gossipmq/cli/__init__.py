"""`gossipctl`, the command-line face of gossipmq (a thin shell over `gossipmq.Agent`).

`gossipctl run ...` takes a lean path (gossipmq/cli/run.py) that never imports the CLI framework:
a node starts faster and keeps less memory. Every other command goes through typer (commands.py).
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["run"] and not {"--help", "-h"} & set(argv):
        from .run import main as run_main
        raise SystemExit(run_main(argv[1:]))
    from .commands import app
    app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from .commands import app
        return app
    raise AttributeError(name)

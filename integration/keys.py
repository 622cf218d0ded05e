"""CURVE identity keys for a `security = "curve"` cell, made on the host with gossipctl.

    files = cell_key_files("push-swim-lww-curve", ["n1", ..., "n5"])
    files["n1"]  # {"/etc/gossipmq/keys/n1.key_secret": (bytes, 0o600),
                 #  "/etc/gossipmq/keys/trusted/<file>": (bytes, 0o644), ...}

Per cell (cached for the session, so the 5 scenarios of a cell share one key set and a
restarted node keeps its identity): `gossipctl keygen --out DIR --name nK` for every node
(in parallel), then one `gossipctl keys trust DIR/n1.key ... --dir DIR/trusted`. Each node
gets its own secret and the whole trust directory (every node's public key), nothing else.
"""
from __future__ import annotations

import concurrent.futures as cf
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

KEY_DIR = "/etc/gossipmq/keys"
TRUST_DIR = f"{KEY_DIR}/trusted"
SECRET_PATH = KEY_DIR + "/{id}.key_secret"   # `{id}` is expanded by gossipmq itself

Files = dict[str, tuple[bytes, int]]          # path in the container -> (content, mode)

_cache: dict[tuple[str, tuple[str, ...]], dict[str, Files]] = {}
_lock = threading.Lock()


def _gossipctl() -> list[str]:
    exe = shutil.which("gossipctl")
    if exe is None:
        raise RuntimeError("gossipctl is not on PATH on the host: `pip install -e .` (keys are made on the host)")
    return [exe]


def _run(argv: Sequence[str]) -> None:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}")


def make_keys(names: Sequence[str], directory: Path) -> dict[str, Files]:
    """Generate keys for `names` under `directory`; return the files each node needs."""
    exe = _gossipctl()
    with cf.ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(lambda n: _run([*exe, "keygen", "--out", str(directory), "--name", n]), names))
    trusted = directory / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    _run([*exe, "keys", "trust", *(str(directory / f"{n}.key") for n in names), "--dir", str(trusted)])
    trust_files: Files = {
        f"{TRUST_DIR}/{p.relative_to(trusted).as_posix()}": (p.read_bytes(), 0o644)
        for p in sorted(trusted.rglob("*")) if p.is_file()
    }
    if len(trust_files) < len(names):
        raise RuntimeError(f"trust store {trusted} holds {len(trust_files)} files for {len(names)} nodes")
    return {
        n: {SECRET_PATH.format(id=n): ((directory / f"{n}.key_secret").read_bytes(), 0o600), **trust_files}
        for n in names
    }


def cell_key_files(cell_label: str, names: Sequence[str]) -> dict[str, Files]:
    """Keys for one cell (made once per session and cell, then reused)."""
    k = (cell_label, tuple(names))
    with _lock:
        if k not in _cache:
            with tempfile.TemporaryDirectory(prefix="gmq-keys-") as tmp:
                _cache[k] = make_keys(names, Path(tmp))
        return _cache[k]

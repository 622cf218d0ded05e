"""Build the gossipmq node image from the repository's own Dockerfile, without any registry.

    python -m integration.image          # builds (or reuses) and prints the tag

1. base image `gossipmq-base:<hash of build_base.sh>` via integration/images/build_base.sh
   (debootstrap + docker import; skipped when the tag exists);
2. a temporary build context: a snapshot of the repository as `docker build .` would see it
   (package sources, pyproject, README, LICENSE, deploy/, the root Dockerfile) and, in its
   deploy/wheelhouse/, every dependency plus the build backend as wheels made on the host with
   `pip wheel` (the Dockerfile then installs with --no-index);
3. `docker build --build-arg BASE=<base tag>` of the root Dockerfile (pull=False), tagged
   `gossipmq-node:<hash of the context: files + wheel contents + base tag>`; reused when that
   tag already exists.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from integration import _docker

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
IMAGES = HERE / "images"
BUILD_BASE = IMAGES / "build_base.sh"
DOCKERFILE = REPO_ROOT / "Dockerfile"
CONTEXT_WHEELHOUSE = Path("deploy") / "wheelhouse"
# the build backend gossipmq needs (pyproject [build-system]): the image builds gossipmq from source
BUILD_REQUIREMENTS = ["setuptools>=77", "wheel"]
NODE_REPO = "gossipmq-node"

# Never copied into the wheel-building snapshot: at the top level of the repo ...
_SNAPSHOT_SKIP_TOP = {
    ".git", ".venv", "venv", ".tox", ".nox", "build", "dist", "integration", "benchmarks",
    "docs", "examples", "tests", ".ci", "node_modules",
}
# ... and at any depth.
_SNAPSHOT_SKIP_ANY = shutil.ignore_patterns(
    "__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "*.pyc",
)


def _snapshot_ignore(root: Path):
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(_SNAPSHOT_SKIP_ANY(directory, names))
        here = Path(directory).resolve()
        if here == root.resolve():
            skipped |= _SNAPSHOT_SKIP_TOP & set(names)
        if here == (root / "deploy").resolve():   # only what the Dockerfile copies (as .dockerignore)
            skipped |= set(names) - {"docker", "wheelhouse"}
        if here == (root / CONTEXT_WHEELHOUSE).resolve():
            skipped |= {n for n in names if n.endswith(".whl")}  # ours replace any local wheels
        return skipped

    return ignore


def _log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def ensure_base_image() -> str:
    """Run build_base.sh (a no-op when the recipe's tag exists); return the tag."""
    proc = subprocess.run(["bash", str(BUILD_BASE)], stdout=subprocess.PIPE, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"build_base.sh failed with exit code {proc.returncode} (see its stderr above)")
    tag = proc.stdout.strip().splitlines()[-1]
    if not tag.startswith("gossipmq-base:"):
        raise RuntimeError(f"build_base.sh printed an unexpected tag: {tag!r}")
    return tag


def build_wheelhouse(dest: Path, src: Path = REPO_ROOT, extra: list[str] | None = None) -> list[Path]:
    """`pip wheel` gossipmq + all its dependencies (+ `extra` requirements) into `dest`.

    Builds from a snapshot copy of the repository (package sources + pyproject +
    README only), so the build neither races with edits nor leaves build/ or
    *.egg-info in the working tree.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gossipmq-src-") as tmp:
        snap = Path(tmp) / "gossipmq"
        shutil.copytree(src, snap, ignore=_snapshot_ignore(src))
        cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q",
               "-w", str(dest), str(snap), *(extra or [])]
        _log(" ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"pip wheel failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    wheels = sorted(dest.glob("*.whl"))
    if not any(w.name.startswith("gossipmq-") for w in wheels):
        raise RuntimeError(f"pip wheel produced no gossipmq wheel in {dest}: {[w.name for w in wheels]}")
    return wheels


def wheelhouse_digest(wheels: list[Path]) -> str:
    """Hash of the wheels' *contents* (member names + bytes), independent of zip timestamps,
    so rebuilding an unchanged tree gives the same digest."""
    h = hashlib.sha256()
    for w in sorted(wheels, key=lambda p: p.name):
        h.update(w.name.encode() + b"\0")
        with zipfile.ZipFile(w) as z:
            for name in sorted(z.namelist()):
                if name.endswith(".dist-info/RECORD"):
                    continue  # carries hashes of the other members only
                h.update(name.encode() + b"\0")
                h.update(hashlib.sha256(z.read(name)).digest())
    return h.hexdigest()


def _image_exists(client, tag: str) -> bool:
    import docker.errors  # noqa: PLC0415

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def context_digest(ctx: Path) -> str:
    """Hash of a build context: every file's path and bytes, wheels by their contents (so
    rebuilding an unchanged tree gives the same digest whatever the zip timestamps)."""
    h = hashlib.sha256()
    files = sorted(p for p in ctx.rglob("*") if p.is_file())
    for f in files:
        rel = f.relative_to(ctx).as_posix()
        if f.suffix == ".whl":
            continue
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    h.update(wheelhouse_digest([f for f in files if f.suffix == ".whl"]).encode())
    return h.hexdigest()


def make_context(ctx: Path, src: Path) -> list[Path]:
    """Fill `ctx` with what `docker build .` in `src` needs, plus a wheelhouse of every
    dependency and the build backend (made on the host) in deploy/wheelhouse/."""
    shutil.copytree(src, ctx, ignore=_snapshot_ignore(src), dirs_exist_ok=True)
    wheelhouse = ctx / CONTEXT_WHEELHOUSE
    wheels = build_wheelhouse(wheelhouse, src, extra=BUILD_REQUIREMENTS)
    # The image builds gossipmq from the sources in the context, as a user's `docker build .`
    # does; the wheelhouse keeps only dependencies and the build backend.
    for w in wheels:
        if w.name.startswith("gossipmq-"):
            w.unlink()
    return sorted(wheelhouse.glob("*.whl"))


def ensure_node_image(src: Path | None = None) -> str:
    """Ensure the node image for the current working tree exists; return its tag.

    `src` (default: the repository root, or $GOSSIPMQ_SRC) is the project that is built;
    its root Dockerfile is the recipe, with BASE = the debootstrap-made base image.
    """
    src = Path(src or os.environ.get("GOSSIPMQ_SRC") or REPO_ROOT)
    reason = _docker.docker_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    if not (src / "Dockerfile").is_file():
        raise RuntimeError(f"no Dockerfile at {src}")
    t0 = time.monotonic()
    base = ensure_base_image()
    t_base = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="gossipmq-image-") as tmp:
        ctx = Path(tmp) / "context"
        t1 = time.monotonic()
        wheels = make_context(ctx, src)
        t_wheels = time.monotonic() - t1
        h = hashlib.sha256()
        h.update(base.encode())
        h.update(context_digest(ctx).encode())
        tag = f"{NODE_REPO}:{h.hexdigest()[:12]}"
        client = _docker.client()
        try:
            if _image_exists(client, tag):
                _log(f"{tag} already present (base {t_base:.1f}s, context {t_wheels:.1f}s)")
                return tag
            _log(f"docker build {tag} from {src / 'Dockerfile'} with BASE={base}, {len(wheels)} wheels")
            t2 = time.monotonic()
            import docker.errors  # noqa: PLC0415

            try:
                client.images.build(path=str(ctx), dockerfile="Dockerfile", tag=tag, pull=False,
                                    rm=True, forcerm=True, buildargs={"BASE": base},
                                    labels={"gossipmq.image": "node"})
            except docker.errors.BuildError as e:
                log = "".join(x.get("stream", "") or x.get("error", "") for x in e.build_log)
                raise RuntimeError(f"docker build of {tag} failed: {e.msg}\n{log[-4000:]}") from None
            _log(f"built {tag} (base {t_base:.1f}s, context {t_wheels:.1f}s, "
                 f"docker build {time.monotonic() - t2:.1f}s)")
        finally:
            client.close()
    return tag


def prune_node_images(keep: str) -> list[str]:
    """Remove gossipmq-node images other than `keep` that no container uses."""
    removed = []
    client = _docker.client()
    try:
        for img in client.images.list(name=NODE_REPO):
            tags = [t for t in img.tags if t.startswith(NODE_REPO + ":")]
            if keep in img.tags or not tags:
                continue
            for t in tags:
                try:
                    client.images.remove(t, noprune=False)
                    removed.append(t)
                except Exception as e:  # noqa: BLE001 - in use, keep it
                    _log(f"kept {t}: {e}")
    finally:
        client.close()
    return removed


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m integration.image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-only", action="store_true", help="only ensure the base image")
    p.add_argument("--prune", action="store_true",
                   help="afterwards remove older gossipmq-node:* images no container uses")
    args = p.parse_args(argv)
    try:
        tag = ensure_base_image() if args.base_only else ensure_node_image()
        if args.prune and not args.base_only:
            for t in prune_node_images(tag):
                _log(f"removed {t}")
    except Exception as e:  # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())

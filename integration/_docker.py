"""Docker engine reachability, shared by image.py, cluster.py and conftest.py."""
from __future__ import annotations

import functools
import os

# Ryuk (the testcontainers reaper) would have to be pulled from a registry, which
# is unreachable here. We clean up by label instead (see cluster.py).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@functools.lru_cache(maxsize=1)
def docker_unavailable_reason() -> str | None:
    """None if a Docker engine answers, else a one-line explanation."""
    try:
        import docker  # noqa: PLC0415
    except ImportError:
        return ("python package 'docker' is not installed "
                "(pip install 'testcontainers>=4.14,<5' docker)")
    try:
        import testcontainers  # noqa: F401, PLC0415
    except ImportError:
        return "python package 'testcontainers' is not installed (pip install 'testcontainers>=4.14,<5')"
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return (f"no Docker engine answers at {host} ({msg[:160]}); "
                f"run `bash integration/ci_docker.sh` to install/start one")
    return None


def client():
    import docker  # noqa: PLC0415

    return docker.from_env(timeout=120)


def no_docker_skip_message() -> str | None:
    """For Docker test modules at import (collection) time: None when an engine answers,
    else the one-line skip reason. With GOSSIPMQ_REQUIRE_DOCKER=1 (CI) a missing engine
    is a usage error instead of a skip."""
    reason = docker_unavailable_reason()
    if reason is None:
        return None
    msg = f"DOCKER UNAVAILABLE, gossipmq integration tests skipped: {reason}"
    if os.environ.get("GOSSIPMQ_REQUIRE_DOCKER") == "1":
        import pytest  # noqa: PLC0415

        raise pytest.UsageError(msg.replace("skipped", "required (GOSSIPMQ_REQUIRE_DOCKER=1)"))
    return msg

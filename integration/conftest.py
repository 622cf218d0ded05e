"""pytest wiring for the containerised integration matrix.

* registers the `integration` marker and applies it to every test under integration/;
* when no Docker engine answers, the Docker tests are skipped at collection with a
  one-line reason (set GOSSIPMQ_REQUIRE_DOCKER=1 to make that an error instead, as CI should);
* `node_image` (session): builds the node image once, or uses $GOSSIPMQ_IMAGE; the first test
  that needs it gets the build's time (`IMAGE_BUILD_S`) added to its timeout;
* collects scenario results and writes integration/results/results.{json,md}.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from integration import _docker, report

_RECORDS: list[dict] = []
_META: dict = {}
_T0 = time.monotonic()
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: containerised multi-node tests (need a Docker engine)")


def pytest_report_header(config: pytest.Config) -> str:
    reason = _docker.docker_unavailable_reason()
    return "gossipmq integration: " + ("Docker engine OK" if reason is None else f"DOCKER UNAVAILABLE - {reason}")


#: how long building the images may take (debootstrap base, wheels, docker build), beyond the
#: bound of the test that triggers it: on a slow 2-core machine the build alone outlasted the
#: 240 s a matrix scenario may take, and every scenario then failed with the build's timeout
IMAGE_BUILD_S = 1500


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    builder = None
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if builder is None and "node_image" in getattr(item, "fixturenames", ()):
                builder = item
    if builder is not None and not os.environ.get("GOSSIPMQ_IMAGE"):
        # pytest-timeout counts fixture setup: the first test that needs the image builds it
        # (session fixture), so its bound is its own plus the build's
        own = builder.get_closest_marker("timeout")
        limit = float(own.args[0]) if own is not None and own.args else float(config.getini("timeout") or 300)
        builder.add_marker(pytest.mark.timeout(limit + IMAGE_BUILD_S), append=False)


@pytest.fixture(scope="session")
def node_image() -> str:
    """Tag of the node image: $GOSSIPMQ_IMAGE if set, else built (or reused) once per session."""
    shutil.rmtree(report.RESULTS_DIR / "logs", ignore_errors=True)  # node logs of the previous run
    tag = os.environ.get("GOSSIPMQ_IMAGE")
    t0 = time.monotonic()
    if not tag:
        from integration.image import ensure_node_image  # noqa: PLC0415

        tag = ensure_node_image()
    _META["image"] = tag
    _META["image_build_s"] = round(time.monotonic() - t0, 1)
    print(f"\n[integration] node image {tag} ready in {_META['image_build_s']}s")
    return tag


@pytest.fixture(scope="session")
def record_result():
    """Callable(record_dict) collecting matrix results for results.json/md."""
    return _RECORDS.append


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _RECORDS:
        _META["wall_s"] = round(time.monotonic() - _T0, 1)
        pj, pm = report.write(_RECORDS, _META)
        _META["written"] = (str(pj), str(pm))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tr = terminalreporter
    reason = _docker.docker_unavailable_reason()
    if reason is not None:
        tr.write_line(f"gossipmq integration: DOCKER UNAVAILABLE, matrix skipped - {reason}", red=True, bold=True)
    if not _RECORDS:
        return
    tr.section("gossipmq integration matrix")
    for r in _RECORDS:
        metrics = " ".join(f"{k}={v:.2f}s" for k, v in r["metrics"].items())
        tr.write_line(f"{'PASS' if r['passed'] else 'FAIL'} {r['cell']:<28} {r['scenario']:<16} "
                      f"{r['seconds']:6.1f}s  {metrics}")
    if "written" in _META:
        tr.write_line(f"results: {_META['written'][0]} and {_META['written'][1]} (wall {_META['wall_s']}s)")

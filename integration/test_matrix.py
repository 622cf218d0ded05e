"""The integration matrix: pairwise configuration cells x scenarios, 5 nodes each.

    pytest integration -m integration                  # everything (needs Docker)
    pytest integration -k 'push and partition'         # one cell/scenario
    GOSSIPMQ_IMAGE=gossipmq-node:<tag> pytest ...      # skip the image build step

Cells run sequentially (2 cores); each scenario gets a fresh cluster.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from integration._docker import no_docker_skip_message

if (_why := no_docker_skip_message()) is not None:  # at collection: one loud line, then skip
    pytest.skip(_why, allow_module_level=True)

from integration import report  # noqa: E402
from integration.cluster import DockerCluster  # noqa: E402
from integration.matrix import cell_id, cells  # noqa: E402
from integration.scenarios import EXTRA_SCENARIOS, SCENARIOS, ScenarioFailure, ScenarioResult, ScenarioRunner  # noqa: E402

LOG_DIR = Path(__file__).resolve().parent / "results" / "logs"
_SCENARIOS = SCENARIOS + (EXTRA_SCENARIOS if os.environ.get("GOSSIPMQ_EXTRA_SCENARIOS") == "1" else [])
CASES = [(cell, sc) for cell in cells() for sc in _SCENARIOS]


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("cell,scenario", CASES, ids=[f"{cell_id(c)}/{s.name}" for c, s in CASES])
def test_scenario(cell, scenario, node_image, record_result):
    label = cell_id(cell)
    failed: BaseException | None = None
    result = ScenarioResult(scenario.name, label)
    cluster = DockerCluster(node_image, cell, log_fn=lambda m: print(f"[{label}] {m}"))
    try:
        result = ScenarioRunner(cluster, label=label,
                                resolver=cell.get("conflict_resolution", "lww")).run(scenario)
    except ScenarioFailure as f:
        failed, result = f, f.result
    except BaseException as e:  # setup errors, pytest-timeout, KeyboardInterrupt
        failed = e
        result.error = f"[{label}] {scenario.name}: {type(e).__name__}: {e}"
        raise
    finally:
        keep = failed is not None or os.environ.get("GOSSIPMQ_KEEP_LOGS") == "1"
        log_dir = LOG_DIR / label / scenario.name
        cluster.close(save_logs_to=log_dir if keep else None)
        if failed is not None and result.error:
            result.error += f"\n(node logs: {log_dir})"
        record_result(report.record(result, cell, label))
    if failed is not None:
        pytest.fail(str(failed), pytrace=False)

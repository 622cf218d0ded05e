"""The atheris fuzz target runs (bounded), with atheris or with its fallback mutator."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = [Path(__file__).parent / "fuzz" / name for name in ("fuzz_envelope.py", "fuzz_control.py")]


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.stem)
def test_fuzz_target_bounded_run(target: Path) -> None:
    result = subprocess.run([sys.executable, str(target), "-runs=3000", "-seed=1"], capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3000 runs" in result.stdout + result.stderr or "#3000" in result.stderr

"""Write integration/results/results.json and results.md from scenario results."""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write(records: Iterable[dict[str, Any]], meta: dict[str, Any], directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    records = list(records)
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        **meta,
        "passed": sum(1 for r in records if r["passed"]),
        "failed": sum(1 for r in records if not r["passed"]),
        "records": records,
    }
    pj = directory / "results.json"
    pj.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    pm = directory / "results.md"
    pm.write_text(markdown(doc))
    return pj, pm


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# gossipmq integration matrix results",
        "",
        f"Generated {doc['generated_at']} on {doc['host']['cpus']} CPUs; image `{doc.get('image', '?')}`"
        + (f" (ensured in {doc['image_build_s']:.1f}s)" if doc.get("image_build_s") is not None else "")
        + (f"; wall time {doc['wall_s']:.0f}s" if doc.get("wall_s") is not None else "")
        + f"; {doc['passed']} passed, {doc['failed']} failed.",
        "",
        "Metrics are seconds from the triggering action (put/kill/partition/heal/restart) to the "
        "observation, as seen by polling `gossipctl` in every container (poll granularity ~0.3-1 s).",
        "",
        "| cell | scenario | result | seconds | measured |",
        "|---|---|---|---:|---|",
    ]
    for r in doc["records"]:
        metrics = ", ".join(f"{k}={v:.2f}" for k, v in r.get("metrics", {}).items())
        lines.append(f"| {r['cell']} | {r['scenario']} | {'pass' if r['passed'] else '**FAIL**'} | "
                     f"{r['seconds']:.1f} | {metrics} |")
    failures = [r for r in doc["records"] if not r["passed"]]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            err = (r.get("error") or "").strip().replace("\n", "\n    ")
            lines += [f"- **{r['cell']} / {r['scenario']}**:", "", "    " + err, ""]
    return "\n".join(lines) + "\n"


def record(result: Any, cell: dict[str, str], cell_label: str) -> dict[str, Any]:
    d = asdict(result)
    return {
        "cell": cell_label,
        "options": dict(cell),
        "scenario": d["scenario"],
        "passed": d["passed"],
        "seconds": round(d["seconds"], 2),
        "metrics": d["metrics"],
        "error": d["error"],
        "steps": d["steps"],
    }

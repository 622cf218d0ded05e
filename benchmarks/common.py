"""Shared bits of the benchmark scripts: configs, the registry, tables and CSV output."""
from __future__ import annotations

import csv
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gossipmq.core.config import Config, parse_config  # noqa: E402
from gossipmq.core.plugins import build_registry, make_plugin_manager  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
REGISTRY = build_registry(make_plugin_manager(load_entrypoints=False))

# Issue #3's ideal random-phone-call figures: (mode, fanout) -> {n: (median, p99)}.
REFERENCE = {
    ("push", 1): {100: (12, 17), 1000: (18, 22), 10000: (23, 28)},
    ("push", 3): {100: (6, 7), 1000: (8, 9), 10000: (11, 12)},
    ("pull", 1): {100: (10, 14), 1000: (13, 18), 10000: (17, 21)},
    ("pull", 3): {100: (5, 6), 1000: (7, 8), 10000: (9, 10)},
    ("hybrid", 1): {100: (7, 8), 1000: (9, 10), 10000: (12, 13)},
    ("hybrid", 3): {100: (4, 4), 1000: (5, 6), 10000: (7, 7)},
}
REFERENCE_COPIES_N1000 = {("push", 1): 7.9, ("pull", 1): 1.0, ("hybrid", 1): 1.33, ("hybrid", 3): 2.15}


def sim_config(dissemination: dict[str, Any], anti_entropy: dict[str, Any] | None = None) -> Config:
    doc: dict[str, Any] = {"dissemination": {"interval_ms": 1000, **dissemination},
                           "failure_detection": {"strategy": "static"}}
    if anti_entropy:
        doc["anti_entropy"] = anti_entropy
    return parse_config(doc, REGISTRY, "<benchmark>")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 30 runs is the largest but none: rank ceil(0.99 * 30) = 30)."""
    ordered = sorted(values)
    import math
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def write_csv(name: str, rows: list[dict[str, Any]]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table (pastes into the README as is)."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")

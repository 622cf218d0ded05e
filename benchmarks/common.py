"""Shared bits of the benchmark scripts: configs, the registry, tables and CSV output; for issue #14's
scripts also the goals and anchors, the load guard, progress lines, figures and their JSON."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gossipmq.core.config import Config, parse_config
from gossipmq.core.plugins import build_registry, make_plugin_manager

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


# ======================================================================================
# Issue #14 harness: goals and anchors, the load guard, progress lines, figures and JSON
# ======================================================================================
LOAD_LIMIT = 1.5   # 1-minute load average above which a figure is not reported (unless --force)


@dataclass(frozen=True)
class Goal:
    """One row of issue #14's table. `better` says which way is good; the ratio to a reference is
    always "times worse than it" (1.0 = equal, below 1 = better), as in the issue's ratio column."""

    label: str
    unit: str
    better: str                  # "higher" or "lower"
    goal: float | None
    anchor: float | None = None
    anchor_name: str = "-"
    issue_today: str = "-"       # what the issue measured for gossipmq when it was filed


GOALS: dict[str, Goal] = {
    "b20_one_node": Goal("B20 sustained writes/s into one node (all caught up <= 2 s)", "writes/s", "higher",
                         12_000, 4_000, "chitchat", "4,000"),
    "b20_spread": Goal("B20 sustained writes/s spread over 5 nodes (all caught up <= 2 s)", "writes/s", "higher",
                       15_000, None, "-", "5,000"),
    "b20_cpu_per_write": Goal("B20 CPU per replicated write per node, one node at ~4,000/s", "us", "lower",
                              15, 27, "chitchat", "50-61"),
    "b20_p99": Goal("B20 client put latency p99 at the sustained rate (one node)", "ms", "lower", 50),
    "b20_kernel_apply": Goal("kernel alone: decode + apply one entry of a 64-entry delta", "us", "lower",
                             None, None, "-", "~12"),
    "b20_kernel_ceiling": Goal("kernel ceiling, whole 5-node cluster on this machine's cores", "writes/s",
                               "higher", None),
    "b13_rss_per_key": Goal("B13 RSS per stored key, 100-byte values included, 10^6 keys", "B", "lower",
                            None, 865, "chitchat", "~1,000"),
    "b13_overhead_1m": Goal("B13 overhead per stored key (value bytes excluded), 10^6 keys, RSS", "B", "lower",
                            300, None, "-", "~900 (~1,000 with values)"),
    "b13_overhead_1m_traced": Goal("B13 overhead per stored key (value bytes excluded), 10^6 keys, tracemalloc",
                                   "B", "lower", 300),
    "b21_idle_cpu": Goal("B21 idle CPU per node, 20 nodes (s per 20 s, net of the harness)", "s", "lower",
                         0.067, 0.067, "memberlist", "~0.13"),
    "b21_converged": Goal("B21 membership converged after the last node is ready, n = 20", "s", "lower",
                          0.5, 0.46, "memberlist", "0.95"),
    "b21_dead_all": Goal("B21 kill -9 -> every survivor marks it dead, n = 20 (median)", "s", "lower",
                         7.3, 6.8, "memberlist", "7.3"),
    "b21_new_key": Goal("B21 a new key visible on all 20 nodes (median)", "s", "lower",
                        0.5, 0.50, "memberlist (member metadata)", "0.71"),
    "b21_false_suspicions": Goal("B21 false suspicions during the idle window", "count", "lower", 0, None, "-", "0"),
    "b22_rss": Goal("B22 RSS of an idle `gossipctl run` node (median)", "MiB", "lower",
                    25, 12, "memberlist (whole Go process)", "45"),
    "b22_start": Goal("B22 `gossipctl run` exec -> control endpoint answers (median)", "s", "lower",
                      0.2, None, "-", "0.29-0.37"),
    "b22_library": Goal("B22 library in a process, RSS over bare Python", "MiB", "lower", None, None, "-", "~15"),
    "b23_sim_hybrid": Goal("B23 simulate hybrid.toml, 10^4 nodes, 40 rounds, no plot (wall)", "s", "lower",
                           20, None, "-", "59"),
    "b23_sim_hybrid_plot": Goal("B23 same with --out (CSV, JSON, PNG) (wall)", "s", "lower", 20, None, "-",
                                "87 (loaded)"),
    "b23_sim_simtoml": Goal("B23 simulate sim.toml (fanout 1), 10^4 nodes, 40 rounds (wall)", "s", "lower",
                            None, None, "-", "22.5"),
    "b23_png_note": Goal("B23 --out without matplotlib says it skipped the PNG (1 = yes)", "bool", "higher",
                         1, None, "-", "0 (silent)"),
}


def read_loadavg() -> dict[str, Any]:
    """/proc/loadavg as read (raw line) and its three averages."""
    raw = Path("/proc/loadavg").read_text().strip()
    one, five, fifteen = (float(x) for x in raw.split()[:3])
    return {"raw": raw, "one": one, "five": five, "fifteen": fifteen, "time": time.time()}


@dataclass
class Measurement:
    """One measured phase: /proc/loadavg at its start and end; refused when the machine was busy."""

    what: str
    load_start: dict[str, Any]
    refused: str | None = None
    forced: bool = False
    load_end: dict[str, Any] | None = None

    def end(self) -> None:
        if self.load_end is None:
            self.load_end = read_loadavg()

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "load_start": self.load_start, "load_end": self.load_end,
                "refused": self.refused, "forced": self.forced}

    def loads(self) -> str:
        end = f"{self.load_end['one']:.2f}" if self.load_end else "?"
        return f"{self.load_start['one']:.2f}->{end}"


class LoadGuard:
    """Every measurement starts here. Without --force it first waits (up to `settle` s) for the
    1-minute load average to fall to LOAD_LIMIT - our own previous phase raises it too - and, if
    it does not, refuses: the caller skips the phase and its figures are reported as missing."""

    def __init__(self, force: bool = False, settle: float = 120.0, limit: float = LOAD_LIMIT) -> None:
        self.force, self.settle, self.limit = force, settle, limit
        self.measurements: list[Measurement] = []

    @contextmanager
    def measure(self, what: str) -> Iterator[Measurement]:
        load = read_loadavg()
        if load["one"] > self.limit and not self.force and self.settle > 0:
            progress = Progress(f"waiting for load <= {self.limit} before {what}", total=self.settle)
            start = time.monotonic()
            while load["one"] > self.limit and time.monotonic() - start < self.settle:
                progress.update(time.monotonic() - start, f"load {load['one']:.2f}")
                time.sleep(2.5)
                load = read_loadavg()
            progress.close()
        m = Measurement(what, load)
        if load["one"] > self.limit:
            if self.force:
                m.forced = True
                warn(f"{what}: load {load['one']:.2f} > {self.limit} at the start; measuring anyway (--force), "
                     f"figures are marked 'forced'")
            else:
                m.refused = f"load {load['one']:.2f} > {self.limit} at the start"
                warn(f"{what}: not measured, {m.refused} (wait for a quiet machine, or --force)")
        self.measurements.append(m)
        try:
            yield m
        finally:
            m.end()


def add_guard_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help=f"report figures even when the 1-minute load average is above {LOAD_LIMIT} at the start")
    parser.add_argument("--settle", type=float, default=120.0, metavar="S",
                        help="wait up to S seconds for the 1-minute load to fall to the limit before each "
                             "measurement (default 120; the previous phase raises it too)")


def warn(text: str) -> None:
    print(f"WARNING: {text}", file=sys.stderr, flush=True)


class Progress:
    """One progress line on stderr: rewritten in place on a terminal, else printed every few seconds."""

    def __init__(self, label: str, total: float | None = None, every: float = 5.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.shown = False

    def update(self, done: float, extra: str = "") -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.every:
            return
        self.last = now
        part = f"{done:,.0f}/{self.total:,.0f}" if self.total else f"{done:,.0f}"
        line = f"[{self.label}] {part} {extra}".rstrip()
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def ratio(value: float | None, reference: float | None, better: str) -> float | None:
    """Times worse than `reference` (1.0 = equal, < 1 = better); None without both figures."""
    if value is None or reference is None or math.isnan(value):
        return None
    if better == "higher":
        return reference / value if value else float("inf")
    if reference == 0:
        return 1.0 if value == 0 else float("inf")
    return value / reference


def figure(fid: str, value: float | None, m: Measurement | None, note: str = "",
           comparable: bool = True) -> dict[str, Any]:
    """A figure as every issue #14 script saves it (cost_report.py reads these). `comparable=False`
    (a scaled-down run) keeps the value but judges it against neither goal nor anchor."""
    g = GOALS[fid]
    refused = m.refused if m is not None else None
    if refused:
        value = None
    met = None
    if value is not None and g.goal is not None and comparable:
        met = value >= g.goal if g.better == "higher" else value <= g.goal
    judged = comparable and g.unit != "bool"
    note = " ".join((refused or note).split())
    if not comparable and not refused:
        note = f"not comparable to the goal: {note}"
    return {"id": fid, "label": g.label, "value": value, "unit": g.unit, "better": g.better, "goal": g.goal,
            "anchor": g.anchor, "anchor_name": g.anchor_name, "issue_today": g.issue_today,
            "ratio_goal": ratio(value, g.goal, g.better) if judged else None,
            "ratio_anchor": ratio(value, g.anchor, g.better) if judged else None,
            "met": met, "comparable": comparable, "note": note, "forced": bool(m and m.forced),
            "load_start": m.load_start["one"] if m else None,
            "load_end": m.load_end["one"] if m and m.load_end else None}


def fmt(value: float | None) -> str:
    """A figure for a table: thousands separators above 1,000, three significant digits below 100."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def print_figures(figures: list[dict[str, Any]], title: str = "issue #14 figures") -> None:
    """The figures beside the issue's goal and anchor, with ratios ("x" = times worse; < 1 better)."""
    print(f"\n## {title} (ratio = times worse than the reference; < 1 is better)")
    rows = []
    for f in figures:
        rg = f"{f['ratio_goal']:.2f}x" if f["ratio_goal"] is not None else "" if f["met"] is not None else "-"
        ra = f"{f['ratio_anchor']:.2f}x" if f["ratio_anchor"] is not None else "-"
        verdict = {True: "met", False: "MISSED", None: ""}[f["met"]]
        value = "not measured" if f["value"] is None else fmt(f["value"])
        end = "?" if f["load_end"] is None else f"{f['load_end']:.2f}"
        load = "-" if f["load_start"] is None else f"{f['load_start']:.2f}->{end}"
        rows.append([f["label"], f"{value} {f['unit']}" if f["value"] is not None else value,
                     fmt(f["goal"]), f"{rg} {verdict}".strip(), f"{fmt(f['anchor'])} ({f['anchor_name']})"
                     if f["anchor"] is not None else "-", ra, f["issue_today"],
                     load + (" forced" if f["forced"] else ""), f["note"]])
    print_table(["figure", "measured", "goal", "ratio to goal", "anchor", "ratio to anchor", "issue (then)",
                 "load 1-min start->end", "note"], rows)


def save_report(name: str, args: argparse.Namespace, figures: list[dict[str, Any]], guard: LoadGuard,
                **details: Any) -> Path:
    """benchmarks/out/<name>.json: figures, every measurement's load, arguments and details."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    doc = {"script": name, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args),
           "cores": os.cpu_count(), "python": sys.version.split()[0], "figures": figures,
           "measurements": [m.as_dict() for m in guard.measurements], **details}
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path

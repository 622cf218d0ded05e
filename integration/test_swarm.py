"""deploy/swarm/ on a real Docker Swarm (single node, made and always left by this test).

    pytest integration/test_swarm.py -s      # 4-6 min on 2 cores; writes integration/results/swarm.{json,md}

One scenario, in order, on the user-facing stack file and image:
  1. deploy 5 replicas            -> every task sees 5 alive members and the same store checksum
  2. put through one task         -> readable on all 5
  3. scale to 7                   -> the 2 new tasks join and catch up (the key, equal checksums)
  4. rolling update (--force) while a writer keeps writing with `--ack majority`
                                  -> every task replaced, never more than one slot down at a time,
                                     and every acknowledged write readable on every task afterwards
  5. scale to 3                   -> the survivors see each removed task as `left`, never `dead`
  6. docker stack rm              -> no service, container, network, config or secret of the stack left
  7. CURVE: deploy 3 replicas with deploy/swarm/curve.yaml (keys made by deploy/swarm/curve-keys.sh,
     delivered as Docker secrets) -> converge, put/read on all, no refused handshakes; stack rm
     leaves no secret behind
The swarm is left in a `finally` (`docker swarm leave --force`), whatever happened. Where no
swarm can be made, the test fails with the reason (never skips when Docker answers; without an
engine the module is skipped, or fails at collection with GOSSIPMQ_REQUIRE_DOCKER=1).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from integration._docker import no_docker_skip_message

if (_why := no_docker_skip_message()) is not None:  # at collection: one loud line, then skip
    pytest.skip(_why, allow_module_level=True)

from integration.report import RESULTS_DIR  # noqa: E402
from integration.swarm import CURVE_FILE, STACK_FILE, SWARM_DIR, Stack, Swarm, SwarmError, Task  # noqa: E402
from integration.waiting import Check, WaitTimeout, wait_until  # noqa: E402

REPLICAS, SCALE_UP, SCALE_DOWN, CURVE_REPLICAS = 5, 7, 3, 3
JOIN_S = 120        # deploy -> converged (image already built; tasks start, pass a health check, join)
SPREAD_S = 30       # a write readable everywhere / acknowledged writes present after the update
UPDATE_S = 300      # the whole rolling update of 7 tasks (health check every 10 s, 5 s delay each)
LEAVE_S = 40        # removed tasks seen as `left` (reaped after 30 s, so this is checked while polling)
RM_S = 90           # docker stack rm -> nothing left
WRITER_ACK = "majority"

_pool = cf.ThreadPoolExecutor(max_workers=8, thread_name_prefix="swarm-exec")


def _log(msg: str) -> None:
    print(f"[swarm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _each(tasks: dict[str, Task], fn) -> dict[str, Any]:
    """fn(task) on every task in parallel; exceptions come back as values."""
    futs = {n: _pool.submit(fn, t) for n, t in tasks.items()}
    out: dict[str, Any] = {}
    for n, f in futs.items():
        try:
            out[n] = f.result()
        except Exception as e:  # noqa: BLE001
            out[n] = e
    return out


def converged(stack: Stack, n: int, key: str | None = None, value: Any = None):
    """Predicate: n running tasks, each sees n alive members (none suspect or dead) and the same
    checksum (and `key` = `value`, when given)."""

    def check() -> Check:
        running = stack.running()
        if len(running) != n:
            return Check(False, {"running tasks": sorted(running)}, ["tasks"])
        res = _each(running, lambda t: stack.gossipctl(t, ["status"], timeout=10))
        values = _each(running, lambda t: stack.gossipctl(t, ["get", key], ok=(0, 1))) if key else {}
        observed, bad, sums = {}, [], set()
        for node, st in sorted(res.items()):
            if isinstance(st, Exception):
                observed[node], _ = str(st)[:120], bad.append(node)
                continue
            m = st["members"]
            got = values.get(node)
            got = got.get("value") if isinstance(got, dict) else got
            observed[node] = f"alive={m['alive']} suspect={m['suspect']} dead={m['dead']} sum={st['checksum']}" + (
                f" {key}={got!r}" if key else "")
            sums.add(st["checksum"])
            if m["alive"] != n or m["suspect"] or m["dead"] or (key and got != value):
                bad.append(node)
        return Check(not bad and len(sums) == 1, observed, bad or (["checksums differ"] if len(sums) > 1 else []))

    return check


class Writer(threading.Thread):
    """Keeps writing distinct keys through random running tasks with `--ack majority`."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="swarm-writer", daemon=True)
        self.stack = Stack(stack.name, stack.files, stack.image)   # its own docker client
        self.stop = threading.Event()
        self.acked: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.min_running = 10 ** 6
        self.rng = random.Random(13)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                tasks = list(self.stack.running().values())
            except Exception:  # noqa: BLE001
                time.sleep(0.2)
                continue
            self.min_running = min(self.min_running, len(tasks))
            if not tasks:
                time.sleep(0.2)
                continue
            task = self.rng.choice(tasks)
            key, value = f"roll/{i:05d}", f"v{i}"
            i += 1
            t0 = time.time()
            try:
                r = self.stack.gossipctl(task, ["put", key, value, "--ack", WRITER_ACK, "--ack-timeout", "3"],
                                         timeout=12)
                self.acked.append({"key": key, "value": value, "via": task.node_id, "at": t0,
                                   "acked": (r or {}).get("acked"), "s": round(time.time() - t0, 3)})
            except Exception as e:  # noqa: BLE001 - not acknowledged: the container stopped, no majority, ...
                self.failed.append({"key": key, "via": task.node_id, "at": t0, "error": str(e)[:200]})

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        self.stack.close()


def _ts(text: str) -> float:
    """Docker's RFC 3339 timestamps with nanoseconds -> epoch seconds."""
    if not text or text.startswith("0001-"):
        return 0.0
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + (float("0." + frac) if frac else 0.0)


def rolling_windows(stack: Stack, before: dict[str, Task]) -> list[dict[str, Any]]:
    """Per slot: when its old container stopped and its new one started (the slot's down window)."""
    all_tasks = stack.tasks(desired=None)
    windows = []
    for node, old in sorted(before.items()):
        new = [t for t in all_tasks if t.slot == old.slot and t.desired == "running" and t.task_id != old.task_id]
        _, old_finished = stack.container_times(old.container_id)
        new_started = stack.container_times(new[0].container_id)[0] if new and new[0].container_id else ""
        windows.append({"node": node, "old_task": old.task_id[:12], "new_task": new[0].task_id[:12] if new else None,
                        "down_from": _ts(old_finished), "started_at": _ts(new_started),
                        # the new task's last state change: `running`, i.e. its health check passed
                        "up_at": _ts(new[0].timestamp) if new and new[0].state == "running" else 0.0})
    return windows


def max_concurrent_down(windows: list[dict[str, Any]]) -> int:
    events = []
    for w in windows:
        if w["down_from"] and w["up_at"]:
            events += [(w["down_from"], 1), (w["up_at"], -1)]
    level = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        level += d
        peak = max(peak, level)
    return peak


def sample_usage(stack: Stack, seconds: float) -> dict[str, Any]:
    """CPU (share of one core, averaged over `seconds`) and RSS of every running task."""
    tasks = stack.running()
    first = _each(tasks, stack.usage)
    t0 = time.monotonic()
    time.sleep(seconds)
    second = _each(tasks, stack.usage)
    elapsed = time.monotonic() - t0
    cpu = {n: (second[n]["cpu_s"] - first[n]["cpu_s"]) / elapsed for n in tasks
           if not isinstance(first[n], Exception) and not isinstance(second[n], Exception)}
    rss = {n: second[n]["rss"] / 2 ** 20 for n in tasks if not isinstance(second[n], Exception)}
    return {"seconds": round(elapsed, 1), "nodes": len(tasks),
            "cpu_pct_mean": round(100 * sum(cpu.values()) / max(1, len(cpu)), 2),
            "cpu_pct_max": round(100 * max(cpu.values(), default=0), 2),
            "rss_mib_mean": round(sum(rss.values()) / max(1, len(rss)), 1),
            "rss_mib_max": round(max(rss.values(), default=0), 1)}


def check_acked(stack: Stack, acked: list[dict[str, Any]]) -> dict[str, Any]:
    """Read every acknowledged key on every running task: {'missing': {node: [keys]}, ...}."""
    keys = [w["key"] for w in acked]
    expected = {w["key"]: w["value"] for w in acked}
    res = _each(stack.running(), lambda t: stack.read_keys(t, keys))
    missing: dict[str, list[str]] = {}
    for node, got in res.items():
        if isinstance(got, Exception):
            missing[node] = [f"<read failed: {got}>"]
            continue
        wrong = [k for k, v in expected.items() if got.get(k) != v]
        if wrong:
            missing[node] = wrong
    return missing


def run_scenario(stack: Stack, rec: dict[str, Any]) -> None:
    m = rec["metrics"]

    def step(name: str, **info: Any) -> None:
        rec["steps"].append({"step": name, "t": round(time.monotonic() - rec["_t0"], 1), **info})
        _log(f"{name} {info if info else ''}")

    # 1. deploy 5 -> converged
    t0 = time.monotonic()
    stack.deploy()
    step("deployed", replicas=REPLICAS)
    wait_until(converged(stack, REPLICAS), JOIN_S, f"{REPLICAS} tasks to converge", interval=1.0)
    m["converge_s"] = round(time.monotonic() - t0, 2)
    step("converged", seconds=m["converge_s"])

    # 2. write through one task, read on all
    first = sorted(stack.running().items())[0][1]
    stack.gossipctl(first, ["put", "greeting", "hello"])
    t0 = time.monotonic()
    wait_until(converged(stack, REPLICAS, "greeting", "hello"), SPREAD_S, "greeting=hello on every task",
               interval=0.5)
    m["put_read_all_s"] = round(time.monotonic() - t0, 2)
    step("put on one, read on all", via=first.node_id, seconds=m["put_read_all_s"])

    # 3. scale to 7 -> the new tasks join and catch up
    t0 = time.monotonic()
    stack.scale(SCALE_UP)
    wait_until(lambda: len(stack.running()) == SCALE_UP, JOIN_S, f"{SCALE_UP} running tasks", interval=1.0)
    m["scale_up_tasks_s"] = round(time.monotonic() - t0, 2)
    wait_until(converged(stack, SCALE_UP, "greeting", "hello"), JOIN_S,
               f"{SCALE_UP} tasks converged with greeting=hello", interval=1.0)
    m["scale_up_catch_up_s"] = round(time.monotonic() - t0, 2)
    step("scaled up", replicas=SCALE_UP, tasks_running_s=m["scale_up_tasks_s"], caught_up_s=m["scale_up_catch_up_s"])

    # sizing: 7 idle nodes (only their 10 s health checks run), then with the writer running
    rec["usage_idle"] = sample_usage(stack, 10)
    step("usage, idle", **rec["usage_idle"])

    # 4. rolling update under writes
    before = stack.running()
    writer = Writer(stack)
    writer.start()
    rec["usage_writes"] = sample_usage(stack, 10)
    rec["usage_writes"]["writes_per_s"] = round(len(writer.acked) / 10, 1)
    step("usage, writer running", **rec["usage_writes"])
    t0 = time.monotonic()
    stack.update_force()
    step("rolling update started", tasks=len(before))
    try:
        def update_done() -> Check:
            state = stack.update_state()
            if state.startswith("rollback") or state == "paused":
                raise SwarmError(f"the rolling update stopped in state {state!r}")
            now = stack.running()
            replaced = [n for n, t in now.items() if n in before and t.task_id != before[n].task_id]
            return Check(state == "completed" and len(replaced) == len(before),
                         {"state": state, "replaced": f"{len(replaced)}/{len(before)}"})

        wait_until(update_done, UPDATE_S, "the rolling update to complete", interval=1.0)
        m["rolling_update_s"] = round(time.monotonic() - t0, 2)
        step("rolling update completed", seconds=m["rolling_update_s"])
        time.sleep(3)
    finally:
        writer.finish()
    m["writes_attempted"] = len(writer.acked) + len(writer.failed)
    m["writes_acknowledged"] = len(writer.acked)
    m["writes_not_acknowledged"] = len(writer.failed)
    m["min_running_tasks_during_update"] = writer.min_running
    rec["write_failures"] = writer.failed[:20]
    windows = rolling_windows(stack, before)
    rec["rolling_windows"] = windows
    m["max_slots_down_at_once"] = max_concurrent_down(windows)
    down = [w["up_at"] - w["down_from"] for w in windows if w["up_at"] and w["down_from"]]
    m["slot_down_s_max"] = round(max(down), 2) if down else None
    start = [w["started_at"] - w["down_from"] for w in windows if w["started_at"] and w["down_from"]]
    m["slot_restart_s_max"] = round(max(start), 2) if start else None
    assert all(w["new_task"] for w in windows), f"not every task was replaced: {windows}"
    assert m["max_slots_down_at_once"] <= 1, f"more than one slot was down at once: {windows}"
    assert writer.acked, f"the writer got no write acknowledged: {writer.failed[:5]}"

    t0 = time.monotonic()
    wait_until(converged(stack, SCALE_UP), JOIN_S, f"{SCALE_UP} tasks to converge after the update", interval=1.0)
    missing: dict[str, list[str]] = {}

    def all_acked_present() -> Check:
        nonlocal missing
        missing = check_acked(stack, writer.acked)
        return Check(not missing, {n: f"{len(v)} missing, e.g. {v[:3]}" for n, v in missing.items()}, list(missing))

    try:
        wait_until(all_acked_present, SPREAD_S, "every acknowledged write on every task", interval=2.0)
    except WaitTimeout:
        pass
    lost = sorted({k for v in missing.values() for k in v})
    m["writes_lost"] = len(lost)
    m["after_update_converged_s"] = round(time.monotonic() - t0, 2)
    step("acknowledged writes checked", acked=m["writes_acknowledged"], not_acked=m["writes_not_acknowledged"],
         lost=m["writes_lost"])
    assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:10]} (by node: {missing})"

    dropped = _each(stack.running(), lambda t: stack.gossipctl(t, ["status"]).get("dropped") or {})
    rec["dropped_after_update"] = {n: (d if isinstance(d, dict) else str(d)) for n, d in dropped.items()}

    # 5. scale to 3 -> the removed tasks leave (survivors see `left`, never `dead`)
    before = stack.running()
    t0 = time.monotonic()
    stack.scale(SCALE_DOWN)
    wait_until(lambda: len(stack.running()) == SCALE_DOWN, JOIN_S, f"{SCALE_DOWN} running tasks", interval=0.5)
    survivors = stack.running()
    removed = sorted(set(before) - set(survivors))
    seen: dict[str, dict[str, set[str]]] = {s: {r: set() for r in removed} for s in survivors}

    def all_left() -> Check:
        res = _each(survivors, lambda t: stack.gossipctl(t, ["members"], timeout=10))
        observed, bad = {}, []
        for node, members in res.items():
            if isinstance(members, Exception):
                observed[node] = str(members)[:100]
                bad.append(node)
                continue
            status = {x["id"]: x["status"] for x in members}
            for r in removed:
                if r in status:
                    seen[node][r].add(status[r])
            observed[node] = {r: status.get(r, "reaped") for r in removed}
            if any("left" not in seen[node][r] for r in removed):
                bad.append(node)
        return Check(not bad, observed, bad)

    wait_until(all_left, LEAVE_S, f"{', '.join(removed)} seen as left by {', '.join(sorted(survivors))}",
               interval=0.5)
    m["scale_down_left_s"] = round(time.monotonic() - t0, 2)
    rec["scale_down_statuses"] = {s: {r: sorted(v) for r, v in d.items()} for s, d in seen.items()}
    dead = {s: [r for r, v in d.items() if "dead" in v] for s, d in seen.items() if any("dead" in v for v in d.values())}
    step("scaled down", removed=removed, left_s=m["scale_down_left_s"])
    assert not dead, f"removed tasks were seen dead (not left): {dead}"
    wait_until(converged(stack, SCALE_DOWN, "greeting", "hello"), JOIN_S, f"{SCALE_DOWN} tasks converged",
               interval=1.0)

    # 6. stack rm -> nothing left
    t0 = time.monotonic()
    stack.rm()
    wait_until(lambda: _nothing_left(stack), RM_S, "docker stack rm to remove everything", interval=1.0)
    m["stack_rm_s"] = round(time.monotonic() - t0, 2)
    rec["volumes_kept_by_stack_rm"] = stack.remove_volumes()
    step("stack removed", seconds=m["stack_rm_s"], data_volumes_removed_by_test=rec["volumes_kept_by_stack_rm"])


def _nothing_left(stack: Stack) -> Check:
    left = {k: v for k, v in stack.leftovers().items() if v and k != "volumes"}
    return Check(not left, left, list(left))


def run_curve(stack: Stack, rec: dict[str, Any], keys_dir: Path) -> None:
    """The CURVE overlay: keys from the user-facing script, Docker secrets, per-slot seeds."""
    m = rec["metrics"]
    t0 = time.monotonic()
    proc = subprocess.run(["sh", str(SWARM_DIR / "curve-keys.sh"), "7", str(keys_dir)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "GOSSIPMQ_IMAGE": stack.image})
    assert proc.returncode == 0, f"curve-keys.sh failed: {proc.stderr[-800:]}"
    m["curve_keys_s"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    stack.deploy(extra_env={"GOSSIPMQ_CURVE_KEYS": str(keys_dir), "GOSSIPMQ_REPLICAS": str(CURVE_REPLICAS)})
    wait_until(converged(stack, CURVE_REPLICAS), JOIN_S, f"{CURVE_REPLICAS} CURVE tasks to converge", interval=1.0)
    m["curve_converge_s"] = round(time.monotonic() - t0, 2)
    running = stack.running()
    first = sorted(running.items())[0][1]
    stack.gossipctl(first, ["put", "secret", "s3cr3t", "--ack", "all"])
    wait_until(converged(stack, CURVE_REPLICAS, "secret", "s3cr3t"), SPREAD_S, "secret on every CURVE task",
               interval=0.5)
    statuses = _each(running, lambda t: stack.gossipctl(t, ["status"]))
    strategies = {n: (s.get("strategies") or {}).get("security") for n, s in statuses.items()}
    refused = {n: (s.get("dropped") or {}).get("auth_refused", 0) for n, s in statuses.items()}
    rec["curve"] = {"security": strategies, "auth_refused": refused}
    assert all(str(v).lower() in ("curve", "curvesecurity") for v in strategies.values()), \
        f"not every task runs curve: {strategies}"
    assert not any(refused.values()), f"CURVE handshakes refused between members: {refused}"
    t0 = time.monotonic()
    stack.rm()
    wait_until(lambda: _nothing_left(stack), RM_S, "docker stack rm (CURVE stack) to remove everything", interval=1.0)
    m["curve_stack_rm_s"] = round(time.monotonic() - t0, 2)
    stack.remove_volumes()
    rec["steps"].append({"step": "curve", "t": round(time.monotonic() - rec["_t0"], 1), **rec["curve"]})
    _log(f"CURVE stack: converged in {m['curve_converge_s']}s, removed in {m['curve_stack_rm_s']}s")


def _save_logs(stack: Stack, rec: dict[str, Any]) -> None:
    d = RESULTS_DIR / "logs" / "swarm"
    d.mkdir(parents=True, exist_ok=True)
    for t in stack.tasks(desired=None):
        if t.container_id:
            (d / f"{t.node_id}-{t.task_id[:8]}.log").write_text(stack.logs(t, tail=400))
    rec["logs"] = str(d)


def write_results(rec: dict[str, Any]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {k: v for k, v in rec.items() if not k.startswith("_")}
    (RESULTS_DIR / "swarm.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    m = rec["metrics"]
    rows = [
        ("swarm init", "swarm_init_s", "s"), ("deploy 5 -> converged", "converge_s", "s"),
        ("put on one -> read on all 5", "put_read_all_s", "s"),
        ("scale 5 -> 7: tasks running", "scale_up_tasks_s", "s"),
        ("scale 5 -> 7: new tasks caught up (converged, key read)", "scale_up_catch_up_s", "s"),
        ("rolling update of 7 tasks (--force), start -> completed", "rolling_update_s", "s"),
        ("longest restart of one slot (old container exited -> new one started)", "slot_restart_s_max", "s"),
        ("longest time one slot was out (old exited -> new task healthy/running)", "slot_down_s_max", "s"),
        ("slots out at the same time (max)", "max_slots_down_at_once", ""),
        ("running tasks seen by the writer (min)", "min_running_tasks_during_update", ""),
        (f"writes attempted during the update (`put --ack {WRITER_ACK}`)", "writes_attempted", ""),
        ("writes acknowledged", "writes_acknowledged", ""),
        ("writes not acknowledged (task stopping, timeout)", "writes_not_acknowledged", ""),
        ("**acknowledged writes lost**", "writes_lost", ""),
        ("after the update: converged + every acked write checked", "after_update_converged_s", "s"),
        ("scale 7 -> 3: removed tasks seen `left` by every survivor", "scale_down_left_s", "s"),
        ("docker stack rm -> nothing left", "stack_rm_s", "s"),
        ("CURVE: keys for 7 slots (curve-keys.sh)", "curve_keys_s", "s"),
        ("CURVE: deploy 3 -> converged", "curve_converge_s", "s"),
        ("CURVE: docker stack rm -> nothing left (secrets included)", "curve_stack_rm_s", "s"),
    ]
    lines = [
        "# Docker Swarm stack test (`integration/test_swarm.py`)",
        "",
        f"Generated {rec['generated_at']} on {os.cpu_count()} CPUs; image `{rec.get('image')}`; "
        f"{'**passed**' if rec['passed'] else '**FAILED**'} in {rec.get('wall_s', 0):.0f} s. "
        f"Stack: `deploy/swarm/stack.yaml` (+ `curve.yaml` for the CURVE part) on a single-node swarm.",
        "",
        "| step | measured |",
        "|---|---:|",
    ]
    for label, key, unit in rows:
        if key in m and m[key] is not None:
            v = m[key]
            lines.append(f"| {label} | {v:.2f} {unit} |" if unit else f"| {label} | {v} |")
    for key, label in (("usage_idle", "7 idle nodes"), ("usage_writes", "7 nodes, writer running")):
        u = rec.get(key)
        if u:
            lines.append(f"| sizing, {label}: CPU per node mean / max (% of a core, over {u['seconds']} s) | "
                         f"{u['cpu_pct_mean']} / {u['cpu_pct_max']} |")
            lines.append(f"| sizing, {label}: RSS per node mean / max | {u['rss_mib_mean']} / {u['rss_mib_max']} MiB |")
    if rec.get("image_size_mb"):
        lines.append(f"| image size (`{rec['image']}`) | {rec['image_size_mb']} MB |")
    if rec.get("scale_down_statuses"):
        lines += ["", "Statuses the survivors saw for the removed tasks: "
                  + "; ".join(f"{s}: " + ", ".join(f"{r} {'/'.join(v) or 'reaped'}" for r, v in d.items())
                              for s, d in sorted(rec["scale_down_statuses"].items())) + "."]
    if rec.get("error"):
        lines += ["", "## Failure", "", "```", str(rec["error"]).strip()[:3000], "```"]
    (RESULTS_DIR / "swarm.md").write_text("\n".join(lines) + "\n")


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_swarm_stack(node_image):
    rec: dict[str, Any] = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "image": node_image,
                           "metrics": {}, "steps": [], "passed": False, "error": None, "_t0": time.monotonic()}
    failure: BaseException | None = None
    try:
        from integration import _docker  # noqa: PLC0415

        c = _docker.client()
        try:
            rec["image_size_mb"] = round(c.images.get(node_image).attrs["Size"] / 1e6, 1)
        finally:
            c.close()
        with Swarm(log=_log) as swarm, tempfile.TemporaryDirectory(prefix="gmq-swarm-keys-") as keys:
            rec["metrics"]["swarm_init_s"] = round(swarm.init_s, 2)
            stack = Stack(f"gmqt{os.getpid()}", [STACK_FILE], node_image, log=_log)
            curve = Stack(f"gmqc{os.getpid()}", [STACK_FILE, CURVE_FILE], node_image, log=_log)
            try:
                run_scenario(stack, rec)
                run_curve(curve, rec, Path(keys))
                rec["passed"] = True
            except BaseException:
                for s in (stack, curve):
                    try:
                        _save_logs(s, rec)
                    except Exception:  # noqa: BLE001
                        pass
                raise
            finally:
                for s in (stack, curve):   # a failed run still removes its stacks before leaving
                    if any(v for k, v in s.leftovers().items() if k != "volumes"):
                        subprocess.run(["docker", "stack", "rm", s.name], capture_output=True, timeout=120)
                        try:
                            wait_until(lambda s=s: _nothing_left(s), RM_S, f"cleanup of stack {s.name}")
                        except WaitTimeout as e:
                            _log(f"cleanup incomplete: {e}")
                    s.remove_volumes()
                    s.close()
    except SwarmError as e:
        failure = e
    except BaseException as e:  # assertion, WaitTimeout, pytest-timeout
        failure = e
        raise
    finally:
        rec["wall_s"] = round(time.monotonic() - rec["_t0"], 1)
        if failure is not None:
            rec["error"] = f"{type(failure).__name__}: {failure}"
        write_results(rec)
        _log(f"results: {RESULTS_DIR / 'swarm.md'}; metrics {rec['metrics']}")
    if failure is not None:
        pytest.fail(str(failure), pytrace=False)

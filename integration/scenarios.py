"""Scenarios as data, and a runner that executes them against any cluster driver.

A scenario is a name plus a list of operations (plain dataclasses, in the style
of chitchat's scenario tests). Nothing here imports Docker: the runner talks to
a *driver* object with the small interface below, which `cluster.DockerCluster`
implements; an in-memory driver can implement it too and reuse every scenario.

Driver interface (duck-typed):
    start(n) -> list[str]                   nodes: Mapping[str, ...]   running() -> list[str]
    put(node, key, value)   get(node, key) -> value | None   delete(node, key)
    members(node) -> list[{"id","status",...}]   status(node) -> {"checksum","keys","members":{...}}
    each(names, fn) -> {node: result-or-exception}   (parallel; may raise waiting.Abort)
    kill / stop / pause / unpause / restart (node)   partition(groups)   heal()   loss(node, p)
    logs(node, tail=N) -> str   close()

Node selectors (`Nodes`): "all" = the nodes the harness believes running at the
time of the step; "others:n3" = all running nodes except n3; or a list of names.

Metrics: an Expect* step with `metric="detect_s"` records the seconds from the end
of the last action step (Put/Kill/Partition/Heal/Restart/...; Sleep excluded) to
the moment the expectation held - e.g. Kill -> ExpectStatus(..., "dead") = detection time.
`since="Partition"` measures from the end of the last step of that type instead.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from integration.waiting import Check, WaitTimeout, wait_until

Nodes = Union[str, Sequence[str]]  # "all" | "others:<node>" | ["n1", "n2"]


# --------------------------------------------------------------------------- operations
@dataclass(frozen=True)
class Start:
    """Start n nodes n1..nN and wait until each answers."""
    n: int = 5


@dataclass(frozen=True)
class Put:
    node: str
    key: str
    value: str


@dataclass(frozen=True)
class Delete:
    node: str
    key: str


@dataclass(frozen=True)
class Incr:
    """`gossipctl incr KEY N` (a crdt counter key)."""
    node: str
    key: str
    n: int = 1


@dataclass(frozen=True)
class SAdd:
    """`gossipctl sadd KEY MEMBER` (a crdt orset key)."""
    node: str
    key: str
    member: str


@dataclass(frozen=True)
class Only:
    """Run `ops` only in cells whose conflict resolver is one of `resolvers` (e.g. counter and
    set writes, which need crdt keys); other cells skip the step."""
    resolvers: tuple[str, ...]
    ops: tuple

    def __init__(self, resolvers: Sequence[str], ops: Sequence[Any]):
        object.__setattr__(self, "resolvers", tuple(resolvers))
        object.__setattr__(self, "ops", tuple(ops))


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Kill:
    """Crash-stop (SIGKILL)."""
    node: str


@dataclass(frozen=True)
class Stop:
    """Graceful stop (SIGTERM -> the node leaves)."""
    node: str


@dataclass(frozen=True)
class Pause:
    node: str


@dataclass(frozen=True)
class Unpause:
    node: str


@dataclass(frozen=True)
class Restart:
    """Fresh process/container with the same name, address and config."""
    node: str


@dataclass(frozen=True)
class Partition:
    groups: tuple[tuple[str, ...], ...]

    def __init__(self, groups: Sequence[Sequence[str]]):
        object.__setattr__(self, "groups", tuple(tuple(g) for g in groups))


@dataclass(frozen=True)
class Heal:
    pass


@dataclass(frozen=True)
class Loss:
    node: str
    p: float


@dataclass(frozen=True)
class ExpectValue:
    """Every node in `nodes` reads `value` for `key` (None = absent)."""
    nodes: Nodes
    key: str
    value: str | None
    within_s: float = 10.0
    metric: str | None = None
    since: str | None = None


@dataclass(frozen=True)
class ExpectMembers:
    """Every observer sees exactly `alive` as alive (everyone else suspect/dead/left/absent)."""
    observers: Nodes = "all"
    alive: Nodes = "all"
    within_s: float = 15.0
    metric: str | None = None
    since: str | None = None


@dataclass(frozen=True)
class ExpectStatus:
    """Every observer reports `node` with status `status` (or one of a tuple of statuses)."""
    observers: Nodes
    node: str
    status: str | tuple[str, ...]
    within_s: float = 15.0
    metric: str | None = None
    since: str | None = None


@dataclass(frozen=True)
class ExpectConverged:
    """All `nodes` report the same store checksum and key count and, if `members`,
    each sees exactly the running nodes as alive."""
    within_s: float = 15.0
    nodes: Nodes = "all"
    members: bool = True
    metric: str | None = None
    since: str | None = None


@dataclass(frozen=True)
class ExpectAckedWrites:
    """Every acknowledged write is present on all `nodes`: a key written by one node
    only has that node's last acknowledged value; a key written concurrently by
    several nodes has one of the acknowledged values, the same everywhere."""
    within_s: float = 10.0
    nodes: Nodes = "all"
    metric: str | None = None
    since: str | None = None


Op = Union[Start, Put, Delete, Incr, SAdd, Only, Sleep, Kill, Stop, Pause, Unpause, Restart, Partition, Heal, Loss,
           ExpectValue, ExpectMembers, ExpectStatus, ExpectConverged, ExpectAckedWrites]
EXPECTS = (ExpectValue, ExpectMembers, ExpectStatus, ExpectConverged, ExpectAckedWrites)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    ops: tuple[Op, ...]

    def __init__(self, name: str, description: str, ops: Sequence[Op]):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "ops", tuple(ops))


# --------------------------------------------------------------------------- the scenarios
N = 5
JOIN = 20.0       # 5 fresh Python processes on 2 cores
SPREAD = 10.0     # one value to every node (200 ms rounds)
DETECT = 20.0     # dead_after 3 s (swim ~2-4 s, phi ~3 s) + gossip of the verdict; 13 s seen under load
HEAL = 40.0       # TCP retransmission back-off after a DROP partition can add seconds

SCENARIOS: list[Scenario] = [
    Scenario("join_converge", "5 nodes join through the seeds and agree on membership and store", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="converge_s"),
        ExpectConverged(SPREAD),
    ]),
    Scenario("put_read_all", "a put on one node is readable on all; an overwrite elsewhere wins", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Put("n1", "greeting", "hello"),
        ExpectValue("all", "greeting", "hello", SPREAD, metric="converge_s"),
        Put("n4", "greeting", "hola"),
        ExpectValue("all", "greeting", "hola", SPREAD, metric="overwrite_s"),
        ExpectConverged(SPREAD),
    ]),
    Scenario("kill_detect", "SIGKILL one node: the others declare it dead and keep converging", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Put("n1", "before", "1"),
        ExpectValue("all", "before", "1", SPREAD),
        Kill("n5"),
        ExpectStatus("others:n5", "n5", "dead", DETECT, metric="detect_s"),
        Put("n2", "after", "2"),
        ExpectValue("all", "after", "2", SPREAD, metric="converge_s"),
        ExpectConverged(SPREAD),
    ]),
    Scenario("partition_heal", "2|3 partition, writes on both sides, heal: all acknowledged writes survive", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Put("n1", "base", "0"),
        ExpectValue("all", "base", "0", SPREAD),
        Partition([["n1", "n2"], ["n3", "n4", "n5"]]),
        Put("n1", "left", "L"),
        Put("n3", "right", "R"),
        Put("n2", "both", "from-left"),
        Put("n4", "both", "from-right"),
        Only(["crdt"], [Incr("n1", "count/hits", 2), Incr("n3", "count/hits", 3), Incr("n5", "count/hits", 4),
                        SAdd("n2", "set/tags", "left"), SAdd("n4", "set/tags", "right")]),
        ExpectValue(["n1", "n2"], "left", "L", SPREAD),
        ExpectValue(["n3", "n4", "n5"], "right", "R", SPREAD),
        ExpectStatus(["n1", "n2"], "n5", "dead", DETECT, metric="detect_s", since="Partition"),
        ExpectStatus(["n3", "n4", "n5"], "n1", "dead", DETECT),
        Heal(),
        ExpectMembers("all", "all", HEAL, metric="heal_s"),
        ExpectConverged(HEAL, metric="converge_s"),
        ExpectAckedWrites(SPREAD),
    ]),
    Scenario("restart_rejoin", "kill a node, write while it is down, restart it: it rejoins and catches up", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Put("n1", "k1", "v1"),
        ExpectValue("all", "k1", "v1", SPREAD),
        Kill("n3"),
        ExpectStatus("others:n3", "n3", "dead", DETECT, metric="detect_s"),
        Put("n2", "while-down", "x"),
        ExpectValue("all", "while-down", "x", SPREAD),
        Restart("n3"),
        ExpectMembers("all", "all", JOIN, metric="rejoin_s"),
        ExpectValue(["n3"], "while-down", "x", SPREAD, metric="catchup_s"),
        ExpectConverged(SPREAD, metric="converge_s"),
    ]),
]

# Not part of the default matrix (time budget); run with GOSSIPMQ_EXTRA_SCENARIOS=1.
EXTRA_SCENARIOS: list[Scenario] = [
    Scenario("leave_graceful", "SIGTERM a node: the others see it 'left' (not dead), the rest converge", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Stop("n4"),
        ExpectStatus("others:n4", "n4", "left", SPREAD, metric="leave_s"),
        Put("n1", "after-leave", "1"),
        ExpectValue("all", "after-leave", "1", SPREAD),
        ExpectConverged(SPREAD),
    ]),
    Scenario("pause_resume", "freeze a node (docker pause): suspected/dead, then alive again after unpause", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Pause("n5"),
        ExpectStatus("others:n5", "n5", ("suspect", "dead"), DETECT, metric="suspect_s"),
        Put("n1", "while-frozen", "1"),
        Unpause("n5"),
        ExpectMembers("all", "all", JOIN, metric="recover_s"),
        ExpectValue(["n5"], "while-frozen", "1", SPREAD, metric="catchup_s"),
        ExpectConverged(SPREAD),
    ]),
    Scenario("lossy_links", "30% inbound loss on two nodes: writes still reach everyone", [
        Start(N),
        ExpectMembers("all", "all", JOIN, metric="join_s"),
        Loss("n2", 0.3),
        Loss("n4", 0.3),
        Put("n1", "lossy-1", "a"),
        Put("n3", "lossy-2", "b"),
        ExpectAckedWrites(HEAL, metric="spread_s"),
        ExpectConverged(HEAL),
    ]),
]

BY_NAME = {s.name: s for s in SCENARIOS + EXTRA_SCENARIOS}


# --------------------------------------------------------------------------- runner
@dataclass
class StepResult:
    index: int
    op: str
    seconds: float
    ok: bool
    error: str | None = None


@dataclass
class ScenarioResult:
    scenario: str
    label: str
    passed: bool = False
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None


class ScenarioFailure(AssertionError):
    def __init__(self, message: str, result: ScenarioResult):
        super().__init__(message)
        self.result = result


def _fmt_op(op: Op) -> str:
    fields = ", ".join(f"{k}={v!r}" for k, v in vars(op).items() if v is not None)
    return f"{type(op).__name__}({fields})"


class ScenarioRunner:
    """Execute a Scenario against a driver; collects timings and acknowledged writes."""

    def __init__(self, driver: Any, label: str = "", log: Callable[[str], None] = print,
                 poll_interval: float = 0.3, log_tail: int = 12, resolver: str = "lww"):
        self.d = driver
        self.resolver = resolver  # the cell's conflict_resolution: what a concurrently written key must show
        self.label = label
        self.log = log
        self.poll_interval = poll_interval
        self.log_tail = log_tail
        self.acked: dict[str, list[tuple[str, str | None]]] = {}  # key -> [(node, value)]
        self.counters: dict[str, int] = {}        # crdt counter key -> sum of acknowledged increments
        self.sets: dict[str, set[str]] = {}       # crdt orset key -> acknowledged adds

    # ---- selectors
    def nodes(self, sel: Nodes) -> list[str]:
        running = list(self.d.running())
        if sel == "all":
            return running
        if isinstance(sel, str) and sel.startswith("others:"):
            ex = sel.split(":", 1)[1]
            return [n for n in running if n != ex]
        if isinstance(sel, str):
            return [sel]
        return list(sel)

    # ---- run
    def run(self, scenario: Scenario) -> ScenarioResult:
        res = ScenarioResult(scenario.name, self.label)
        t_start = time.monotonic()
        anchor = t_start
        last_of: dict[str, float] = {}  # op type name -> end of its last step
        prefix = f"[{self.label}] {scenario.name}" if self.label else scenario.name
        total = len(scenario.ops)
        for i, op in enumerate(scenario.ops, 1):
            t0 = time.monotonic()
            try:
                self._do(op)
            except Exception as e:  # noqa: BLE001
                dt = time.monotonic() - t0
                msg = f"{type(e).__name__}: {e}" if not isinstance(e, WaitTimeout) else str(e)
                res.steps.append(StepResult(i, _fmt_op(op), dt, False, msg))
                res.seconds = time.monotonic() - t_start
                res.error = (f"{prefix}: step {i}/{total} {_fmt_op(op)} failed after {dt:.1f}s: {msg}"
                             + self._diagnostics(e))
                self.log(res.error)
                raise ScenarioFailure(res.error, res) from e
            t1 = time.monotonic()
            res.steps.append(StepResult(i, _fmt_op(op), t1 - t0, True))
            if isinstance(op, EXPECTS):
                since = last_of.get(op.since, anchor) if op.since else anchor
                if op.metric:
                    res.metrics[op.metric] = round(t1 - since, 3)
                self.log(f"{prefix}: step {i}/{total} {_fmt_op(op)} held after {t1 - since:.2f}s"
                         + (f" ({op.metric})" if op.metric else ""))
            else:
                if not isinstance(op, Sleep):
                    anchor = t1
                last_of[type(op).__name__] = t1
                self.log(f"{prefix}: step {i}/{total} {_fmt_op(op)} done in {t1 - t0:.2f}s")
        res.passed = True
        res.seconds = round(time.monotonic() - t_start, 3)
        self.log(f"{prefix}: PASSED in {res.seconds:.1f}s; metrics: "
                 + ", ".join(f"{k}={v:.2f}s" for k, v in res.metrics.items()))
        return res

    def _diagnostics(self, e: BaseException) -> str:
        bad = e.last.bad if isinstance(e, WaitTimeout) and e.last is not None else []
        out = []
        for n in bad[:3]:
            try:
                tail = self.d.logs(n, tail=self.log_tail).rstrip()
            except Exception as le:  # noqa: BLE001
                tail = f"<no logs: {le}>"
            out.append(f"\n--- last {self.log_tail} log lines of {n} ---\n{tail}")
            out.append(f"\n--- what {n} reports ---\n{self._report(n)}")
        return "".join(out)

    def _report(self, node: str) -> str:
        """What a node that failed a wait says of itself (traffic, drops, members) and what the
        harness did to it (its IP and partition rules): enough to tell a deaf node from a cut one."""
        lines = []
        try:
            st = self.d.status(node)
            keys = ("members", "messages_in", "messages_out", "bytes_in", "bytes_out", "send_blocked",
                    "peers_connected", "dropped", "task_failures", "timer_errors")
            lines.append("status: " + ", ".join(f"{k}={st.get(k)}" for k in keys))
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
            lines.append(f"status: <{exc}>")
        try:
            lines.append("members: " + ", ".join(f"{m.get('id')}={m.get('status')}" for m in self.d.members(node)))
        except Exception as exc:  # noqa: BLE001
            lines.append(f"members: <{exc}>")
        rules = getattr(self.d, "partition_rules", None)
        if rules is not None:
            try:
                lines.append(f"partition rules: {rules(node)}")
            except Exception as exc:  # noqa: BLE001
                lines.append(f"partition rules: <{exc}>")
        return "\n".join(lines)

    def _wait(self, predicate, within: float, what: str) -> float:
        return wait_until(predicate, within, what, interval=self.poll_interval)

    def _do(self, op: Op) -> None:
        d = self.d
        if isinstance(op, Start):
            d.start(op.n)
        elif isinstance(op, Put):
            d.put(op.node, op.key, op.value)
            self.acked.setdefault(op.key, []).append((op.node, op.value))
        elif isinstance(op, Delete):
            d.delete(op.node, op.key)
            self.acked.setdefault(op.key, []).append((op.node, None))
        elif isinstance(op, Incr):
            d.incr(op.node, op.key, op.n)
            self.counters[op.key] = self.counters.get(op.key, 0) + op.n
        elif isinstance(op, SAdd):
            d.sadd(op.node, op.key, op.member)
            self.sets.setdefault(op.key, set()).add(op.member)
        elif isinstance(op, Only):
            if self.resolver in op.resolvers:
                for inner in op.ops:
                    self._do(inner)
        elif isinstance(op, Sleep):
            time.sleep(op.seconds)
        elif isinstance(op, Kill):
            d.kill(op.node)
        elif isinstance(op, Stop):
            d.stop(op.node)
        elif isinstance(op, Pause):
            d.pause(op.node)
        elif isinstance(op, Unpause):
            d.unpause(op.node)
        elif isinstance(op, Restart):
            d.restart(op.node)
        elif isinstance(op, Partition):
            d.partition([list(g) for g in op.groups])
        elif isinstance(op, Heal):
            d.heal()
        elif isinstance(op, Loss):
            d.loss(op.node, op.p)
        elif isinstance(op, ExpectValue):
            self._expect_value(op)
        elif isinstance(op, ExpectMembers):
            self._expect_members(op)
        elif isinstance(op, ExpectStatus):
            self._expect_status(op)
        elif isinstance(op, ExpectConverged):
            self._expect_converged(op)
        elif isinstance(op, ExpectAckedWrites):
            self._expect_acked(op)
        else:
            raise TypeError(f"unknown operation {op!r}")

    # ---- expectations
    def _expect_value(self, op: ExpectValue) -> None:
        nodes = self.nodes(op.nodes)

        def check() -> Check:
            got = self.d.each(nodes, lambda n: self.d.get(n, op.key))
            bad = [n for n in nodes if isinstance(got[n], Exception) or not self.reads_as(got[n], op.value)]
            return Check(not bad, {n: _show(got[n]) for n in nodes}, bad)

        self._wait(check, op.within_s, f"{op.key}={op.value!r} on {','.join(nodes)}")

    @staticmethod
    def _view(members: Any) -> dict[str, str]:
        return {m["id"]: m.get("status", "?") for m in members}

    @staticmethod
    def _show_view(view: dict[str, str]) -> str:
        by: dict[str, list[str]] = {}
        for nid, st in sorted(view.items()):
            by.setdefault(st, []).append(nid)
        return " ".join(f"{st}=[{','.join(ids)}]" for st, ids in by.items()) or "no members"

    def _expect_members(self, op: ExpectMembers) -> None:
        observers = self.nodes(op.observers)
        want = set(self.nodes(op.alive))

        def check() -> Check:
            got = self.d.each(observers, self.d.members)
            observed, bad = {}, []
            for n in observers:
                r = got[n]
                if isinstance(r, Exception):
                    observed[n], ok = _show(r), False
                else:
                    view = self._view(r)
                    observed[n] = self._show_view(view)
                    ok = {i for i, s in view.items() if s == "alive"} == want
                if not ok:
                    bad.append(n)
            return Check(not bad, observed, bad)

        self._wait(check, op.within_s, f"{','.join(observers)} to see exactly {sorted(want)} alive")

    def _expect_status(self, op: ExpectStatus) -> None:
        observers = self.nodes(op.observers)
        wanted = (op.status,) if isinstance(op.status, str) else tuple(op.status)

        def check() -> Check:
            got = self.d.each(observers, self.d.members)
            observed, bad = {}, []
            for n in observers:
                r = got[n]
                st = _show(r) if isinstance(r, Exception) else self._view(r).get(op.node, "absent")
                observed[n] = f"{op.node}:{st}"
                if st not in wanted:
                    bad.append(n)
            return Check(not bad, observed, bad)

        self._wait(check, op.within_s, f"{','.join(observers)} to report {op.node} as {'|'.join(wanted)}")

    def _expect_converged(self, op: ExpectConverged) -> None:
        nodes = self.nodes(op.nodes)

        def check() -> Check:
            got = self.d.each(nodes, self.d.status)
            sums = Counter(r.get("checksum") for r in got.values() if not isinstance(r, Exception))
            ranked = sums.most_common()
            # the majority checksum, unless tied (then no node is "right")
            majority = ranked[0][0] if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]) else None
            observed, bad = {}, []
            for n in nodes:
                r = got[n]
                if isinstance(r, Exception):
                    observed[n] = _show(r)
                    bad.append(n)
                    continue
                alive = (r.get("members") or {}).get("alive")
                observed[n] = f"checksum={str(r.get('checksum'))[:10]} keys={r.get('keys')} alive={alive}"
                if r.get("checksum") != majority or (op.members and alive != len(nodes)):
                    bad.append(n)
            return Check(not bad and len(sums) == 1, observed, bad)

        self._wait(check, op.within_s, f"{','.join(nodes)} to converge (equal checksums"
                   + (f", {len(nodes)} alive each)" if op.members else ")"))

    def expected_values(self) -> dict[str, tuple[set, bool]]:
        """key -> (acceptable values, single_writer)."""
        out = {}
        for key, writes in self.acked.items():
            writers = {w for w, _ in writes}
            if len(writers) == 1:
                out[key] = ({writes[-1][1]}, True)
            else:
                # last acknowledged value of each writer may win under LWW
                last: dict[str, str | None] = {}
                for w, v in writes:
                    last[w] = v
                out[key] = (set(last.values()), False)
        return out

    def reads_as(self, value: Any, want: Any) -> bool:
        """multi_value reads are sibling lists: one sibling `[v]` reads as v."""
        if self.resolver == "multi_value" and isinstance(value, list) and want is not None:
            return value == [want]
        return value == want

    def acceptable(self, value: Any, values: set, single: bool) -> bool:
        """Is `value` (what a node reads) right for a key whose acknowledged values are `values`?

        lww (and a key with one writer): one of them. multi_value, key written concurrently:
        siblings (a list) holding every acknowledged value, since none may be lost before a
        put with the read's context resolves them."""
        if self.resolver == "multi_value" and not single:
            siblings = value if isinstance(value, list) else [value]
            return all(v in siblings for v in values)
        return any(self.reads_as(value, v) for v in values)

    def _expect_acked(self, op: ExpectAckedWrites) -> None:
        nodes = self.nodes(op.nodes)
        expected = self.expected_values()
        # crdt keys: the sum of every acknowledged increment, the union of every acknowledged add
        exact = {**self.counters, **{k: sorted(v) for k, v in self.sets.items()}}

        def check() -> Check:
            got = self.d.each(nodes, lambda n: {k: self.d.get(n, k) for k in [*expected, *exact]})
            observed, bad = {}, []
            for n in nodes:
                r = got[n]
                if isinstance(r, Exception):
                    observed[n], ok = _show(r), False
                else:
                    wrong = {k: v for k, v in r.items()
                             if (k in exact and v != exact[k]) or (k in expected and not self.acceptable(v, *expected[k]))}
                    observed[n] = "ok" if not wrong else f"wrong/missing {wrong}"
                    ok = not wrong
                if not ok:
                    bad.append(n)
            # concurrently written keys: one value everywhere
            if not bad:
                for k, (_, single) in expected.items():
                    vals = {n: got[n][k] for n in nodes}
                    if not single and len({_norm(v) for v in vals.values()}) > 1:
                        observed[f"key {k}"] = f"diverged {vals}"
                        bad.extend(n for n in nodes if n not in bad)
            return Check(not bad, observed, bad)

        self._wait(check, op.within_s, f"all {len(expected) + len(exact)} acknowledged keys on {','.join(nodes)}"
                   + (f" (crdt: {exact})" if exact else ""))


def _norm(v: Any) -> Any:
    """Hashable, order-free form of a read value (siblings are a list)."""
    return tuple(sorted(map(repr, v))) if isinstance(v, list) else v


def _show(v: Any) -> str:
    if isinstance(v, Exception):
        return f"<{type(v).__name__}: {str(v)[:160]}>"
    return repr(v)

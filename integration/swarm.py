"""Docker Swarm driver for integration/test_swarm.py: a single-node swarm made (and always left)
by the test, the stack of deploy/swarm/ deployed on it, and `gossipctl` inside its tasks.

    with Swarm(log=print) as swarm:                     # docker swarm init ... docker swarm leave --force
        stack = Stack("gmqt123", [STACK_FILE], image)   # docker stack deploy -c deploy/swarm/stack.yaml gmqt123
        stack.deploy(); tasks = stack.running()         # {"gossipmq-1": Task, ...}
        stack.gossipctl(tasks["gossipmq-1"], ["put", "k", "v"])
        stack.rm(); stack.leftovers()

Only the docker CLI can deploy a stack; tasks, containers and execs go through docker-py.
The swarm's node carries the label `gossipmq.test.swarm=<host>:<pid>` so that a swarm left over
by a test process that died (SIGKILL, power loss) is recognised and left by the next run, while
a swarm somebody else made is never touched.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration import _docker

REPO_ROOT = Path(__file__).resolve().parent.parent
SWARM_DIR = REPO_ROOT / "deploy" / "swarm"
STACK_FILE = SWARM_DIR / "stack.yaml"
CURVE_FILE = SWARM_DIR / "curve.yaml"
SERVICE = "gossipmq"                  # the service's name inside the stack
NODE_LABEL = "gossipmq.test.swarm"
STACK_LABEL = "com.docker.stack.namespace"
GWBRIDGE = "docker_gwbridge"          # made by `swarm init`, left behind by `swarm leave`
TEST_STACK = re.compile(r"gmq[a-z](\d+)$")   # stack names the test uses: gmqt<pid>, gmqc<pid>


class SwarmError(RuntimeError):
    """The swarm could not be created, used or left; the message says what to do."""


def docker(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run the docker CLI; SwarmError with its stderr when `check` and it fails."""
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise SwarmError(f"`docker {' '.join(args)}` did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise SwarmError("the docker CLI is not installed (the stack test needs `docker stack deploy`)") from None
    if check and proc.returncode != 0:
        raise SwarmError(f"`docker {' '.join(args)}` failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Swarm:
    """A single-node swarm on the local engine, made by this process and always left.

    Refuses (SwarmError) to use a swarm it did not make; leaves one made by a test process
    on this host that no longer runs."""

    def __init__(self, log=print, advertise: str = "127.0.0.1") -> None:
        self.log = log
        self.advertise = advertise
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.created = False
        self._gwbridge_existed = True
        self.init_s = 0.0

    # -- state ------------------------------------------------------------------------------
    @staticmethod
    def state() -> str:
        """inactive | pending | active | error | locked"""
        return docker("info", "--format", "{{.Swarm.LocalNodeState}}", timeout=30).stdout.strip()

    @staticmethod
    def _owner_label() -> str:
        node_id = docker("info", "--format", "{{.Swarm.NodeID}}", timeout=30, check=False).stdout.strip()
        proc = docker("node", "inspect", node_id or "self", "--format", f'{{{{index .Spec.Labels "{NODE_LABEL}"}}}}',
                      timeout=30, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def _leftover(self, owner: str) -> bool:
        host, _, pid = owner.rpartition(":")
        return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Swarm:
        self.init()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()

    def init(self) -> None:
        state = self.state()
        if state in ("active", "pending", "error", "locked"):
            owner = self._owner_label()
            if owner and self._leftover(owner):
                self.log(f"leaving a swarm left over by a dead test process ({owner})")
                docker("swarm", "leave", "--force", timeout=60, check=False)
                self._remove_gwbridge()
                self._remove_dead_stacks()
            else:
                raise SwarmError(
                    f"this Docker engine is already part of a swarm (state {state!r}, "
                    f"{'made by ' + owner if owner else 'not made by this test'}); the stack test makes and "
                    f"leaves its own single-node swarm and never touches one it did not make. Leave it first "
                    f"(`docker swarm leave --force`) or run the test on another engine.")
        self._gwbridge_existed = docker("network", "inspect", GWBRIDGE, timeout=30, check=False).returncode == 0
        t0 = time.monotonic()
        proc = docker("swarm", "init", "--advertise-addr", self.advertise, "--listen-addr",
                      f"{self.advertise}:2377", timeout=120, check=False)
        if proc.returncode != 0:
            raise SwarmError(f"cannot create a single-node Docker swarm on this engine: "
                             f"`docker swarm init --advertise-addr {self.advertise}` failed (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[-600:]}")
        self.created = True
        self.init_s = time.monotonic() - t0
        try:
            node_id = docker("info", "--format", "{{.Swarm.NodeID}}", timeout=30).stdout.strip()
            docker("node", "update", "--label-add", f"{NODE_LABEL}={self.owner}", node_id, timeout=30)
        except BaseException:
            self.leave()
            raise
        self.log(f"swarm initialised in {self.init_s:.1f}s (owner {self.owner})")

    def leave(self) -> None:
        """`docker swarm leave --force` (twice if needed), then remove docker_gwbridge if the
        swarm made it. Only a swarm this object created is left."""
        if not self.created:
            return
        last = ""
        for _ in range(3):
            proc = docker("swarm", "leave", "--force", timeout=120, check=False)
            if proc.returncode == 0 or self.state() == "inactive":
                break
            last = (proc.stderr or proc.stdout).strip()
            time.sleep(2)
        self.created = False
        if self.state() != "inactive":
            raise SwarmError(f"could not leave the swarm: {last}; run `docker swarm leave --force`")
        if not self._gwbridge_existed:
            self._remove_gwbridge()
        self.log("left the swarm")

    @staticmethod
    def _remove_dead_stacks() -> None:
        """Containers and volumes of test stacks whose test process is gone (left by a run that
        was killed before its cleanup)."""
        client = _docker.client()
        try:
            for kind in (client.containers.list(all=True, filters={"label": STACK_LABEL}),
                         client.volumes.list(filters={"label": STACK_LABEL})):
                for obj in kind:
                    labels = (obj.attrs.get("Config", {}) or {}).get("Labels") or obj.attrs.get("Labels") or {}
                    m = TEST_STACK.match(labels.get(STACK_LABEL, ""))
                    if m and not _pid_alive(int(m.group(1))):
                        try:
                            obj.remove(force=True)
                        except Exception:  # noqa: BLE001 - already gone
                            pass
        finally:
            client.close()

    def _remove_gwbridge(self) -> None:
        for _ in range(10):
            if docker("network", "inspect", GWBRIDGE, timeout=30, check=False).returncode != 0:
                return
            if docker("network", "rm", GWBRIDGE, timeout=30, check=False).returncode == 0:
                return
            time.sleep(1)


@dataclass
class Task:
    slot: int
    task_id: str
    container_id: str
    state: str                    # swarm task state: new ... starting, running, shutdown, ...
    desired: str
    created: str
    timestamp: str                # of the last state change

    @property
    def node_id(self) -> str:
        return f"{SERVICE}-{self.slot}"


class ExecFailed(RuntimeError):
    def __init__(self, node: str, argv: Sequence[str], code: int, out: str, err: str) -> None:
        self.node, self.argv, self.code, self.out, self.err = node, list(argv), code, out, err
        what = "timed out" if code == 124 else f"exit code {code}"
        super().__init__(f"{node}: `{' '.join(argv)}` {what}: {(err.strip() or out.strip())[-300:]}")


class Stack:
    """The gossipmq stack of deploy/swarm/ under the name `name`."""

    def __init__(self, name: str, files: Sequence[Path], image: str, log=print) -> None:
        self.name = name
        self.files = list(files)
        self.image = image
        self.service = f"{name}_{SERVICE}"
        self.log = log
        self.client = _docker.client()

    def close(self) -> None:
        self.client.close()

    # -- docker CLI -------------------------------------------------------------------------
    def deploy(self, extra_env: dict[str, str] | None = None) -> None:
        args = ["stack", "deploy"]
        for f in self.files:
            args += ["-c", str(f)]
        docker(*args, self.name, timeout=180, env={"GOSSIPMQ_IMAGE": self.image, **(extra_env or {})})

    def scale(self, replicas: int) -> None:
        docker("service", "scale", "--detach", f"{self.service}={replicas}", timeout=60)

    def update_force(self) -> None:
        """A rolling update of every task with the stack's update_config (one at a time)."""
        docker("service", "update", "--detach", "--force", self.service, timeout=60)

    def update_state(self) -> str:
        """'' (never updated) | updating | completed | paused | rollback_started | ..."""
        attrs = self.client.api.inspect_service(self.service)
        return ((attrs.get("UpdateStatus") or {}).get("State") or "")

    def rm(self) -> None:
        docker("stack", "rm", self.name, timeout=120)

    # -- tasks ------------------------------------------------------------------------------
    def tasks(self, desired: str | None = "running") -> list[Task]:
        filters: dict[str, Any] = {"service": self.service}
        if desired:
            filters["desired-state"] = desired
        out = []
        for t in self.client.api.tasks(filters=filters):
            status = t.get("Status") or {}
            out.append(Task(slot=int(t.get("Slot") or 0), task_id=t["ID"],
                            container_id=((status.get("ContainerStatus") or {}).get("ContainerID") or ""),
                            state=status.get("State", ""), desired=t.get("DesiredState", ""),
                            created=t.get("CreatedAt", ""), timestamp=status.get("Timestamp", "")))
        return out

    def running(self) -> dict[str, Task]:
        """Member id -> task, for tasks that swarm reports running (healthy, when there is a
        health check) and that are meant to keep running."""
        return {t.node_id: t for t in self.tasks("running") if t.state == "running" and t.container_id}

    def container_times(self, container_id: str) -> tuple[str, str]:
        """(StartedAt, FinishedAt) of a task's container (kept in the task history)."""
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except Exception:  # noqa: BLE001 - pruned from the history
            return "", ""
        return state.get("StartedAt", ""), state.get("FinishedAt", "")

    # -- exec -------------------------------------------------------------------------------
    def exec(self, task: Task, argv: Sequence[str], timeout: float = 15.0, stdin: str | None = None
             ) -> tuple[int, str, str]:
        cmd = ["timeout", "-k", "2", f"{timeout:g}", *argv]
        env = {"GMQ_STDIN": stdin} if stdin is not None else None   # no stdin without a tty: pass data this way
        code, (out, err) = self.client.containers.get(task.container_id).exec_run(cmd, demux=True, environment=env)
        return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def gossipctl(self, task: Task, args: Sequence[str], ok: Sequence[int] = (0,), timeout: float = 15.0) -> Any:
        """`gossipctl <args> --json` in the task (the image's environment says where the node is)."""
        argv = ["gossipctl", *args, "--json"]
        code, out, err = self.exec(task, argv, timeout)
        if code not in ok:
            raise ExecFailed(task.node_id, argv, code, out, err)
        text = out.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ExecFailed(task.node_id, argv, code, out, err + " (stdout is not JSON)") from None

    def read_keys(self, task: Task, keys: Sequence[str]) -> dict[str, Any]:
        """Values of many keys in one exec (None when absent), through the control channel."""
        script = (
            "import json, os\n"
            "from gossipmq.transports.control import request\n"
            "ep = os.environ['GOSSIPMQ_CONTROL']\n"
            "out = {}\n"
            "for k in json.loads(os.environ['GMQ_STDIN']):\n"
            "    r = request(ep, {'cmd': 'get', 'key': k})\n"
            "    out[k] = None if r is None else r.get('value')\n"
            "print(json.dumps(out))\n"
        )
        code, out, err = self.exec(task, ["python3", "-c", script], timeout=30, stdin=json.dumps(list(keys)))
        if code != 0:
            raise ExecFailed(task.node_id, ["python3", "-c", "<read keys>"], code, out, err)
        return json.loads(out)

    def usage(self, task: Task) -> dict[str, float]:
        """The task container's cgroup counters now: CPU time (s), memory usage and RSS (bytes)."""
        st = self.client.api.stats(task.container_id, stream=False, one_shot=True)
        mem = st.get("memory_stats") or {}
        stats = mem.get("stats") or {}
        rss = stats.get("rss", stats.get("anon", 0))    # cgroup v1 / v2
        return {"cpu_s": (st.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage", 0) / 1e9,
                "mem": float(mem.get("usage", 0)), "rss": float(rss)}

    def logs(self, task: Task, tail: int = 40) -> str:
        try:
            return self.client.containers.get(task.container_id).logs(tail=tail).decode(errors="replace")
        except Exception as e:  # noqa: BLE001
            return f"<no logs: {e}>"

    # -- what is left -----------------------------------------------------------------------
    def leftovers(self) -> dict[str, list[str]]:
        """Everything of this stack that still exists (the data volume is kept by design and
        listed apart, under `volumes`)."""
        label = f"{STACK_LABEL}={self.name}"
        c = self.client
        return {
            "services": [s.name for s in c.services.list(filters={"label": label})],
            "containers": [x.name for x in c.containers.list(all=True, filters={"label": label})],
            "networks": [n.name for n in c.networks.list(filters={"label": label})],
            "configs": [x.name for x in c.configs.list(filters={"label": label})],
            "secrets": [x.name for x in c.secrets.list(filters={"label": label})],
            "volumes": [v.name for v in c.volumes.list(filters={"label": label})],
        }

    def remove_volumes(self) -> list[str]:
        removed = []
        for v in self.client.volumes.list(filters={"label": f"{STACK_LABEL}={self.name}"}):
            for _ in range(10):
                try:
                    v.remove(force=True)
                    removed.append(v.name)
                    break
                except Exception:  # noqa: BLE001 - a container still holds it
                    time.sleep(1)
        return removed

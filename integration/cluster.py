"""DockerCluster: N gossipctl nodes in containers (testcontainers 4.x) plus fault injection.

    from integration.cluster import DockerCluster
    with DockerCluster(image, options={"dissemination": "push"}) as c:
        c.start(5)                                   # n1..n5 on a private network
        c.exec_json("n1", ["put", "k", "v"])
        c.partition([["n1", "n2"], ["n3", "n4", "n5"]]); c.heal()

* Ryuk is disabled (it cannot be pulled: no registry). Every container and the
  network carry the label `gossipmq.test=<session id>` (plus owner pid/host), and
  are removed by label on close(), at interpreter exit, and - for leftovers of
  dead sessions - when a new cluster is created.
* Nodes are reached only through `docker exec` (no published ports).
* Faults: kill (SIGKILL), stop (SIGTERM = graceful leave), pause/unpause,
  partition/heal (iptables DROP inside the containers, NET_ADMIN), loss (iptables
  statistic match), restart (fresh container, same alias and config).
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402

from integration import _docker  # sets TESTCONTAINERS_RYUK_DISABLED before testcontainers is imported
from integration.config import CONFIG_PATH, node_config
from integration.tomlw import dumps as toml_dumps
from integration.waiting import Abort, Check, WaitTimeout, wait_until

__all__ = ["DockerCluster", "ExecError", "NodeDown", "Check", "WaitTimeout", "wait_until",
           "cleanup_leftovers", "SESSION_ID", "LABEL"]

LABEL = "gossipmq.test"
LABEL_CLUSTER = "gossipmq.test.cluster"
LABEL_PID = "gossipmq.test.pid"
LABEL_HOST = "gossipmq.test.host"
LABEL_CREATED = "gossipmq.test.created"
LEFTOVER_MAX_AGE_S = 6 * 3600

# One id per Python process (a pytest session); a cluster adds its own short id.
SESSION_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

# The image runs gossipctl as an unprivileged user (root Dockerfile: USER gossipmq, uid/gid 10001);
# files copied into a node (keys) are owned by it, and iptables faults are exec'd as root.
NODE_UID = NODE_GID = 10001

PART_CHAIN = "GMQ_PART"
LOSS_CHAIN = "GMQ_LOSS"


class ExecError(RuntimeError):
    """A command inside a node container failed."""

    def __init__(self, node: str, argv: Sequence[str], code: int, stdout: str, stderr: str):
        self.node, self.argv, self.code, self.stdout, self.stderr = node, list(argv), code, stdout, stderr
        what = "timed out" if code == 124 else f"exit code {code}"
        out = (stderr.strip() or stdout.strip())[-300:]
        super().__init__(f"{node}: `{' '.join(argv)}` {what}: {out}")


class _NodeContainer(DockerContainer):
    """A DockerContainer whose copied-in files belong to the image's node user (a secret key
    must be mode 0600 *and* readable by the node)."""

    def _transfer_into_container(self, transferable, destination_in_container: str, mode: int) -> None:
        import io  # noqa: PLC0415
        import tarfile  # noqa: PLC0415

        if not isinstance(transferable, bytes):
            return super()._transfer_into_container(transferable, destination_in_container, mode)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            # (missing parent directories are created by the engine: root, 0755, readable)
            info = tarfile.TarInfo(destination_in_container.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(transferable), mode, NODE_UID, NODE_GID
            tar.addfile(info, io.BytesIO(transferable))
        if not self._container.put_archive(path="/", data=buf.getvalue()):
            raise OSError(f"failed to put {destination_in_container} into the container")


class NodeDown(Abort):
    """The node's container is not running (crashed, killed, or exited)."""


@dataclass
class _Node:
    name: str
    config: dict[str, Any]
    generation: int = 0
    container: DockerContainer | None = None
    state: str = "new"  # running | paused | killed | stopped
    old_logs: list[str] = field(default_factory=list)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # path -> (content, mode), e.g. keys


def _labels(cluster_id: str) -> dict[str, str]:
    return {
        LABEL: SESSION_ID,
        LABEL_CLUSTER: cluster_id,
        LABEL_PID: str(os.getpid()),
        LABEL_HOST: socket.gethostname(),
        LABEL_CREATED: str(int(time.time())),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_leftover(labels: Mapping[str, str]) -> bool:
    """A labelled object belongs to a dead session (or is very old)."""
    if labels.get(LABEL) == SESSION_ID:
        return False
    try:
        if time.time() - int(labels.get(LABEL_CREATED, "0")) > LEFTOVER_MAX_AGE_S:
            return True
    except ValueError:
        return True
    if labels.get(LABEL_HOST) != socket.gethostname():
        return False  # another machine sharing the engine: only the age rule applies
    try:
        return not _pid_alive(int(labels.get(LABEL_PID, "0")))
    except ValueError:
        return True


def _remove_by_label(client, selector: str, only_leftovers: bool) -> tuple[int, int]:
    """Remove containers then networks matching the label selector; returns counts."""
    n_c = n_n = 0
    for c in client.containers.list(all=True, filters={"label": selector}):
        if only_leftovers and not _is_leftover(c.labels):
            continue
        try:
            c.remove(force=True, v=True)
            n_c += 1
        except Exception:  # noqa: BLE001 - already gone
            pass
    for n in client.networks.list(filters={"label": selector}):
        labels = (n.attrs or {}).get("Labels") or {}
        if only_leftovers and not _is_leftover(labels):
            continue
        try:
            n.remove()
            n_n += 1
        except Exception:  # noqa: BLE001
            pass
    return n_c, n_n


def cleanup_leftovers() -> tuple[int, int]:
    """Remove containers/networks labelled `gossipmq.test` whose owning process is gone."""
    client = _docker.client()
    try:
        return _remove_by_label(client, LABEL, only_leftovers=True)
    finally:
        client.close()


def cleanup_session() -> tuple[int, int]:
    """Remove everything this process labelled (used at exit)."""
    client = _docker.client()
    try:
        return _remove_by_label(client, f"{LABEL}={SESSION_ID}", only_leftovers=False)
    finally:
        client.close()


_atexit_registered = False
_atexit_lock = threading.Lock()


def _register_atexit() -> None:
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(lambda: _docker.docker_unavailable_reason() is None and cleanup_session())
            _atexit_registered = True


class DockerCluster:
    """A gossipmq cluster of containers on one user-defined Docker network."""

    def __init__(
        self,
        image: str,
        options: Mapping[str, str] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        timing: Mapping[str, int] | None = None,
        startup_timeout: float = 40.0,
        exec_timeout: float = 15.0,
        log_fn=None,
    ):
        reason = _docker.docker_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.image = image
        self.options = dict(options or {})
        self.overrides = dict(overrides or {})
        self.timing = dict(timing or {})
        self.startup_timeout = startup_timeout
        self.exec_timeout = exec_timeout
        self.cluster_id = uuid.uuid4().hex[:6]
        self.labels = _labels(self.cluster_id)
        self.nodes: dict[str, _Node] = {}
        self.network: Network | None = None
        self._partition: list[list[str]] | None = None
        self._client = _docker.client()
        self._pool = cf.ThreadPoolExecutor(max_workers=8, thread_name_prefix="gmq-exec")
        self._log = log_fn or (lambda msg: None)
        self._closed = False
        try:
            self._client.images.get(image)
        except Exception as e:  # noqa: BLE001 - testcontainers would try to *pull* a missing image
            self._client.close()
            raise RuntimeError(f"image {image!r} not found locally (no registry to pull from); "
                               f"build it with `python -m integration.image`: {e}") from None
        _register_atexit()
        removed = _remove_by_label(self._client, LABEL, only_leftovers=True)
        if any(removed):
            self._log(f"removed leftovers of dead sessions: {removed[0]} containers, {removed[1]} networks")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> DockerCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, n: int, names: Sequence[str] | None = None) -> list[str]:
        """Start n nodes (aliases n1..nN) and wait until each answers `gossipctl status`."""
        names = list(names or [f"n{i}" for i in range(1, n + 1)])
        if self.network is None:
            self.network = Network(docker_network_kw={"labels": dict(self.labels)}).create()
        all_names = list(dict.fromkeys([*self.nodes, *names]))
        keys: dict[str, dict] = {}
        if self.options.get("security") == "curve":
            from integration.keys import cell_key_files  # noqa: PLC0415

            t0 = time.monotonic()
            keys = cell_key_files("-".join(self.options.values()), all_names)
            self._log(f"CURVE keys for {','.join(all_names)} ready in {time.monotonic() - t0:.1f}s")
        for name in names:
            cfg = node_config(name, all_names, self.options, self.overrides, self.timing)
            self.nodes[name] = _Node(name, cfg, files=dict(keys.get(name, {})))
        for name in names:
            self._start_container(self.nodes[name])
        self.wait_ready(names)
        return names

    def _container_name(self, node: _Node) -> str:
        return f"gmq-{SESSION_ID}-{self.cluster_id}-{node.name}-{node.generation}"

    def _start_container(self, node: _Node) -> None:
        assert self.network is not None
        node.generation += 1
        c = (
            _NodeContainer(self.image)
            .with_name(self._container_name(node))
            .with_network(self.network)
            .with_network_aliases(node.name)
            .with_copy_into_container(toml_dumps(node.config).encode(), CONFIG_PATH)
            .with_command(["run", "--config", CONFIG_PATH])   # the image's entrypoint is gossipctl
            .with_kwargs(cap_add=["NET_ADMIN"], hostname=node.name, init=True,
                         labels={**self.labels, "gossipmq.node": node.name})
        )
        for path, (content, mode) in node.files.items():
            c.with_copy_into_container(content, path, mode)
        c.start()
        node.container, node.state = c, "running"
        self._log(f"started {node.name} as {self._container_name(node)}")

    def wait_ready(self, names: Sequence[str] | None = None, timeout: float | None = None) -> float:
        names = list(names or self.running())

        def ready() -> Check:
            res = self.each(names, lambda n: self._probe(n, ["status"]))
            bad = [n for n, r in res.items() if isinstance(r, Exception)]
            return Check(not bad, {n: (str(r) if isinstance(r, Exception) else "ready") for n, r in res.items()}, bad)

        return wait_until(ready, timeout or self.startup_timeout, f"nodes {','.join(names)} to answer `gossipctl status`")

    def close(self, save_logs_to: Path | str | None = None) -> None:
        """Save logs (optional) and remove every container and the network of this cluster."""
        if self._closed:
            return
        self._closed = True
        try:
            if save_logs_to is not None:
                self.save_logs(save_logs_to)
        finally:
            _remove_by_label(self._client, f"{LABEL_CLUSTER}={self.cluster_id}", only_leftovers=False)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._client.close()

    # ------------------------------------------------------------------ exec
    def _container(self, node: str) -> DockerContainer:
        n = self.nodes.get(node)
        if n is None or n.container is None:
            raise KeyError(f"unknown node {node!r} (nodes: {', '.join(self.nodes)})")
        return n.container

    def exec(self, node: str, argv: Sequence[str], timeout: float | None = None,
             user: str = "") -> tuple[int, str, str]:
        """Run argv in the node's container (as the image's user, or `user`); returns
        (exit code, stdout, stderr). Bounded by coreutils `timeout` inside the container (exit code 124)."""
        t = timeout or self.exec_timeout
        wrapped = self._container(node).get_wrapped_container()
        cmd = ["timeout", "-k", "2", f"{t:g}", *argv]
        try:
            code, (out, err) = wrapped.exec_run(cmd, demux=True, user=user)
        except Exception as e:  # noqa: BLE001 - e.g. 409 container not running / paused
            state = self._container_state(node)
            if state not in ("running",):
                raise NodeDown(f"{node}: container is {state}; cannot exec {' '.join(argv)}") from None
            raise ExecError(node, argv, -1, "", str(e)) from None
        return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def gossipctl(self, node: str, args: Sequence[str], timeout: float | None = None) -> tuple[int, str, str]:
        return self.exec(node, ["gossipctl", *args, "--config", CONFIG_PATH, "--json"], timeout)

    def exec_json(self, node: str, args: Sequence[str], ok_codes: Sequence[int] = (0,),
                  timeout: float | None = None) -> Any:
        """`gossipctl <args> --config <node config> --json` inside `node`, parsed.

        Returns None for an allowed non-zero exit code with empty stdout."""
        code, out, err = self.gossipctl(node, args, timeout)
        argv = ["gossipctl", *args, "--json"]
        if code not in ok_codes:
            raise ExecError(node, argv, code, out, err)
        if not out.strip():
            if code != 0:
                return None
            raise ExecError(node, argv, code, out, err + " (empty stdout, expected JSON)")
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            # tolerate stray lines before the JSON document
            for line in reversed(out.strip().splitlines()):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
            raise ExecError(node, argv, code, out, err + " (stdout is not JSON)") from None

    def _probe(self, node: str, args: Sequence[str]) -> Any:
        if self._container_state(node) != "running":
            logs = self.logs(node, tail=15)
            raise NodeDown(f"{node}: container {self._container_state(node)}; last log lines:\n{logs}")
        return self.exec_json(node, args, timeout=10)

    def each(self, names: Sequence[str], fn) -> dict[str, Any]:
        """Run fn(node) for each node in parallel; exceptions are returned as values
        (NodeDown is re-raised: waiting cannot help)."""
        futs = {n: self._pool.submit(fn, n) for n in names}
        out: dict[str, Any] = {}
        for n, f in futs.items():
            try:
                out[n] = f.result()
            except NodeDown:
                raise
            except Exception as e:  # noqa: BLE001
                out[n] = e
        return out

    def map_json(self, names: Sequence[str], args: Sequence[str]) -> dict[str, Any]:
        """exec_json on several nodes in parallel; failures come back as exception values."""
        return self.each(names, lambda n: self.exec_json(n, args, timeout=10))

    # convenience wrappers around the CLI contract
    def put(self, node: str, key: str, value: str) -> Any:
        return self.exec_json(node, ["put", key, value])

    def get(self, node: str, key: str) -> Any:
        """The value, or None when the key is absent (gossipctl exits 1)."""
        r = self.exec_json(node, ["get", key], ok_codes=(0, 1))
        return None if r is None else r.get("value")

    def incr(self, node: str, key: str, n: int = 1) -> Any:
        if n < 0:
            raise ValueError("negative increments need `--`, which would swallow --config")
        return self.exec_json(node, ["incr", key, str(n)])

    def sadd(self, node: str, key: str, member: str) -> Any:
        return self.exec_json(node, ["sadd", key, member])

    def delete(self, node: str, key: str) -> Any:
        return self.exec_json(node, ["delete", key])

    def members(self, node: str) -> list[dict[str, Any]]:
        return self.exec_json(node, ["members"])

    def status(self, node: str) -> dict[str, Any]:
        return self.exec_json(node, ["status"])

    def logs(self, node: str, tail: int | None = None, all_generations: bool = False) -> str:
        n = self.nodes[node]
        text = ""
        if n.container is not None:
            try:
                raw = n.container.get_wrapped_container().logs(stdout=True, stderr=True,
                                                               tail=tail if tail else "all")
                text = raw.decode(errors="replace")
            except Exception as e:  # noqa: BLE001
                text = f"<logs unavailable: {e}>"
        if all_generations:
            return "".join(n.old_logs) + text
        return text

    def save_logs(self, directory: Path | str) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in self.nodes:
            (d / f"{name}.log").write_text(self.logs(name, all_generations=True))

    # ------------------------------------------------------------------ state
    def _container_state(self, node: str) -> str:
        try:
            w = self._container(node).get_wrapped_container()
            w.reload()
            return w.status  # created | running | paused | exited | dead
        except Exception:  # noqa: BLE001
            return "removed"

    def running(self) -> list[str]:
        """Nodes the harness has not killed/stopped/paused (the ones expected to answer)."""
        return [n for n, v in self.nodes.items() if v.state == "running"]

    def ip(self, node: str) -> str:
        assert self.network is not None
        w = self._container(node).get_wrapped_container()
        w.reload()
        return w.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    # ------------------------------------------------------------------ faults
    def kill(self, node: str) -> None:
        """Crash-stop: SIGKILL the node (no graceful leave). The container is kept for its logs."""
        n = self.nodes[node]
        w = self._container(node).get_wrapped_container()
        if n.state == "paused":
            w.unpause()
        w.kill(signal="SIGKILL")
        n.state = "killed"

    def stop(self, node: str, timeout: int = 10) -> None:
        """Graceful stop: SIGTERM (the node leaves), SIGKILL after `timeout` seconds."""
        n = self.nodes[node]
        w = self._container(node).get_wrapped_container()
        if n.state == "paused":
            w.unpause()
        w.stop(timeout=timeout)
        n.state = "stopped"

    def leave(self, node: str) -> Any:
        return self.exec_json(node, ["leave"])

    def pause(self, node: str) -> None:
        self._container(node).get_wrapped_container().pause()
        self.nodes[node].state = "paused"

    def unpause(self, node: str) -> None:
        self._container(node).get_wrapped_container().unpause()
        self.nodes[node].state = "running"

    def restart(self, node: str, wait: bool = True) -> None:
        """Replace the node by a fresh container with the same alias and config.

        The old container (if still running) is killed first; its logs are kept.
        An active partition is re-applied (the new container has a new IP)."""
        n = self.nodes[node]
        if n.container is not None:
            n.old_logs.append(f"===== {node} generation {n.generation} =====\n" + self.logs(node))
            try:
                n.container.get_wrapped_container().remove(force=True, v=True)
            except Exception:  # noqa: BLE001
                pass
        self._start_container(n)
        if wait:
            self.wait_ready([node])
        if self._partition is not None:
            self._apply_partition()

    def _sh(self, node: str, script: str) -> None:
        code, out, err = self.exec(node, ["sh", "-c", script], timeout=20, user="root")   # iptables
        if code != 0:
            raise ExecError(node, ["sh", "-c", script], code, out, err)

    @staticmethod
    def _chain_script(chain: str, hooks: Sequence[str] = ("INPUT", "OUTPUT")) -> str:
        """Create (if needed), hook (if needed) and flush our own iptables chain."""
        s = f"iptables -w -N {chain} 2>/dev/null || true"
        for hook in hooks:
            s += f"; iptables -w -C {hook} -j {chain} 2>/dev/null || iptables -w -I {hook} -j {chain}"
        return s + f"; iptables -w -F {chain}"

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        """Cut the cluster into groups: traffic between different groups is DROPped
        (both directions, by IP, inside every running container). Every running
        node must be in exactly one group."""
        groups = [list(g) for g in groups]
        listed = [n for g in groups for n in g]
        if len(listed) != len(set(listed)):
            raise ValueError(f"a node appears in two groups: {groups}")
        unknown = set(listed) - set(self.nodes)
        if unknown:
            raise ValueError(f"unknown nodes in partition: {sorted(unknown)}")
        missing = set(self.running()) - set(listed)
        if missing:
            raise ValueError(f"running nodes not in any group: {sorted(missing)}")
        self._partition = groups
        self._apply_partition()

    def _apply_partition(self) -> None:
        """Apply the rules in every running node (in parallel), then read them back: a node whose
        chain is not exactly what it should be gets them again, one node at a time, so a
        scenario never runs on a partition other than the one it asked for."""
        assert self._partition is not None
        live = self.running()
        ips = {n: self.ip(n) for n in live}
        group_of = {n: i for i, g in enumerate(self._partition) for n in g}
        cut = {n: {ips[m] for m in live if group_of.get(m) != group_of.get(n) and ips.get(m)} for n in live}

        def apply(node: str) -> None:
            rules = "".join(f"; iptables -w -A {PART_CHAIN} -s {ip} -j DROP"
                            f"; iptables -w -A {PART_CHAIN} -d {ip} -j DROP" for ip in sorted(cut[node]))
            self._sh(node, "set -e; " + self._chain_script(PART_CHAIN) + rules)

        errors = {n: r for n, r in self.each(live, apply).items() if isinstance(r, Exception)}
        if errors:
            raise RuntimeError(f"partition failed on {errors}")
        self._enforce(live, cut, apply)
        self._log(f"partition {self._partition} applied on {', '.join(live)}")

    def _dropped_ips(self, node: str) -> set[str] | None:
        """The IPs the node's partition chain DROPs both ways; None when the chain is not hooked
        into INPUT and OUTPUT (or cannot be read)."""
        script = (f"iptables -w -C INPUT -j {PART_CHAIN} && iptables -w -C OUTPUT -j {PART_CHAIN} "
                  f"&& iptables -w -S {PART_CHAIN}")
        code, out, _ = self.exec(node, ["sh", "-c", script], timeout=20, user="root")
        if code != 0:
            return None
        found = set(re.findall(r"-A \S+ -([sd]) (\S+?)(?:/32)? -j DROP", out))
        sources, dests = {ip for d, ip in found if d == "s"}, {ip for d, ip in found if d == "d"}
        return sources if sources == dests else None

    def _enforce(self, live: Sequence[str], cut: Mapping[str, set[str]], apply) -> None:
        """Read every node's rules back; re-apply (sequentially) where they differ from `cut`."""
        seen = self.each(live, self._dropped_ips)
        wrong = [n for n in live if seen[n] != cut[n]]
        for node in wrong:
            self._log(f"{node}: partition rules read back as {seen[node]}, expected {sorted(cut[node])}; "
                      f"applying them again")
            apply(node)
            again = self._dropped_ips(node)
            if again != cut[node]:
                raise RuntimeError(f"{node}: partition rules read back as {again} after re-applying, "
                                   f"expected {sorted(cut[node])}")

    def heal(self) -> None:
        """Remove all partition rules from every running node (and check that they are gone)."""
        self._partition = None
        live = self.running()

        def clear(node: str) -> None:
            self._sh(node, self._chain_script(PART_CHAIN))

        errors = {n: r for n, r in self.each(live, clear).items() if isinstance(r, Exception)}
        if errors:
            raise RuntimeError(f"heal failed on {errors}")
        self._enforce(live, {n: set() for n in live}, clear)
        self._log(f"healed ({', '.join(live)})")

    def partition_rules(self, node: str) -> str:
        """What the node's partition chain drops, and every node's IP (for a failure's diagnostics)."""
        dropped = self._dropped_ips(node)
        rules = "chain not hooked or unreadable" if dropped is None else f"drops {sorted(dropped) or 'nothing'}"
        return f"{rules} (IPs: {', '.join(f'{n}={self.ip(n)}' for n in self.running())})"

    def loss(self, node: str, p: float, direction: str = "in") -> None:
        """Drop a random fraction p of the node's non-loopback packets
        (direction: in | out | both); p=0 clears it. Not kept across restart()."""
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be within [0, 1]")
        prob = f"-m statistic --mode random --probability {p:.4f} -j DROP"
        script = "set -e; " + self._chain_script(LOSS_CHAIN + "_IN", ["INPUT"])
        script += "; " + self._chain_script(LOSS_CHAIN + "_OUT", ["OUTPUT"])
        if p > 0 and direction in ("in", "both"):
            script += f"; iptables -w -A {LOSS_CHAIN}_IN ! -i lo {prob}"
        if p > 0 and direction in ("out", "both"):
            script += f"; iptables -w -A {LOSS_CHAIN}_OUT ! -o lo {prob}"
        if direction not in ("in", "out", "both"):
            raise ValueError("direction must be in, out or both")
        self._sh(node, script)

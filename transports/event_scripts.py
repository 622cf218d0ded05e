"""Serf-style event handler scripts, run by the ZeroMQ runtime on membership events.

The ``[hooks]`` table maps an event (the `gossipmq_member_changed` reasons: joined, suspected,
alive_again, rejoined, failed, left, reaped; or ``any``) to a command: a shell string or an
argv list. Each run gets the event and the member in its environment::

    GOSSIPMQ_EVENT               joined | suspected | alive_again | rejoined | failed | left | reaped
    GOSSIPMQ_SELF_ID             the node that observed the change
    GOSSIPMQ_MEMBER_ID / _ADDRESS / _STATUS / _PREVIOUS / _INCARNATION
    GOSSIPMQ_MEMBER_TAGS         the member's tags as a JSON object
    GOSSIPMQ_TAG_<KEY>           each tag (key upper-cased, non-alphanumerics as "_")

and the same as one JSON object on stdin. Scripts never block the node: each event becomes
an asyncio task; at most `concurrency` scripts run at once, at most `queue` wait (beyond
that events are dropped and counted), a script running longer than `timeout_ms` is killed,
and every failure (spawn error, non-zero exit, timeout) is logged with the tail of stderr.
The handler is a pluggy plugin implementing `gossipmq_member_changed`, so it sees exactly
what other observers see.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections import Counter
from typing import Any

import orjson

from gossipmq.core.config import HooksSection
from gossipmq.core.hookspecs import hookimpl

log = logging.getLogger("gossipmq.hooks")

EVENTS = ("joined", "suspected", "alive_again", "rejoined", "failed", "left", "reaped")
_TAG_KEY = re.compile(r"[^A-Za-z0-9]")


def member_env(node_id: str, member: dict[str, Any], previous: str | None, reason: str) -> dict[str, str]:
    """The environment variables describing one event (added to the node's own environment)."""
    env = {
        "GOSSIPMQ_EVENT": reason,
        "GOSSIPMQ_SELF_ID": node_id,
        "GOSSIPMQ_MEMBER_ID": str(member.get("id", "")),
        "GOSSIPMQ_MEMBER_ADDRESS": str(member.get("address", "")),
        "GOSSIPMQ_MEMBER_STATUS": str(member.get("status", "")),
        "GOSSIPMQ_MEMBER_PREVIOUS": previous or "",
        "GOSSIPMQ_MEMBER_INCARNATION": str(member.get("incarnation", "")),
        "GOSSIPMQ_MEMBER_TAGS": orjson.dumps(member.get("tags", {})).decode(),
    }
    for key, value in (member.get("tags") or {}).items():
        env[f"GOSSIPMQ_TAG_{_TAG_KEY.sub('_', key).upper()}"] = str(value)
    return env


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class EventScripts:
    """Runs the configured command for each member event, without ever blocking the node."""

    def __init__(self, section: HooksSection) -> None:
        self.commands: dict[str, list[str | list[str]]] = {}
        for event in EVENTS:
            for command in (getattr(section, event), section.any):
                if command:
                    self.commands.setdefault(event, []).append(command)
        self.concurrency = section.concurrency
        self.queue_limit = section.queue
        self.timeout = section.timeout_ms / 1000
        self.stats: Counter[str] = Counter()
        self.pending: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def from_config(cls, section: HooksSection) -> EventScripts | None:
        scripts = cls(section)
        return scripts if scripts.commands else None

    @hookimpl
    def gossipmq_member_changed(self, node_id: str, member: dict[str, Any], previous: str | None,
                                reason: str) -> None:
        commands = self.commands.get(reason)
        if not commands:
            return
        for command in commands:
            if len(self.pending) >= self.queue_limit:
                self.stats["dropped"] += 1
                if self.stats["dropped"] in (1, 10, 100) or self.stats["dropped"] % 1000 == 0:
                    log.warning("hook queue full (%d waiting): dropped %s event for %s (%d dropped so far)",
                                len(self.pending), reason, member.get("id"), self.stats["dropped"])
                continue
            env = member_env(node_id, member, previous, reason)
            stdin = orjson.dumps({"event": reason, "self": node_id, "previous": previous, "member": member})
            task = asyncio.get_running_loop().create_task(self._run(command, env, stdin))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _run(self, command: str | list[str], env: dict[str, str], stdin: bytes) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        label = command if isinstance(command, str) else " ".join(command)
        async with self._slots:
            self.stats["started"] += 1
            try:
                kw: dict[str, Any] = dict(stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                          stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
                                          start_new_session=True)  # its own group: a kill reaches children
                if isinstance(command, str):
                    proc = await asyncio.create_subprocess_shell(command, **kw)
                else:
                    proc = await asyncio.create_subprocess_exec(*command, **kw)
            except OSError as exc:
                self.stats["failed"] += 1
                log.warning("hook %r for %s could not start: %s", label, env["GOSSIPMQ_EVENT"], exc)
                return
            try:
                out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
            except TimeoutError:
                _kill_group(proc.pid)
                await proc.wait()
                self.stats["timed_out"] += 1
                log.warning("hook %r for %s %s killed after %.1fs", label, env["GOSSIPMQ_EVENT"],
                            env["GOSSIPMQ_MEMBER_ID"], self.timeout)
                return
            except asyncio.CancelledError:  # the node is stopping: do not leave the script behind
                if proc.returncode is None:
                    _kill_group(proc.pid)
                raise
            if proc.returncode != 0:
                self.stats["failed"] += 1
                tail = err.decode(errors="replace").strip()[-300:]
                log.warning("hook %r for %s %s exited with %d: %s", label, env["GOSSIPMQ_EVENT"],
                            env["GOSSIPMQ_MEMBER_ID"], proc.returncode, tail)
            else:
                self.stats["succeeded"] += 1
                if out.strip():
                    log.debug("hook %r: %s", label, out.decode(errors="replace").strip()[-300:])

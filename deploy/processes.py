"""Processes started in their own session, remembered by pid and start time, and stopped by pid.

A ``Proc`` is what a pid file keeps: a pid alone may be reused by an unrelated process after a reboot or a
crash, so a process counts as ours only while ``/proc/<pid>/stat`` shows the start time recorded at spawn.
Stopping signals the process group the process leads (with its children: a code server's run workers),
never anything found by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from resources.processes import proc_stat, process_start_ticks


@dataclass(frozen=True)
class Proc:
    """A process this project started: its name, pid and start time (clock ticks since boot)."""

    name: str
    pid: int
    start_ticks: str

    @classmethod
    def of(cls, name: str, pid: int) -> Proc:
        return cls(name, pid, process_start_ticks(pid) or "")

    def alive(self) -> bool:
        """True while the pid runs and is still the process that was started (zombies do not run)."""
        return bool(self.start_ticks) and process_start_ticks(self.pid) == self.start_ticks

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    log: Path,
    user: str | None = None,
) -> tuple[Proc, subprocess.Popen[bytes]]:
    """Start ``argv`` in a new session (its own process group), output appended to ``log``, stdin closed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )
    return Proc.of(name, popen.pid), popen


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies excluded), read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def stop(
    proc: Proc, *, first: signal.Signals = signal.SIGTERM, timeout: float = 20.0, first_to_group: bool = True
) -> bool:
    """Stop ``proc`` and its process group: ``first`` (to the whole group, or to ``proc`` alone when
    ``first_to_group`` is False), then SIGKILL to the group after ``timeout`` s.

    Returns False when nothing of it was running. A process that is no longer ``proc`` (pid reused) is left
    alone; its group is signalled only while members remain, which keeps the group id from being reused.
    """

    def remaining() -> bool:
        return proc.alive() or bool(group_members(proc.pid))

    if not remaining():
        return False
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if proc.alive() and (sig == first and not first_to_group):
                os.kill(proc.pid, sig)
            elif group_members(proc.pid):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        while remaining() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not remaining():
            return True
    raise TimeoutError(f"{proc.name} (pid {proc.pid}) still runs after SIGKILL")

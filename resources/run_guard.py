"""Run guard: no run waits forever on a pool slot held by a dead or stuck run.

* Each run records its worker process on itself as run tags (host, boot id, pid and the process start time
  from ``/proc/<pid>/stat``, so a reused pid is not mistaken for the original), with its own run id: Dagster
  copies a run's tags to its re-executions and retries, whose worker is not yet recorded.
* At every run start (and from ``run_guard_sensor`` in the daemon) every STARTING/STARTED/CANCELING run whose
  recorded worker on this host is gone is reported failed and its concurrency slots are freed; so are the slots
  of an ended run whose worker died (the code server marks such a run failed but cannot free its slots).
* While a step of this run waits for a pool slot, the guard sleeps between checks (Dagster's in-process
  executor polls without sleeping), says once which run holds the pool, stops on SIGTERM/SIGINT, and gives
  up after ``MEDALLION_POOL_WAIT_SECONDS`` (default 600) with an error naming the pool and its holder.

The guard must be a resource of at least one step of the run (resources are initialized at run start, before
any step claims a slot) and assumes the in-process executor (medallion's): the process that initializes it is
the one that claims the slots and runs every step. Under the multiprocess executor each step's child process
would record itself and the guard must not be used.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from resources.errors import MedallionError
from resources.processes import process_start_ticks

POOL_WAIT_VAR = "MEDALLION_POOL_WAIT_SECONDS"
DEFAULT_POOL_WAIT_SECONDS = 600.0
#: How long a blocked step sleeps between two claims of its pool slot (one claim is a few SQL queries).
POLL_SECONDS = 1.0
#: How often a blocked step looks again at the pool's holders (and reaps dead ones).
HOLDER_CHECK_SECONDS = 10.0
ACTIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]

TAG_HOST = "medallion/worker_host"
TAG_BOOT = "medallion/worker_boot_id"
TAG_PID = "medallion/worker_pid"
TAG_START = "medallion/worker_start_ticks"
TAG_STARTED_AT = "medallion/worker_started_at"
TAG_RUN = "medallion/worker_run_id"


class RunGuardConfigError(MedallionError, ValueError):
    """``MEDALLION_POOL_WAIT_SECONDS`` (or ``RunGuard.pool_wait_seconds``) is not a positive number."""


class PoolWaitTimeout(MedallionError):
    """A step waited longer than the bounded wait for a pool slot."""


class PoolWaitInterrupted(dg.DagsterExecutionInterruptedError):
    """SIGTERM or SIGINT arrived while a step waited for a pool slot (Dagster records the run as interrupted)."""


# --- the worker process ------------------------------------------------------------------------------------


def boot_id() -> str:
    """This machine's boot id (a reboot makes every recorded worker stale); empty where unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started_at(ticks: str) -> str:
    """``ticks`` since boot as an ISO-8601 UTC time (to the second); empty where /proc/stat is missing."""
    try:
        btime = next(ln for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime "))
        seconds = int(btime.split()[1]) + int(ticks) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Worker:
    """The process that runs a run's steps, as recorded in the run's tags."""

    host: str
    boot_id: str
    pid: int
    start_ticks: str  # empty where /proc is missing: then only the pid is checked
    started_at: str = ""

    @classmethod
    def current(cls) -> Worker:
        ticks = process_start_ticks(os.getpid()) or ""
        return cls(socket.gethostname(), boot_id(), os.getpid(), ticks, _started_at(ticks) if ticks else "")

    @classmethod
    def of_run(cls, run: dg.DagsterRun) -> Worker | None:
        """The worker this run recorded; None for a run the guard never saw start, including a re-execution
        or retry carrying the worker tags of the run it repeats."""
        tags = run.tags
        if tags.get(TAG_RUN) != run.run_id:
            return None
        try:
            pid = int(tags[TAG_PID])
            return cls(
                tags[TAG_HOST], tags.get(TAG_BOOT, ""), pid, tags.get(TAG_START, ""), tags.get(TAG_STARTED_AT, "")
            )
        except (KeyError, ValueError):
            return None

    def as_tags(self, run_id: str) -> dict[str, str]:
        """The run tags that record this worker as ``run_id``'s."""
        return {
            TAG_RUN: run_id,
            TAG_HOST: self.host,
            TAG_BOOT: self.boot_id,
            TAG_PID: str(self.pid),
            TAG_START: self.start_ticks,
            TAG_STARTED_AT: self.started_at,
        }

    def is_local(self) -> bool:
        """On this host: the only workers whose life the guard can judge."""
        return self.host == socket.gethostname()

    def death(self) -> str | None:
        """Why this (local) worker is gone, or None while it runs."""
        if self.boot_id and self.boot_id != boot_id():
            return "the host has rebooted since"
        if not self.start_ticks:
            return None if _pid_exists(self.pid) else f"no process has pid {self.pid}"
        ticks = process_start_ticks(self.pid)
        if ticks is None:
            return f"no process has pid {self.pid}"
        if ticks != self.start_ticks:
            return f"pid {self.pid} now belongs to another process (started at tick {ticks}, not {self.start_ticks})"
        return None

    def describe(self) -> str:
        since = f", started {self.started_at}" if self.started_at else ""
        return f"pid {self.pid} on host {self.host}{since}"


# --- reaping runs whose worker died ------------------------------------------------------------------------


def slot_holders(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """run id → the pools in which that run holds a slot or has a step waiting."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    holders: dict[str, list[str]] = {}
    for pool, info in sorted(storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items()):
        for run_id in {s.run_id for s in info.claimed_slots} | {p.run_id for p in info.pending_steps}:
            holders.setdefault(run_id, []).append(pool)
    return holders


def dead_runs(instance: dg.DagsterInstance, exclude: str | None = None) -> list[tuple[dg.DagsterRun, Worker, str]]:
    """Runs whose recorded worker on this host is gone: ``(run, worker, why)``. Those still in progress, and
    those already ended that still hold pool slots (the code server marks a run failed when its worker dies,
    but only a live worker frees slots; Dagster's run monitoring does it a minute after the run ended)."""
    runs = {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES))}
    holding = sorted(slot_holders(instance).keys() - runs.keys())
    if holding:
        runs |= {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(run_ids=holding)) if r.is_finished}
    found = []
    for run in runs.values():
        worker = Worker.of_run(run)
        if run.run_id == exclude or worker is None or not worker.is_local():
            continue
        why = worker.death()
        if why is not None:
            found.append((run, worker, why))
    return found


def reap_message(worker: Worker, why: str, reaper: str, pools: list[str], ended: bool = False) -> str:
    freed = f"freed its slots in pool(s) {', '.join(pools)}" if pools else "it held no pool slot"
    done = freed if ended else f"marked this run failed and {freed}"
    return f"The run worker died: {worker.describe()} is gone ({why}). Medallion's run guard ({reaper}) {done}."


def reap_dead_runs(instance: dg.DagsterInstance, reaper: str, exclude: str | None = None, log: Any = None) -> list[str]:
    """Report every in-progress run whose worker died as failed, free the slots of every run whose worker died;
    the ids of those runs."""
    reaped = []
    for run, worker, why in dead_runs(instance, exclude):
        current = instance.get_run_by_id(run.run_id)
        if current is None or (current.status not in ACTIVE_STATUSES and not current.is_finished):
            continue
        pools = slot_holders(instance).get(run.run_id, [])
        if current.is_finished and not pools:
            continue  # another reaper (or Dagster) got there first
        message = reap_message(worker, why, reaper, pools, ended=current.is_finished)
        if current.is_finished:
            instance.report_engine_event(message, current)
        else:
            instance.report_run_failed(current, message=message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        if log is not None:
            log.warning(f"run {run.run_id}: {message}")
        reaped.append(run.run_id)
    return reaped


# --- the bounded, sleeping, interruptible wait for a pool slot -----------------------------------------------


def pool_wait_setting(value: float | str | None = None) -> tuple[str, float]:
    """The bounded wait and where it comes from: ``value`` (``RunGuard.pool_wait_seconds``), else
    ``MEDALLION_POOL_WAIT_SECONDS``, else 600 s; RunGuardConfigError naming the setting if it is not positive."""
    source = "RunGuard.pool_wait_seconds" if value is not None else POOL_WAIT_VAR
    raw = value if value is not None else os.environ.get(POOL_WAIT_VAR, "").strip() or DEFAULT_POOL_WAIT_SECONDS
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise RunGuardConfigError(f"{source} must be a positive number of seconds, got {raw!r}")
    return source, seconds


def pool_wait_seconds(value: float | str | None = None) -> float:
    """The bounded wait in seconds (see ``pool_wait_setting``)."""
    return pool_wait_setting(value)[1]


def _utc(moment: datetime | float | None) -> str:
    if moment is None:
        return "an unknown time"
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def describe_holders(instance: dg.DagsterInstance, pool: str) -> str:
    """Who holds ``pool``, in words: run id, status, step, worker and since when."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    assigned = {(p.run_id, p.step_key): p.assigned_timestamp for p in info.pending_steps}
    parts = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        worker = Worker.of_run(run) if run else None
        record = instance.get_run_record_by_id(slot.run_id)
        since = assigned.get((slot.run_id, slot.step_key)) or (record.start_time if record else None)
        who = worker.describe() if worker else "worker unknown: the run did not record it"
        status = run.status.value if run else "deleted"
        parts.append(f"run {slot.run_id} ({status}, step {slot.step_key}, {who}; holding it since {_utc(since)})")
    if not parts:
        return f"no run holds a slot of pool {pool} (limit {info.limit}); other steps are queued ahead"
    return f"pool {pool} (limit {info.limit}) is held by " + "; ".join(parts)


class PoolWait:
    """Wraps the instance's slot claims for one run (the in-process executor claims through it).

    Dagster's in-process executor re-checks a blocked claim in a loop that never sleeps and only looks at
    interrupts inside steps; this wrapper sleeps in each failed claim (checking SIGTERM/SIGINT meanwhile),
    reports the holder once and raises ``PoolWaitTimeout`` after the bounded wait.
    """

    def __init__(
        self, instance: dg.DagsterInstance, run_id: str, limit: float, setting: str = POOL_WAIT_VAR, log: Any = None
    ) -> None:
        self.instance, self.run_id, self.limit, self.setting, self.log = instance, run_id, limit, setting, log
        self._storage = instance.event_log_storage
        self._original: Callable[..., Any] | None = None
        self._shadowed: Any = None  # what this wrapper shadows on the storage object itself, if anything
        self._since: dict[tuple[str, str], float] = {}
        self._checked: dict[tuple[str, str], float] = {}

    def install(self) -> None:
        """Route the storage object's ``claim_concurrency_slot`` through ``claim`` (this process only)."""
        self._shadowed = vars(self._storage).get("claim_concurrency_slot")
        self._original = self._storage.claim_concurrency_slot
        self._storage.claim_concurrency_slot = self.claim

    def uninstall(self) -> None:
        if vars(self._storage).get("claim_concurrency_slot") != self.claim:
            return  # replaced after us: leave it
        if self._shadowed is None:
            del self._storage.claim_concurrency_slot
        else:
            self._storage.claim_concurrency_slot = self._shadowed

    def claim(self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None) -> Any:
        assert self._original is not None
        status = self._original(concurrency_key, run_id, step_key, priority)
        if run_id != self.run_id or status.is_claimed:
            return status
        key = (concurrency_key, step_key)
        now = time.monotonic()
        waited = now - self._since.setdefault(key, now)
        if now - self._checked.get(key, -math.inf) >= HOLDER_CHECK_SECONDS:
            self._check_holders(concurrency_key, step_key, first=key not in self._checked)
            self._checked[key] = now
        if waited >= self.limit:
            raise PoolWaitTimeout(self._timeout_message(concurrency_key, step_key, waited))
        self._pause(min(POLL_SECONDS, self.limit - waited), concurrency_key, step_key)
        # 0: Dagster claims again on its next pass instead of spinning until its own back-off expires.
        return status.with_sleep_interval(0.0)

    def _check_holders(self, pool: str, step_key: str, first: bool) -> None:
        """Reap holders whose worker died; say once who holds the pool."""
        reaped = reap_dead_runs(self.instance, reaper=f"run {self.run_id}", exclude=self.run_id, log=self.log)
        if first and self.log is not None:
            holders = describe_holders(self.instance, pool)
            self.log.warning(
                f"Step {step_key} waits for a slot: {holders}. It gives up after {self.limit:g} s ({self.setting})."
                + (f" Reaped runs whose worker died: {', '.join(reaped)}." if reaped else "")
            )

    def _timeout_message(self, pool: str, step_key: str, waited: float) -> str:
        holders = describe_holders(self.instance, pool)
        return (
            f"Step {step_key} gave up waiting for a slot of pool {pool} after {waited:.0f} s "
            f"({self.setting}={self.limit:g}): {holders}. If that run is stuck, terminate it; "
            f"to wait longer, raise {self.setting}."
        )

    def _pause(self, seconds: float, pool: str, step_key: str) -> None:
        """Sleep, raising ``PoolWaitInterrupted`` on SIGTERM/SIGINT (also one that arrived before)."""
        try:
            with dg.raise_execution_interrupts():
                time.sleep(max(seconds, 0.0))
        except dg.DagsterExecutionInterruptedError:
            raise PoolWaitInterrupted(
                f"Interrupted (SIGTERM/SIGINT) while step {step_key} waited for a slot of pool {pool}."
            ) from None


# --- the resource --------------------------------------------------------------------------------------------


class RunGuard(dg.ConfigurableResource):
    """Records this run's worker, reaps runs whose worker died, and bounds the wait for pool slots.

    ``pool_wait_seconds`` defaults to ``MEDALLION_POOL_WAIT_SECONDS`` (600 when unset).
    """

    pool_wait_seconds: float | None = None

    _wait: PoolWait | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> RunGuard:
        """A guard whose wait is ``MEDALLION_POOL_WAIT_SECONDS``, checked now: a bad value fails the definitions load,
        naming the variable, rather than every run at its start."""
        pool_wait_setting()
        return cls()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        setting, limit = pool_wait_setting(self.pool_wait_seconds)
        instance, run = context.instance, context.dagster_run
        if instance is None or run is None:
            return  # built outside a run (e.g. build_resources)
        instance.add_run_tags(run.run_id, Worker.current().as_tags(run.run_id))
        reap_dead_runs(instance, reaper=f"run {run.run_id}", exclude=run.run_id, log=context.log)
        self._wait = PoolWait(instance, run.run_id, limit, setting, log=context.log)
        self._wait.install()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._wait is not None:
            self._wait.uninstall()
            self._wait = None

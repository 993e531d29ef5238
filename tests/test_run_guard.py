"""The run guard with real processes: a killed run's slot is freed, a blocked run gives up or stops on a signal.

Each CLI run is ``dagster asset materialize -m tests.run_guard_defs`` in its own session (stopped by pid);
``hold_pool`` holds the only slot of ``run_guard_test_pool`` for ``RUN_GUARD_TEST_SLEEP`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from dagster._core.utils import make_new_run_id

from resources.run_guard import (
    POOL_WAIT_VAR,
    TAG_PID,
    RunGuardConfigError,
    Worker,
    pool_wait_seconds,
)
from sensors.run_guard_sensor import run_guard_sensor
from tests.run_guard_defs import POOL
from tests.services import CONNECT_ENV, descendants, running, wait_until

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMAND = [str(BIN / "dagster"), "asset", "materialize", "-m", "tests.run_guard_defs"]
SELECT = ["--select", "hold_pool,after_hold"]


class CliRun(subprocess.Popen):
    """A ``dagster asset materialize`` process; ``log`` holds its output."""

    log: Path


Start = Callable[..., CliRun]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the repo's dagster.yaml (pools limited to 1), its SQLite storage created once."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return home


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def environment(home: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
    return {**base, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1", POOL_WAIT_VAR: "60", **env}


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop ``proc``, started in its own session, and everything it started: SIGTERM, then SIGKILL."""
    family = [proc.pid, *descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # its own session: the group id is its pid
        for pid in running(family[1:], proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: proc.poll() is not None and not running(family, proc.pid), timeout=grace, what="exit")
            return


@pytest.fixture
def start(home: Path, tmp_path: Path) -> Iterator[Start]:
    """``start(sleep, **env)`` launches a CLI run; every process started is stopped by pid at the end."""
    procs: list[CliRun] = []
    base = environment(home)

    def _start(sleep: float, **env: str) -> CliRun:
        log = tmp_path / f"run-{len(procs)}.log"
        with open(log, "wb") as out:
            proc = CliRun(
                [*COMMAND, *SELECT],
                cwd=REPO,
                env={**base, "RUN_GUARD_TEST_SLEEP": str(sleep), **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log = log
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        stop_group(proc, grace=0.5)


def run_of(instance: dg.DagsterInstance, proc: subprocess.Popen) -> dg.DagsterRun | None:
    """The run whose worker is ``proc`` (the guard tags it at run start)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TAG_PID: str(proc.pid)}))
    return runs[0] if runs else None


def pool_info(instance: dg.DagsterInstance):
    return instance.event_log_storage.get_concurrency_info(POOL)


def holding(instance: dg.DagsterInstance, proc: subprocess.Popen) -> str | None:
    """The run id of ``proc`` once it holds the pool's slot."""
    run = run_of(instance, proc)
    return run.run_id if run and any(s.run_id == run.run_id for s in pool_info(instance).claimed_slots) else None


def waiting(instance: dg.DagsterInstance, proc: subprocess.Popen) -> str | None:
    """The run id of ``proc`` once one of its steps waits for the pool."""
    run = run_of(instance, proc)
    info = pool_info(instance)
    return run.run_id if run and any(p.run_id == run.run_id for p in info.pending_steps) else None


def in_pool(instance: dg.DagsterInstance, run_id: str) -> bool:
    info = pool_info(instance)
    return any(s.run_id == run_id for s in info.claimed_slots) or any(p.run_id == run_id for p in info.pending_steps)


def failure_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """The RUN_FAILURE event's message and error of ``run_id``."""
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert events, f"run {run_id} has no RUN_FAILURE event"
    event = events[-1].dagster_event
    error = event.job_failure_data.error if event and event.job_failure_data else None
    return f"{events[-1].message}\n{error.message if error else ''}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finish(proc: CliRun, timeout: float) -> int:
    """``proc``'s exit code; fails the test (the fixture then kills it) if it runs longer than ``timeout``."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run {proc.pid} still running after {timeout:.0f} s:\n{proc.log.read_text()[-3000:]}")


def test_next_run_frees_the_slot_of_a_killed_run(instance: dg.DagsterInstance, start: Start) -> None:
    dead = start(sleep=120)
    dead_run = wait_until(lambda: holding(instance, dead), timeout=40, what="the first run to hold the pool")
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait(timeout=10)

    assert finish(start(sleep=0), timeout=45) == 0
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    text = failure_text(instance, dead_run)
    assert f"pid {dead.pid}" in text and "no process has pid" in text, text
    assert "Medallion's run guard" in text and POOL in text, text
    assert not in_pool(instance, dead_run)


def test_waiting_run_frees_the_slot_of_a_holder_that_dies(instance: dg.DagsterInstance, start: Start) -> None:
    holder = start(sleep=120)
    holder_run = wait_until(lambda: holding(instance, holder), timeout=40, what="the first run to hold the pool")
    blocked = start(sleep=0)
    blocked_run = wait_until(lambda: waiting(instance, blocked), timeout=30, what="the second run to wait")
    os.kill(holder.pid, signal.SIGKILL)

    assert finish(blocked, timeout=30) == 0  # the waiting run looks at the holders every 10 s
    assert instance.get_run_by_id(blocked_run).status == dg.DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(holder_run).status == dg.DagsterRunStatus.FAILURE
    assert f"run {blocked_run}" in failure_text(instance, holder_run)


def test_blocked_run_gives_up_after_the_bounded_wait(instance: dg.DagsterInstance, start: Start) -> None:
    holder = start(sleep=120)
    holder_run = wait_until(lambda: holding(instance, holder), timeout=40, what="the first run to hold the pool")
    blocked = start(sleep=0, **{POOL_WAIT_VAR: "3"})
    blocked_run = wait_until(lambda: waiting(instance, blocked), timeout=30, what="the second run to wait")
    began = time.monotonic()

    assert finish(blocked, timeout=30) != 0
    assert time.monotonic() - began < 15
    assert instance.get_run_by_id(blocked_run).status == dg.DagsterRunStatus.FAILURE
    text = failure_text(instance, blocked_run)
    named = (f"pool {POOL}", f"run {holder_run}", f"pid {holder.pid}", f"{POOL_WAIT_VAR}=3", "holding it since")
    for expected in named:
        assert expected in text, text
    assert not in_pool(instance, blocked_run)
    assert blocked.log.read_text().count(f"Step hold_pool waits for a slot: pool {POOL}") == 1
    # A live holder is never reaped: it keeps its slot and runs on.
    assert instance.get_run_by_id(holder_run).status == dg.DagsterRunStatus.STARTED
    assert holding(instance, holder) == holder_run


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_a_blocked_run_that_does_not_spin(
    instance: dg.DagsterInstance, start: Start, sig: signal.Signals
) -> None:
    holder = start(sleep=120)
    wait_until(lambda: holding(instance, holder), timeout=40, what="the first run to hold the pool")
    blocked = start(sleep=0)
    blocked_run = wait_until(lambda: waiting(instance, blocked), timeout=30, what="the second run to wait")

    used = cpu_seconds(blocked.pid)
    time.sleep(3)
    spun = cpu_seconds(blocked.pid) - used

    blocked.send_signal(sig)
    assert finish(blocked, timeout=8) != 0
    run = instance.get_run_by_id(blocked_run)
    assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    assert "Interrupted (SIGTERM/SIGINT) while step hold_pool waited" in failure_text(instance, blocked_run)
    assert not in_pool(instance, blocked_run)
    assert spun < 0.6, f"{spun:.2f} s of CPU in 3 s while blocked"  # Dagster alone spins at ~98 % of a core


def test_daemon_sensor_frees_the_slot_a_queued_run_waits_for_and_the_dead_run_is_retried(
    instance: dg.DagsterInstance, home: Path
) -> None:
    """Both runs launched by the daemon; the first one's worker is SIGKILLed while it holds the pool. The sensor
    reaps it (freeing the slot the second run waits for), and Dagster's run retries (dagster.yaml) re-execute
    it: the retry starts with its parent's worker tags, and the guard must not reap it for its parent's death."""
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: tests.run_guard_defs\n"
        f"      working_directory: {REPO}\n      location_name: run_guard_test\n"
    )
    release = home / "release"
    env = environment(home, RUN_GUARD_TEST_SLEEP="120", RUN_GUARD_TEST_RELEASE=str(release))
    launch = [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "__ASSET_JOB"]
    with open(home / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=REPO,
            env={**env, "MEDALLION_AUTOMATION": "on"},  # the sensor starts RUNNING
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        subprocess.run(launch, cwd=REPO, env=env, capture_output=True, check=True, timeout=60)
        (dead_run,) = instance.get_runs()

        def holder() -> Worker | None:
            worker = Worker.of_run(instance.get_run_by_id(dead_run.run_id))
            return worker if worker and in_pool(instance, dead_run.run_id) else None

        dead = wait_until(holder, timeout=60, what="the first run to hold the pool")
        subprocess.run(launch, cwd=REPO, env=env, capture_output=True, check=True, timeout=60)
        (queued,) = [r for r in instance.get_runs() if r.run_id != dead_run.run_id]
        os.kill(dead.pid, signal.SIGKILL)
        release.touch()  # the retry does not hold the pool for long

        def all_done() -> list[dg.DagsterRun] | None:
            runs = instance.get_runs()
            return runs if len(runs) == 3 and all(r.is_finished for r in runs) else None

        runs = wait_until(all_done, timeout=120, what="the queued run, the dead run's retry and their ends")
    except TimeoutError:
        pytest.fail(f"runs never finished:\n{(home / 'daemon.log').read_text()[-3000:]}")
    finally:
        stop_group(daemon)
    by_id = {r.run_id: r for r in runs}
    (retry,) = [r for r in runs if r.parent_run_id == dead_run.run_id]
    assert by_id[dead_run.run_id].status == dg.DagsterRunStatus.FAILURE  # by its code server, or by the guard
    # The guard freed its slot (Dagster frees an ended run's slots only after free_slots_after_run_end_seconds).
    guard = [e.message for e in instance.all_logs(dead_run.run_id) if "Medallion's run guard" in e.message]
    assert guard and "freed its slots in pool(s) run_guard_test_pool" in guard[0], guard
    assert by_id[queued.run_id].status == dg.DagsterRunStatus.SUCCESS
    assert Worker.of_run(by_id[queued.run_id]) is not None  # a worker the code server spawned records itself
    assert retry.status == dg.DagsterRunStatus.SUCCESS, failure_text(instance, retry.run_id)
    assert retry.tags["dagster/retry_number"] == "1"
    assert Worker.of_run(retry) not in (None, dead)  # it recorded its own worker over the inherited tags


def test_sensor_reaps_only_runs_whose_local_worker_died(instance: dg.DagsterInstance) -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    me = Worker.current()
    workers = {
        "dead": Worker(me.host, me.boot_id, exited.pid, "1"),
        "reused_pid": Worker(me.host, me.boot_id, me.pid, str(int(me.start_ticks) + 1)),
        "live": me,
        "other_host": Worker("elsewhere.example", me.boot_id, exited.pid, "1"),
    }
    storage = instance.event_log_storage
    storage.set_concurrency_slots(POOL, 10)
    # Runs that ended (marked failed by their code server, or in the UI) but still hold a slot.
    workers |= {"ended_dead": workers["dead"], "ended_live": me}
    runs = {name: make_new_run_id() for name in [*workers, "untagged", "retry_of_dead"]}
    tags = {name: worker.as_tags(runs[name]) for name, worker in workers.items()}
    # Dagster copies a run's tags to its retries and re-executions: the dead worker is the parent's, not the retry's.
    tags |= {"untagged": {}, "retry_of_dead": tags["dead"]}
    for name, run_id in runs.items():
        status = dg.DagsterRunStatus.FAILURE if name.startswith("ended") else dg.DagsterRunStatus.STARTED
        create_run_for_test(instance, run_id=run_id, status=status, tags=tags[name])
        assert storage.claim_concurrency_slot(POOL, run_id, "step").is_claimed

    result = run_guard_sensor(dg.build_sensor_context(instance=instance))
    assert "reaped 3 run(s)" in result.skip_message

    for name in ("dead", "reused_pid", "ended_dead"):
        assert instance.get_run_by_id(runs[name]).status == dg.DagsterRunStatus.FAILURE, name
        assert not in_pool(instance, runs[name]), name
    assert "no process has pid" in failure_text(instance, runs["dead"])
    assert "now belongs to another process" in failure_text(instance, runs["reused_pid"])
    ended = [e.message for e in instance.all_logs(runs["ended_dead"]) if "run guard" in e.message]
    assert len(ended) == 1 and "freed its slots in pool(s)" in ended[0] and "marked" not in ended[0], ended
    for name in ("live", "other_host", "untagged", "retry_of_dead"):
        assert instance.get_run_by_id(runs[name]).status == dg.DagsterRunStatus.STARTED, name
        assert in_pool(instance, runs[name]), name
    assert in_pool(instance, runs["ended_live"])  # its worker may still write: Dagster's 60 s wait applies
    again = run_guard_sensor(dg.build_sensor_context(instance=instance))
    assert again.skip_message.startswith("no in-progress run")


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf", "10 min"])
def test_pool_wait_rejects_a_bad_setting_naming_the_variable(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POOL_WAIT_VAR, raw)
    with pytest.raises(RunGuardConfigError, match=rf"{POOL_WAIT_VAR} must be a positive number.*{raw!r}"):
        pool_wait_seconds()


def test_pool_wait_defaults_and_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POOL_WAIT_VAR, raising=False)
    assert pool_wait_seconds() == 600
    monkeypatch.setenv(POOL_WAIT_VAR, " 2.5 ")
    assert pool_wait_seconds() == 2.5
    assert pool_wait_seconds(7) == 7  # RunGuard(pool_wait_seconds=7) wins over the variable
    with pytest.raises(RunGuardConfigError, match=r"RunGuard.pool_wait_seconds must be a positive number"):
        pool_wait_seconds(-1)

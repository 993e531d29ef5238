"""medallion's instance storage (``resources/instance_storage.py``) keeps Dagster's SQLite contract.

Each test opens a copy of the repo's ``dagster.yaml`` by path. What must hold with connections kept open and
events written in batches: the files are Dagster's (a stock ``storage: sqlite`` instance reads them, and writes
it makes are read back); a batch reads back exactly as one-by-one writes; another process sees every write at
once; the webserver's watcher of a live run still hears each event; a wipe leaves no connection writing into a
deleted file; a forked child does not share its parent's connections.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.test_utils import create_run_for_test
from sqlalchemy.engine import Engine

from resources.instance_storage import (
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteScheduleStorage,
)

REPO = Path(__file__).resolve().parents[1]
ASSET = dg.AssetKey(["silver", "orders"])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repo's dagster.yaml, opened by path: ``DAGSTER_HOME`` is not set in this process."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def stock_instance(home: Path, tmp_path: Path) -> dg.DagsterInstance:
    """Dagster's own SQLite storage over the same files (the default ``storage: sqlite`` layout)."""
    config = tmp_path / "stock"
    config.mkdir(exist_ok=True)
    (config / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"sqlite": {"base_dir": str(home)}}}))
    return dg.DagsterInstance.from_config(str(config))


def engine_event(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    instance.report_engine_event(message, run)


def messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [r.event_log_entry.message for r in instance.get_records_for_run(run_id).records]


def test_the_dev_instance_uses_the_pooled_storage_for_runs_events_and_schedules(
    home: Path, instance: dg.DagsterInstance
) -> None:
    assert Path(instance.root_directory) == home  # the folder it was opened from, as Dagster's default
    assert isinstance(instance.run_storage, PooledSqliteRunStorage)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    assert isinstance(instance.schedule_storage, PooledSqliteScheduleStorage)
    assert instance.event_log_storage.supports_global_concurrency_limits  # pools need the index shard's tables


def test_the_files_are_dagsters_sqlite_storage_both_ways(
    home: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    run = create_run_for_test(instance, job_name="j")
    engine_event(instance, run, "written by the pooled storage")
    with stock_instance(home, tmp_path) as stock:
        assert stock.get_run_by_id(run.run_id) is not None
        assert "written by the pooled storage" in messages(stock, run.run_id)
        engine_event(stock, run, "written by the stock storage")
        stock_run = create_run_for_test(stock, job_name="k")
    assert "written by the stock storage" in messages(instance, run.run_id)
    assert instance.get_run_by_id(stock_run.run_id) is not None
    assert sorted(p.name for p in (home / "history").iterdir() if p.suffix == ".db") == ["runs.db"]
    assert (home / "history" / "runs" / f"{run.run_id}.db").exists()
    assert (home / "schedules" / "schedules.db").exists()


def test_another_process_sees_each_write_at_once(home: Path, instance: dg.DagsterInstance) -> None:
    run = create_run_for_test(instance, job_name="j")
    read = (
        "import sys, dagster as dg\n"
        "with dg.DagsterInstance.get() as i:\n"
        "    print(len(i.get_records_for_run(sys.argv[1]).records), i.get_run_by_id(sys.argv[1]).status.value)\n"
    )
    for n in range(1, 4):
        engine_event(instance, run, f"event {n}")
        instance.report_run_failed(run) if n == 3 else None
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        out = subprocess.run(
            [sys.executable, "-c", read, run.run_id], capture_output=True, text=True, check=True, env=env
        )
        count, status = out.stdout.split()
        assert int(count) == len(instance.get_records_for_run(run.run_id).records)
        assert status == ("FAILURE" if n == 3 else "NOT_STARTED")


def test_the_webservers_watcher_hears_each_event_of_a_live_run(home: Path, instance: dg.DagsterInstance) -> None:
    """The UI follows a run through a watchdog on ``<run_id>.db``: a write left in the WAL would never reach it."""
    run = create_run_for_test(instance, job_name="j")
    engine_event(instance, run, "before the watch")
    heard: list[str] = []
    got = threading.Event()

    def on_event(entry: dg.EventLogEntry, _cursor: str) -> None:
        heard.append(entry.message)
        if entry.message == "event 3":
            got.set()

    with dg.DagsterInstance.from_config(str(home)) as watcher:  # the webserver's own instance
        cursor = str(watcher.get_records_for_run(run.run_id).cursor)
        watcher.watch_event_logs(run.run_id, cursor, on_event)
        try:
            for n in range(1, 4):
                engine_event(instance, run, f"event {n}")
            assert got.wait(timeout=20), f"the watcher heard only {heard}"
        finally:
            watcher.end_watch_event_logs(run.run_id, on_event)
    assert heard == ["event 1", "event 2", "event 3"]


def test_a_wipe_leaves_no_connection_writing_into_a_deleted_shard(
    home: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    run = create_run_for_test(instance, job_name="j")
    engine_event(instance, run, "before the wipe")
    instance.event_log_storage.wipe()
    engine_event(instance, run, "after the wipe")
    with stock_instance(home, tmp_path) as stock:
        assert messages(stock, run.run_id) == ["after the wipe"]


def test_a_forked_child_opens_its_own_connections(instance: dg.DagsterInstance) -> None:
    """SQLite connections must not cross a fork: the child's first write opens connections of its own."""
    run = create_run_for_test(instance, job_name="j")
    engine_event(instance, run, "parent, before the fork")
    pid = os.fork()
    if pid == 0:  # the child writes through the storage it inherited, then exits without cleanup
        code = 1
        try:
            opened: list[object] = []
            sqlalchemy.event.listen(Engine, "connect", lambda dbapi_conn, _record: opened.append(dbapi_conn))
            engine_event(instance, run, "child")
            code = 0 if opened else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 2: the child wrote on its parent's connection
    engine_event(instance, run, "parent, after the fork")
    assert messages(instance, run.run_id) == ["parent, before the fork", "child", "parent, after the fork"]


def range_run_events(run: dg.DagsterRun, days: list[str]) -> list[list[DagsterEvent]]:
    """What a range run writes as batches: a plan per day and a check's plan; a materialization per day; the
    check's evaluation per day (the first day's failed)."""
    planned = [
        DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
            run.job_name,
            event_specific_data=AssetMaterializationPlannedData(ASSET, partition=day),
        )
        for day in days
    ]
    check = DagsterEvent(
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
        run.job_name,
        event_specific_data=AssetCheckEvaluationPlanned(asset_key=ASSET, check_name="quality_gate"),
    )
    done = [
        DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            run.job_name,
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(ASSET, partition=day)),
        )
        for day in days
    ]
    evaluated = [
        DagsterEvent(
            DagsterEventType.ASSET_CHECK_EVALUATION.value,
            run.job_name,
            event_specific_data=dg.AssetCheckEvaluation(
                asset_key=ASSET, check_name="quality_gate", passed=day != days[0], partition=day
            ),
        )
        for day in days
    ]
    return [[*planned, check], done, evaluated]


def hand_over(instance: dg.DagsterInstance, run: dg.DagsterRun, groups: list[list[DagsterEvent]]) -> None:
    """Each group handed over as Dagster hands over a batch."""
    for group in groups:
        batch_id = f"batch-{id(group)}"
        for i, event in enumerate(group):
            entry = dg.EventLogEntry(
                error_info=None,
                level=20,
                user_message="",
                run_id=run.run_id,
                timestamp=time.time(),
                dagster_event=event,
                job_name=run.job_name,
            )
            instance.handle_new_event(entry, batch_metadata=DagsterEventBatchMetadata(batch_id, i == len(group) - 1))


def asset_view(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, object]:
    """What the UI and the automation read back about the asset and the run."""
    planned = instance.fetch_planned_materializations(ASSET, limit=100).records  # newest first
    done = instance.fetch_materializations(ASSET, limit=100).records
    latest = instance.get_latest_materialization_event(ASSET)
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(ASSET, "quality_gate"), limit=100
    )
    return {
        "run_events": Counter(
            r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(run.run_id).records
        ),
        "planned": [r.partition_key for r in planned],
        "materialized": [r.partition_key for r in done],
        "latest": latest.dagster_event.partition if latest and latest.dagster_event else None,
        "partitions": sorted(instance.get_materialized_partitions(ASSET)),
        "checks": sorted((c.run_id, c.partition or "", c.status.value) for c in checks),
        "asset_keys": instance.all_asset_keys(),
    }


def test_a_range_runs_event_batches_read_back_as_one_by_one_writes_in_two_transactions(
    home: Path, tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The medallion instance writes a batch per shard in one transaction; the stock one writes event by event."""
    days = [f"2024-01-{d:02d}" for d in range(1, 31)]
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    run = create_run_for_test(instance, job_name="j", run_id="a" * 8 + "-0000-0000-0000-000000000000")
    commits: list[object] = []

    def on_commit(conn: object) -> None:
        commits.append(conn)

    sqlalchemy.event.listen(Engine, "commit", on_commit)
    try:
        hand_over(instance, run, range_run_events(run, days))
    finally:
        sqlalchemy.event.remove(Engine, "commit", on_commit)
    assert len(commits) <= 10  # 8 here: three batches on two shards, two others (99 with evaluations one by one)
    stock_home = tmp_path / "stock-home"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # Dagster's defaults: no batches
    with dg.DagsterInstance.from_config(str(stock_home)) as stock:
        assert type(stock).__name__ == "DagsterInstance" and not stock._is_batch_writing_enabled()
        stock_run = create_run_for_test(stock, job_name="j", run_id=run.run_id)
        hand_over(stock, stock_run, range_run_events(stock_run, days))
        expected = asset_view(stock, stock_run)
    got = asset_view(instance, run)
    assert got == expected
    assert got["partitions"] == days and got["latest"] == days[-1] and len(got["planned"]) == len(days)
    assert ("a" * 8 + "-0000-0000-0000-000000000000", days[0], "FAILED") in got["checks"]


def test_a_batch_that_fails_part_way_leaves_nothing_and_is_stored_once_event_by_event(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing inside a batch (a locked database, say) rolls the whole batch back on both shards; Dagster
    then stores it event by event, so every event is stored exactly once."""
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    run = create_run_for_test(instance, job_name="j", run_id="c" * 8 + "-0000-0000-0000-000000000000")
    storage = instance.event_log_storage
    store_check, calls = storage.store_asset_check_event, []

    def fails_once(event, event_id):
        calls.append(event_id)
        if len(calls) == 5:
            raise sqlalchemy.exc.OperationalError("UPDATE asset_check_executions", {}, Exception("database is locked"))
        store_check(event, event_id)

    monkeypatch.setattr(storage, "store_asset_check_event", fails_once)
    hand_over(instance, run, range_run_events(run, days))
    stock_home = tmp_path / "stock-home"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(stock_home)) as stock:
        stock_run = create_run_for_test(stock, job_name="j", run_id=run.run_id)
        hand_over(stock, stock_run, range_run_events(stock_run, days))
        expected = asset_view(stock, stock_run)
    assert len(calls) > 1 + len(days)  # the check plan and the evaluations, then the batch again one by one
    assert asset_view(instance, run) == expected

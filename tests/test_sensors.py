"""File-arrival sensor and schedules, evaluated the way the daemon does (context in, run requests out)."""

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from medallion_assets.definitions import defs
from resources.landing import LandingZone
from sensors.landing_scan import RECENT_DAYS, ScanCursor, plan, scan
from sensors.schedules import orders_daily_schedule

SENSOR = defs.resolve_sensor_def("orders_landing_sensor")


def land(root: Path, day: str, name: str, *, age_seconds: float = 120, text: str = '{"order_id": "o"}\n') -> Path:
    path = root / "orders" / f"date={day}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    when = time.time() - age_seconds
    os.utime(path, (when, when))
    return path


def tick(root: Path, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": LandingZone(root=str(root))})
    result = SENSOR(context)
    return list(result.run_requests or []), result.cursor


@pytest.fixture(autouse=True)
def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_SETTLE_SECONDS", "30")


def test_new_day_then_nothing_until_something_changes(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    land(tmp_path, "2024-01-03", "a.jsonl")
    requests, cursor = tick(tmp_path, None)
    assert sorted(r.partition_key for r in requests) == ["2024-01-02", "2024-01-03"]
    assert all(r.run_key.startswith(f"orders:{r.partition_key}:") for r in requests)
    again, cursor2 = tick(tmp_path, cursor)
    assert again == [] and cursor2 == cursor


def test_a_re_evaluated_tick_asks_for_the_same_run_keys(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    first, _ = tick(tmp_path, None)
    replay, _ = tick(tmp_path, None)  # the daemon re-running a tick from the same cursor
    assert [r.run_key for r in first] == [r.run_key for r in replay]  # deduplicated by run_key


def test_late_file_for_an_old_day_reruns_that_day(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=600)
    land(tmp_path, "2024-01-05", "a.jsonl", age_seconds=500)
    first, cursor = tick(tmp_path, None)
    land(tmp_path, "2024-01-02", "late.jsonl", age_seconds=60)
    late, cursor = tick(tmp_path, cursor)
    assert [r.partition_key for r in late] == ["2024-01-02"]
    old_key = next(r.run_key for r in first if r.partition_key == "2024-01-02")
    assert late[0].run_key != old_key
    assert tick(tmp_path, cursor)[0] == []


def test_in_flight_and_unsettled_files_are_ignored(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    _, cursor = tick(tmp_path, None)
    for name in ("b.jsonl.tmp", "_b.jsonl", ".b.jsonl", "notes.txt"):
        land(tmp_path, "2024-01-02", name, age_seconds=60)
    assert tick(tmp_path, cursor)[0] == []
    fresh = land(tmp_path, "2024-01-02", "c.jsonl", age_seconds=1)  # still being written
    requests, cursor_after = tick(tmp_path, cursor)
    assert requests == [] and cursor_after == cursor
    old = time.time() - 60
    os.utime(fresh, (old, old))  # now settled
    assert [r.partition_key for r in tick(tmp_path, cursor)[0]] == ["2024-01-02"]


def test_days_outside_the_partitions_are_skipped(tmp_path: Path) -> None:
    land(tmp_path, "2019-01-01", "a.jsonl")
    assert tick(tmp_path, None)[0] == []


def test_cursor_stays_bounded_after_1000_days(tmp_path: Path) -> None:
    from sensors.landing_scan import LandedFile

    now = time.time_ns()
    cursor = ScanCursor()
    sizes = []
    for i in range(1000):
        files = [LandedFile(f"day-{d:04d}", "a.jsonl", 10, now - (2000 - d) * 10**9) for d in range(i + 1)]
        due, cursor = plan(files, cursor, now_ns=now, settle_seconds=30)
        assert [d.day for d in due] == [f"day-{i:04d}"]
        sizes.append(len(cursor.dumps()))
    assert len(cursor.recent) == RECENT_DAYS
    assert max(sizes) < 3_000 and sizes[-1] == sizes[500]


def test_scan_reads_only_ready_files(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    land(tmp_path, "2024-01-02", "b.json")
    land(tmp_path, "2024-01-02", "c.jsonl.tmp")
    (tmp_path / "orders" / "not-a-day").mkdir()
    assert sorted(f.name for f in scan(tmp_path, "orders")) == ["a.jsonl", "b.json"]


def test_daily_schedule_runs_the_previous_day() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))
    request = orders_daily_schedule(context)
    assert request.partition_key == "2024-02-29" and request.run_key == "orders_daily:2024-02-29"
    assert orders_daily_schedule.cron_schedule == "0 2 * * *" and orders_daily_schedule.execution_timezone == "UTC"


def test_sensors_and_schedules_run_only_when_automation_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import sensors.landing_sensors as module

    assert SENSOR.default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("MEDALLION_AUTOMATION", "on")
    assert importlib.reload(module).automation_status() == dg.DefaultSensorStatus.RUNNING

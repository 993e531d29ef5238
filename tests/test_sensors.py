"""File-arrival sensor and schedules, evaluated the way the daemon does (context in, run requests out)."""

import hashlib
import json
import logging
import os
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pytest

from medallion_assets.definitions import defs
from medallion_assets.jobs import source_keys
from resources.landing import LandingZone
from sensors.landing_scan import RECENT_DAYS, REPORTED_MAX, LandedFile, ScanCursor, plan, scan
from sensors.landing_sensors import LOG_LINES
from sensors.schedules import orders_daily_schedule

SENSOR = defs.resolve_sensor_def("landing_sensor")


def land(
    root: Path,
    day: str,
    name: str,
    *,
    age_seconds: float = 120,
    text: str = '{"order_id": "o"}\n',
    source: str = "orders",
) -> Path:
    path = root / source / f"date={day}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    when = time.time() - age_seconds
    os.utime(path, (when, when))
    return path


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Tick(NamedTuple):
    requests: list[dg.RunRequest]
    cursor: str
    logs: list[tuple[str, str]]  # (level name, message)
    skip: str | None


def evaluate(root: Path | str, cursor: str | None) -> Tick:
    """One sensor tick the way the daemon runs it, with the tick's log lines."""
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": LandingZone(root=str(root))})
    handler = Records()
    context.log.addHandler(handler)
    result = SENSOR(context)
    skip = result.skip_reason.skip_message if result.skip_reason else None
    logs = [(r.levelname, r.getMessage()) for r in handler.records]
    return Tick(list(result.run_requests or []), result.cursor, logs, skip)


def tick(root: Path, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    result = evaluate(root, cursor)
    return result.requests, result.cursor


def warnings_about(logs: list[tuple[str, str]], text: str) -> list[str]:
    return [message for level, message in logs if level == "WARNING" and text in message]


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


def test_a_day_of_every_source_is_one_run_of_exactly_their_tables(tmp_path: Path) -> None:
    for source, name in (("orders", "a.jsonl"), ("customers", "a.csv"), ("payments", "a.jsonl")):
        land(tmp_path, "2024-01-02", name, source=source)
    land(tmp_path, "2024-01-03", "a.jsonl", source="payments")
    requests, cursor = tick(tmp_path, None)
    both, payments = sorted(requests, key=lambda r: r.partition_key)
    assert both.partition_key == "2024-01-02" and both.tags["medallion/sources"] == "orders,customers,payments"
    assert both.asset_selection == source_keys("orders", "customers", "payments")
    assert [part.split(":")[0] for part in both.run_key.split("+")] == ["orders", "customers", "payments"]
    assert payments.asset_selection == source_keys("payments") and payments.run_key.startswith("payments:2024-01-03:")
    job = defs.resolve_job_def(SENSOR.job_name)
    assert set(both.asset_selection) <= job.asset_layer.selected_asset_keys  # the sensor's job holds them all
    assert tick(tmp_path, cursor)[0] == []


def test_a_source_still_settling_runs_later_on_its_own(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    land(tmp_path, "2024-01-02", "a.csv", source="customers", age_seconds=1)  # still being written
    (orders,), cursor = tick(tmp_path, None)
    assert orders.asset_selection == source_keys("orders")
    land(tmp_path, "2024-01-02", "a.csv", source="customers", age_seconds=120)
    (customers,), cursor = tick(tmp_path, cursor)
    assert customers.asset_selection == source_keys("customers") and customers.partition_key == "2024-01-02"
    assert tick(tmp_path, cursor)[0] == []


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
    quiet = evaluate(tmp_path, cursor)  # notes.txt is named in a warning (never read); the rest are in flight
    assert quiet.requests == [] and len(warnings_about(quiet.logs, "notes.txt")) == 1
    assert not [m for _, m in quiet.logs if "b.jsonl" in m]
    cursor = quiet.cursor
    fresh = land(tmp_path, "2024-01-02", "c.jsonl", age_seconds=1)  # still being written
    requests, cursor_after = tick(tmp_path, cursor)
    assert requests == [] and cursor_after == cursor
    old = time.time() - 60
    os.utime(fresh, (old, old))  # now settled
    assert [r.partition_key for r in tick(tmp_path, cursor)[0]] == ["2024-01-02"]


def test_days_outside_the_partitions_are_skipped(tmp_path: Path) -> None:
    land(tmp_path, "2019-01-01", "a.jsonl")
    assert tick(tmp_path, None)[0] == []


def days_from(first: str, count: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(count)]


def test_cursor_stays_bounded_after_1000_days() -> None:
    now = time.time_ns()
    days = days_from("2024-01-01", 1000)
    cursor = ScanCursor()
    sizes = []
    for i, day in enumerate(days):
        files = [LandedFile(d, "a.jsonl", 10, now - (2000 - n) * 10**9) for n, d in enumerate(days[: i + 1])]
        due, cursor = plan(files, cursor, now_ns=now, settle_seconds=30)
        assert [d.day for d in due] == [day]
        sizes.append(len(cursor.dumps()))
    assert len(cursor.recent) == RECENT_DAYS
    months_added = len({d[:7] for d in days}) - len({d[:7] for d in days[:501]})
    assert sizes[-1] - sizes[500] <= 40 * months_added  # grows by one short entry per month, not per day
    assert max(sizes) < 6_000


def test_cursor_for_ten_years_of_days_stays_under_10_kb() -> None:
    now = time.time_ns()
    days = days_from("2024-01-01", 3653)
    files = [LandedFile(d, f"part-{i}.jsonl", 1000 + n, now - 10**12 + n) for n, d in enumerate(days) for i in range(3)]
    due, cursor = plan(files, ScanCursor(), now_ns=now, settle_seconds=30)
    assert len(due) == len(days) and len(cursor.months) == len({d[:7] for d in days}) == 120
    cursor.reported = [f"{i:08x}" for i in range(REPORTED_MAX)]  # the most skipped entries it remembers
    assert len(cursor.dumps()) < 10_000
    late = [*files, LandedFile("2024-03-05", "late.jsonl", 7, now - 10**13)]  # old mtime, day long forgotten
    due, after = plan(late, ScanCursor.loads(cursor.dumps()), now_ns=now, settle_seconds=30)
    assert "2024-03-05" in [d.day for d in due] and {d.day[:7] for d in due} == {"2024-03"}
    assert len(after.dumps()) < 10_000


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


# --- files whose mtimes are older than what the sensor has seen (cp -p, rsync -a, mv) -------------------------


def test_a_new_day_copied_with_old_mtimes_is_picked_up(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=60)
    _, cursor = tick(tmp_path, None)
    land(tmp_path, "2024-01-05", "a.jsonl", age_seconds=10 * 86_400)  # cp -p of a file written 10 days ago
    requests, cursor = tick(tmp_path, cursor)
    assert [r.partition_key for r in requests] == ["2024-01-05"]
    assert tick(tmp_path, cursor)[0] == []


def test_an_old_day_changed_long_after_it_left_the_recent_days_is_rerun(tmp_path: Path) -> None:
    days = days_from("2024-01-01", RECENT_DAYS + 40)
    for n, day in enumerate(days):
        land(tmp_path, day, "a.jsonl", age_seconds=10_000 - n)
    first, cursor = tick(tmp_path, None)
    assert len(first) == len(days)
    land(tmp_path, "2024-01-10", "b.jsonl", age_seconds=400 * 86_400)  # mv of an old file into an old day
    requests, cursor = tick(tmp_path, cursor)
    changed = [r for r in requests if r.partition_key == "2024-01-10"]
    assert len(changed) == 1 and changed[0].run_key not in {r.run_key for r in first}
    others = [r for r in requests if r.partition_key != "2024-01-10"]
    assert all(r.partition_key.startswith("2024-01-") for r in others)
    assert {r.run_key for r in others} <= {r.run_key for r in first}  # run_key dedupe: these launch nothing
    assert tick(tmp_path, cursor)[0] == []


def test_a_deleted_file_reruns_its_day(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=600)
    gone = land(tmp_path, "2024-01-02", "b.jsonl", age_seconds=900)
    first, cursor = tick(tmp_path, None)
    gone.unlink()
    requests, cursor = tick(tmp_path, cursor)
    assert [(r.partition_key, r.tags["medallion/files"]) for r in requests] == [("2024-01-02", "1")]
    assert requests[0].run_key != first[0].run_key
    assert tick(tmp_path, cursor)[0] == []


def old_fingerprint(*paths: Path) -> str:
    """The fingerprint the sensor has always used: run_keys already launched must stay the same."""
    digest = hashlib.sha1()
    for path in sorted(paths, key=lambda p: p.name):
        st = path.stat()
        digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def test_a_cursor_it_cannot_read_starts_over_with_the_same_run_keys(tmp_path: Path) -> None:
    """A per-source sensor's cursor (before one sensor scanned every source) or a damaged one: every day is
    looked at again and asked for under the run key it had, so the daemon's run_key dedupe launches nothing
    twice (and days built from the same files are not asked for at all, see test_automation)."""
    seen = land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=600)
    hidden = land(tmp_path, "2024-01-03", "a.jsonl", age_seconds=900)
    fresh, _ = tick(tmp_path, None)
    for old in (json.dumps({"r": {"2024-01-02": old_fingerprint(seen)}, "w": seen.stat().st_mtime_ns}), "{not json"):
        requests, _ = tick(tmp_path, old)
        assert (
            [r.run_key for r in requests]
            == [r.run_key for r in fresh]
            == [
                f"orders:2024-01-02:{old_fingerprint(seen)}",
                f"orders:2024-01-03:{old_fingerprint(hidden)}",
            ]
        )


# --- unexpected entries are logged once ------------------------------------------------------------------------


UNEXPECTED = [
    ("date=2024-01-01 ", "not a YYYY-MM-DD date"),
    ("date=2024-1-2", "not a YYYY-MM-DD date"),
    ("date=..", "not a YYYY-MM-DD date"),
    ("date=2024-02-30", "not a valid calendar date"),
    ("2024-01-04", "not a date=YYYY-MM-DD folder"),
]


def test_unexpected_day_folders_are_logged_once_with_the_reason(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-03", "a.jsonl")
    for name, _ in UNEXPECTED:
        (tmp_path / "orders" / name).mkdir()
        (tmp_path / "orders" / name / "a.jsonl").write_text("{}\n")
    (tmp_path / "orders" / "README.md").write_text("hello\n")
    first = evaluate(tmp_path, None)
    assert [r.partition_key for r in first.requests] == ["2024-01-03"]
    for name, reason in [*UNEXPECTED, ("README.md", "not a date=YYYY-MM-DD folder")]:
        logged = warnings_about(first.logs, repr(f"orders/{name}"))
        assert len(logged) == 1 and reason in logged[0], (name, logged)
    second = evaluate(tmp_path, first.cursor)
    assert second.logs == [] and second.requests == []


def test_days_outside_the_partitions_are_logged_once(tmp_path: Path) -> None:
    land(tmp_path, "2019-01-01", "a.jsonl")
    land(tmp_path, "2999-01-01", "a.jsonl")
    first = evaluate(tmp_path, None)
    assert first.requests == []
    assert "before the first daily partition" in warnings_about(first.logs, "orders/date=2019-01-01")[0]
    assert "after the last daily partition" in warnings_about(first.logs, "orders/date=2999-01-01")[0]
    assert evaluate(tmp_path, first.cursor).logs == []


# --- symlinks are never followed -------------------------------------------------------------------------------


def test_symlinked_files_and_day_folders_are_skipped_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    day = root / "orders" / "date=2024-01-02"
    day.mkdir(parents=True)
    (day / "p.jsonl").symlink_to(secret)
    outside_day = tmp_path / "elsewhere" / "day"
    outside_day.mkdir()
    (outside_day / "a.jsonl").write_text("{}\n")
    (root / "orders" / "date=2024-01-03").symlink_to(outside_day, target_is_directory=True)
    assert scan(root, "orders") == []
    first = evaluate(root, None)
    assert first.requests == []
    assert "symlink" in warnings_about(first.logs, "'orders/date=2024-01-02/p.jsonl'")[0]
    assert "symlink" in warnings_about(first.logs, "'orders/date=2024-01-03'")[0]
    assert evaluate(root, first.cursor).logs == []


def test_a_day_of_misnamed_files_is_named_in_a_warning_not_silently_passed_over(tmp_path: Path) -> None:
    """``.JSONL`` (names are case-sensitive), ``.ndjson`` or a subfolder: the sensor requested nothing and said
    nothing, so a day landed under such names was never noticed. Each is named once, with why."""
    root = tmp_path / "landing"
    land(root, "2024-01-02", "part-000.JSONL")
    land(root, "2024-01-02", "part-001.ndjson")
    (root / "orders" / "date=2024-01-02" / "batch2").mkdir()
    first = evaluate(root, None)
    assert first.requests == []
    assert ".jsonl" in warnings_about(first.logs, "'orders/date=2024-01-02/part-000.JSONL'")[0]
    assert warnings_about(first.logs, "'orders/date=2024-01-02/part-001.ndjson'")
    assert "folder" in warnings_about(first.logs, "'orders/date=2024-01-02/batch2'")[0]
    assert evaluate(root, first.cursor).logs == []


def test_a_symlinked_source_folder_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    land(real, "2024-01-02", "a.jsonl")
    root = tmp_path / "landing"
    root.mkdir()
    (root / "orders").symlink_to(real / "orders", target_is_directory=True)
    result = evaluate(root, None)
    assert result.requests == [] and "symlink" in (result.skip or "")
    assert "symlink" in warnings_about(result.logs, "'orders'")[0]
    assert evaluate(root, result.cursor).logs == []


def test_the_landing_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    land(tmp_path / "real", "2024-01-02", "a.jsonl")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert [r.partition_key for r in tick(tmp_path / "link", None)[0]] == ["2024-01-02"]


# --- the landing root ------------------------------------------------------------------------------------------


def test_a_missing_landing_root_is_an_error_naming_root_and_setting(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    _, cursor = tick(tmp_path, None)
    missing = tmp_path / "nonexistent"
    result = evaluate(missing, cursor)
    assert result.requests == []
    assert str(missing) in (result.skip or "") and "MEDALLION_LANDING_ROOT" in (result.skip or "")
    assert [level for level, message in result.logs if str(missing) in message] == ["ERROR"]
    assert evaluate(missing, result.cursor).logs == []  # logged once; the skip reason says it every tick
    assert tick(tmp_path, result.cursor)[0] == []  # the root back: nothing it knew is re-requested


def test_a_root_without_the_source_folder_yet_skips_quietly(tmp_path: Path) -> None:
    result = evaluate(tmp_path, None)
    assert result.requests == [] and result.logs == []
    assert "no orders folder" in (result.skip or "")


# --- neighbours ------------------------------------------------------------------------------------------------


def test_file_names_with_glob_characters_are_fingerprinted_like_any_other(tmp_path: Path) -> None:
    names = ["part-*.jsonl", "a[0-9].jsonl", "{x,y}.jsonl", "a?.jsonl"]
    for name in names:
        land(tmp_path, "2024-01-02", name)
    assert sorted(f.name for f in scan(tmp_path, "orders")) == sorted(names)
    first, cursor = tick(tmp_path, None)
    assert first[0].tags["medallion/files"] == "4"
    land(tmp_path, "2024-01-02", "a1.jsonl")  # matches the glob a[0-9].jsonl: must still be a change
    again, _ = tick(tmp_path, cursor)
    assert [r.tags["medallion/files"] for r in again] == ["5"]


def test_non_utf8_file_names_do_not_crash_the_tick(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    folder = os.fsencode(tmp_path / "orders" / "date=2024-01-02")
    path = os.path.join(folder, b"caf\xe9.jsonl")
    with open(path, "wb") as handle:
        handle.write(b"{}\n")
    old = time.time() - 120
    os.utime(path, (old, old))
    requests, _ = tick(tmp_path, None)
    assert [r.tags["medallion/files"] for r in requests] == ["2"]


def test_an_emptied_day_folder_requests_a_run_with_no_files(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=600)
    land(tmp_path, "2024-01-03", "a.jsonl", age_seconds=600)
    first, cursor = tick(tmp_path, None)
    folder = tmp_path / "orders" / "date=2024-01-02"
    for path in folder.iterdir():
        path.unlink()
    assert tick(tmp_path, cursor) == ([], cursor)  # the folder just changed: it settles first
    old = time.time() - 60
    os.utime(folder, (old, old))
    result = evaluate(tmp_path, cursor)
    assert [(r.partition_key, r.tags["medallion/files"]) for r in result.requests] == [("2024-01-02", "0")]
    assert result.requests[0].run_key not in {r.run_key for r in first}
    assert warnings_about(result.logs, "date=2024-01-02")
    assert evaluate(tmp_path, result.cursor).requests == []
    land(tmp_path, "2024-01-02", "a.jsonl", age_seconds=60, text='{"order_id": "again"}\n')
    assert [r.tags["medallion/files"] for r in tick(tmp_path, result.cursor)[0]] == ["1"]


def test_a_day_folder_that_never_had_files_requests_nothing(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    folder = tmp_path / "orders" / "date=2024-01-05"
    folder.mkdir()
    old = time.time() - 600
    os.utime(folder, (old, old))
    assert [r.partition_key for r in tick(tmp_path, None)[0]] == ["2024-01-02"]


def test_a_removed_day_folder_is_logged_once_and_not_run(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    land(tmp_path, "2024-01-03", "a.jsonl")
    _, cursor = tick(tmp_path, None)
    shutil.rmtree(tmp_path / "orders" / "date=2024-01-02")
    result = evaluate(tmp_path, cursor)
    assert result.requests == [] and len(warnings_about(result.logs, "date=2024-01-02")) == 1
    assert evaluate(tmp_path, result.cursor).logs == []


def deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make ``os.scandir`` of ``denied`` fail as an unreadable folder does (the tests may run as root)."""
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if os.fspath(path) == str(denied):
            raise PermissionError(13, "Permission denied", str(denied))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_day_folder_does_not_crash_the_tick_and_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    land(tmp_path, "2024-01-03", "a.jsonl")
    with monkeypatch.context() as patch:
        deny(patch, tmp_path / "orders" / "date=2024-01-02")
        first = evaluate(tmp_path, None)
        assert [r.partition_key for r in first.requests] == ["2024-01-03"]
        assert "Permission denied" in warnings_about(first.logs, "'orders/date=2024-01-02'")[0]
        second = evaluate(tmp_path, first.cursor)
        assert second.requests == [] and second.logs == []
    readable = evaluate(tmp_path, second.cursor)
    assert [r.partition_key for r in readable.requests] == ["2024-01-02"]


def test_an_unreadable_source_folder_is_an_error_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    deny(monkeypatch, tmp_path / "orders")
    result = evaluate(tmp_path, None)
    assert result.requests == [] and "Permission denied" in (result.skip or "")
    assert [level for level, _ in result.logs] == ["ERROR"]


def test_an_unreadable_file_holds_its_day_until_it_can_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    locked = land(tmp_path, "2024-01-02", "b.jsonl")
    real = os.access
    with monkeypatch.context() as patch:
        patch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(locked) and real(path, mode, **kw))
        first = evaluate(tmp_path, None)
        assert first.requests == [] and "cannot be read" in warnings_about(first.logs, "b.jsonl")[0]
    requests, _ = tick(tmp_path, first.cursor)  # chmod changes no mtime: the day still gets its run
    assert [r.tags["medallion/files"] for r in requests] == ["2"]


def test_a_file_renamed_away_during_the_scan_does_not_crash_the_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    moving = land(tmp_path, "2024-01-02", "b.jsonl")
    folder = str(moving.parent)
    real = os.scandir

    class Listed(list):  # what os.scandir returns: an iterator usable as a context manager
        def __enter__(self) -> "Listed":
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def scandir(path: object = ".") -> object:
        if os.fspath(path) != folder:
            return real(path)
        with real(path) as listing:
            entries = Listed(listing)
        if moving.exists():
            moving.rename(moving.with_name("c.jsonl"))  # between listing and stat
        return entries

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        first = evaluate(tmp_path, None)
    assert first.requests == []  # the day is in flux: decided next tick
    assert [r.tags["medallion/files"] for r in tick(tmp_path, first.cursor)[0]] == ["2"]


def test_many_unexpected_entries_are_logged_once_within_a_bounded_cursor(tmp_path: Path) -> None:
    land(tmp_path, "2024-01-02", "a.jsonl")
    for n in range(REPORTED_MAX + 50):
        (tmp_path / "orders" / f"junk-{n:03d}").mkdir()
    first = evaluate(tmp_path, None)
    assert len(first.logs) == LOG_LINES + 1 and f"{REPORTED_MAX + 50 - LOG_LINES} more" in first.logs[-1][1]
    assert len(json.loads(first.cursor)["s"]["orders"]["k"]) == REPORTED_MAX
    assert evaluate(tmp_path, first.cursor).logs == []
    (tmp_path / "orders" / "junk-999").mkdir()  # one more, past the remembered ones: reported again, in bulk
    assert evaluate(tmp_path, first.cursor).logs != []

"""No input, less input or a missing landing root never replaces a published day without an explicit decision."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets import run_log
from resources.delta_store import DeltaTableStore
from resources.landing import LandingZone
from resources.settings import Settings

from .conftest import materialize_days

DAY = "2024-01-02"
TABLES = ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales")
FORCE = {"medallion/allow_shrink": "true"}


def day_rows(store: DeltaTableStore, table: str, day: str = DAY) -> int:
    if not store.exists(table):
        return 0
    frame = DeltaTable(store.table_uri(table)).to_pandas(columns=["order_date"])
    return int((frame["order_date"].astype(str) == day).sum())


def snapshot(store: DeltaTableStore) -> dict[str, tuple[int, int | None]]:
    """Rows of the day and Delta version, per table."""
    return {t: (day_rows(store, t), store.version(t)) for t in TABLES}


def step_error(result: dg.ExecuteInProcessResult, step: str) -> str:
    failure = result.failure_data_for_node(step)
    return failure.error.to_string() if failure else ""


@pytest.fixture
def published(resources, store, sample) -> dict[str, tuple[int, int | None]]:
    """Day 2024-01-02 published through gold; returns the snapshot of every table."""
    assert materialize_days(resources, DAY).success
    before = snapshot(store)
    assert all(rows > 0 for rows, _ in before.values()), before
    return before


def test_a_missing_landing_root_fails_at_start_and_keeps_every_table(resources, store, published, tmp_path) -> None:
    missing = tmp_path / "nonexistent"
    result = materialize_days({**resources, "landing": LandingZone(root=str(missing))}, DAY)
    assert not result.success
    message = step_error(result, "bronze__orders")
    assert str(missing) in message and "MEDALLION_LANDING_ROOT" in message
    assert snapshot(store) == published
    assert not [e for e in result.get_asset_materialization_events()]


def test_a_day_whose_files_are_gone_is_refused_and_keeps_the_published_day(
    resources, store, published, landing_root: Path
) -> None:
    shutil.rmtree(landing_root / "orders" / f"date={DAY}")  # a retention policy removed the day's files
    result = materialize_days(resources, DAY)
    assert not result.success
    message = step_error(result, "bronze__orders")
    assert "no landing files" in message and f"orders/date={DAY}" in message
    assert "medallion/allow_shrink" in message  # says how to replace it on purpose
    assert snapshot(store) == published
    attempt = run_log.latest_attempts(store, "bronze/orders", [DAY])[DAY]
    assert attempt["passed"] is False and "no landing files" in attempt["error_message"]


def test_an_empty_day_replaces_the_published_day_only_when_forced(resources, store, published, landing_root) -> None:
    shutil.rmtree(landing_root / "orders" / f"date={DAY}")
    result = materialize_days(resources, DAY, tags=FORCE)
    assert result.success
    assert day_rows(store, "bronze/orders") == 0 and day_rows(store, "silver/orders") == 0


def test_a_day_never_published_with_no_files_is_refused_not_written(resources, store, sample) -> None:
    result = materialize_days(resources, "2024-01-05")  # the sample covers 01-01..01-03
    assert not result.success
    assert "no landing files" in step_error(result, "bronze__orders")
    assert not store.exists("bronze/orders")


def test_a_shrinking_rerun_is_refused_with_both_counts(resources, store, published, landing_root) -> None:
    folder = landing_root / "orders" / f"date={DAY}"
    kept = (folder / "part-000.jsonl").read_text().splitlines()[:50]
    for path in folder.iterdir():
        path.unlink()
    (folder / "part-000.jsonl").write_text("\n".join(kept) + "\n")  # a partial re-delivery
    result = materialize_days(resources, DAY)
    assert not result.success
    message = step_error(result, "bronze__orders")
    assert f"{published['bronze/orders'][0]}" in message and "50" in message
    assert "MEDALLION_MIN_VOLUME_SHARE" in message
    assert snapshot(store) == published
    forced = materialize_days(resources, DAY, tags=FORCE, selection="bronze/orders")
    assert forced.success and day_rows(store, "bronze/orders") == 50


def test_a_rerun_without_a_file_that_fed_the_published_day_is_refused_naming_it(
    resources, store, sample, landing_root
) -> None:
    """A file the published day was built from is gone, or not read now: the day would lose its rows without a
    word while it keeps more than ``MEDALLION_MIN_VOLUME_SHARE`` of them (it did, exit 0). Refused, naming the
    file; the run tag replaces the day on purpose. The re-delivered updates (15 of a day's 522 lines) go: removed
    on the first day, renamed on the second (the same lines under a new name: a decision, not a guess), replaced
    by a link on the third, and the first day's status updates are in flight again."""
    days = ["2024-01-01", DAY, "2024-01-03"]
    assert materialize_days(resources, days[0], days[-1], selection="bronze/orders").success
    before = {day: day_rows(store, "bronze/orders", day) for day in days}
    folder = {day: landing_root / "orders" / f"date={day}" for day in days}
    (folder[days[0]] / "part-002.json").unlink()
    (folder[days[0]] / "part-001.jsonl").rename(folder[days[0]] / "part-001.jsonl.tmp")
    (folder[DAY] / "part-002.json").rename(folder[DAY] / "part-002-b.json")
    elsewhere = landing_root.parent / "elsewhere.json"
    (folder[days[2]] / "part-002.json").rename(elsewhere)
    (folder[days[2]] / "part-002.json").symlink_to(elsewhere)
    result = materialize_days(resources, days[0], days[-1], selection="bronze/orders")
    assert not result.success  # no day could be published
    refused = {r["partition"]: r["error_message"] for r in run_log.refused_in_run(store, result.run_id)}
    assert set(refused) == set(days)
    for day in days:
        assert f"orders/date={day}/part-002.json" in refused[day] and "medallion/allow_shrink" in refused[day]
    assert f"orders/date={days[0]}/part-001.jsonl" in refused[days[0]]
    assert {day: day_rows(store, "bronze/orders", day) for day in days} == before
    forced = materialize_days(resources, days[0], days[-1], tags=FORCE, selection="bronze/orders")
    assert forced.success and day_rows(store, "bronze/orders", DAY) == before[DAY]  # renamed: the same lines


@pytest.mark.parametrize("kept_lines", [0, 3])
def test_a_file_that_fed_the_published_day_emptied_or_cut_short_is_refused_naming_it(
    resources, store, sample, landing_root, kept_lines: int
) -> None:
    """One of a day's files is emptied (or cut to a few lines) while the day keeps more than
    ``MEDALLION_MIN_VOLUME_SHARE`` of its rows: its rows went from every table with exit 0. A file the published day
    was built from that now gives less than that share of its lines is refused as a file gone is, naming it; the
    run tag replaces the day on purpose."""
    assert materialize_days(resources, DAY).success
    before = snapshot(store)
    path = min((landing_root / "orders" / f"date={DAY}").iterdir(), key=lambda p: p.stat().st_size)
    lines = path.read_text().splitlines()
    path.write_text("".join(f"{line}\n" for line in lines[:kept_lines]))
    result = materialize_days(resources, DAY)
    assert not result.success
    message = step_error(result, "bronze__orders")
    assert f"orders/date={DAY}/{path.name}" in message and f"{len(lines)} lines" in message
    assert "MEDALLION_MIN_VOLUME_SHARE" in message and "medallion/allow_shrink" in message
    assert snapshot(store) == before
    forced = materialize_days(resources, DAY, tags=FORCE)
    assert forced.success and day_rows(store, "bronze/orders") == before["bronze/orders"][0] - len(lines) + kept_lines


def test_a_file_gone_between_listing_and_reading_refuses_its_day_only(
    resources, store, sample, landing_root, monkeypatch
) -> None:
    """It failed the whole range (FileNotFoundError); the other days publish, and its day is refused naming it."""
    from medallion_assets import ingest

    read, vanishing = ingest.read_json_lines, f"orders/date={DAY}/part-001.jsonl"

    def vanishes(file, **kwargs):
        if file.relative == vanishing:
            file.path.unlink()
        return read(file, **kwargs)

    monkeypatch.setattr(ingest, "read_json_lines", vanishes)
    result = materialize_days(resources, "2024-01-01", "2024-01-03", selection="bronze/orders")
    assert result.success  # the other days publish
    [refused] = run_log.refused_in_run(store, result.run_id)
    assert refused["partition"] == DAY and vanishing in refused["error_message"]
    assert "could not be read" in refused["error_message"]
    assert day_rows(store, "bronze/orders", "2024-01-01") > 0
    assert day_rows(store, "bronze/orders", "2024-01-03") > 0 and day_rows(store, "bronze/orders") == 0


def test_a_file_the_reader_fails_on_refuses_its_day_only_naming_it(
    resources, store, sample, landing_root, monkeypatch
) -> None:
    """Content the landing reader fails on (an escaped lone surrogate beside an exact number raised
    ``UnicodeEncodeError`` from Arrow) failed every day of the range, naming no file. Whatever the reader's fault,
    its day is now refused naming the file and the error; the other days publish."""
    from medallion_assets import ingest

    read, faulty = ingest.read_json_lines, f"orders/date={DAY}/part-001.jsonl"

    def fails(file, **kwargs):
        if file.relative == faulty:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return read(file, **kwargs)

    monkeypatch.setattr(ingest, "read_json_lines", fails)
    result = materialize_days(resources, "2024-01-01", "2024-01-03", selection="bronze/orders")
    assert result.success  # the other days publish
    [refused] = run_log.refused_in_run(store, result.run_id)
    assert refused["partition"] == DAY and faulty in refused["error_message"]
    assert "UnicodeEncodeError" in refused["error_message"]
    assert day_rows(store, "bronze/orders", "2024-01-01") > 0
    assert day_rows(store, "bronze/orders", "2024-01-03") > 0 and day_rows(store, "bronze/orders") == 0


def test_a_file_written_to_after_listing_refuses_its_day_only(resources, store, published, monkeypatch) -> None:
    """A writer still appending when the run read the file: its day was replaced by what stood at that moment (a
    half-written last line quarantined as corrupt). Now the day is refused naming the file, and the published day
    stays; the other days publish."""
    from medallion_assets import ingest

    read, growing = ingest.read_json_lines, f"orders/date={DAY}/part-001.jsonl"

    def grows(file, **kwargs):
        if file.relative == growing:
            with file.path.open("ab") as f:
                f.write(b'{"order_id": "late", "amount": 1')
        return read(file, **kwargs)

    monkeypatch.setattr(ingest, "read_json_lines", grows)
    before = day_rows(store, "bronze/orders", DAY)
    result = materialize_days(resources, "2024-01-01", "2024-01-03", selection="bronze/orders")
    assert result.success  # the other days publish
    [refused] = run_log.refused_in_run(store, result.run_id)
    assert refused["partition"] == DAY and growing in refused["error_message"]
    assert "changed while it was read (listed" in refused["error_message"]
    assert day_rows(store, "bronze/orders", DAY) == before


def test_the_volume_share_is_configurable(resources, store, published, landing_root, monkeypatch) -> None:
    folder = landing_root / "orders" / f"date={DAY}"
    updates = folder / "part-001.jsonl"  # the status updates, about 60 % of the day's lines, re-delivered in part
    lines = updates.read_text().splitlines()
    updates.write_text("".join(f"{line}\n" for line in lines[: len(lines) * 3 // 10]))
    assert not materialize_days(resources, DAY, selection="bronze/orders").success  # the file keeps 30 % < 50 %
    monkeypatch.setenv("MEDALLION_MIN_VOLUME_SHARE", "0.2")
    result = materialize_days({**resources, "settings": Settings.from_env()}, DAY, selection="bronze/orders")
    assert result.success
    assert 0 < day_rows(store, "bronze/orders") < published["bronze/orders"][0]


def test_a_range_refuses_only_the_empty_day(resources, store, sample, landing_root) -> None:
    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    shutil.rmtree(landing_root / "orders" / "date=2024-01-02")
    before = snapshot(store)
    result = materialize_days(resources, "2024-01-01", "2024-01-03")
    assert result.success  # the other days publish
    assert snapshot(store)["bronze/orders"][0] == before["bronze/orders"][0]
    refused = {r["partition"] for r in run_log.refused_in_run(store, result.run_id)}
    assert refused == {DAY}


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), OSError(30, "Read-only file system"),
     RuntimeError("(org.apache.spark.SparkException) write failed: No space left on device (os error 28)")],
    ids=["disk full", "read-only", "engine's disk full"],
)  # fmt: skip
def test_a_lakehouse_that_refuses_writes_is_named_with_its_setting(resources, store, published, monkeypatch, error):
    """A full disk or a read-only lakehouse failed the step with ``OSError: [Errno 28] Error writing bytes to
    file``, naming no table, root or setting."""
    from medallion_assets import factory

    def refuses(*args, **kwargs):
        raise RuntimeError("the write went wrong") from error

    monkeypatch.setattr(factory, "_write_table", refuses)
    result = materialize_days(resources, DAY, selection="bronze/orders")
    assert not result.success
    message = step_error(result, "bronze__orders")
    assert store.root_uri in message and "MEDALLION_LAKEHOUSE_ROOT" in message and f"bronze/orders {DAY}" in message
    assert snapshot(store) == published


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "nan"])
def test_invalid_settings_are_caught_when_the_definitions_load(value: str, monkeypatch) -> None:
    from resources.settings import SettingsError

    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER", value)
    with pytest.raises(SettingsError, match="MEDALLION_THRESHOLD_SILVER"):
        Settings.from_env()

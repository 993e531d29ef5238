"""The run log: counts that add up on every layer, and a failed log write that never silently refuses data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets import run_log
from medallion_assets.definitions import ASSETS, CHECKS, TABLES
from medallion_assets.sample_data import generate, generate_customers, generate_payments
from resources.delta_store import DeltaTableStore

from .conftest import materialize_days, range_tags


def test_every_count_in_the_run_log_adds_up_and_is_never_negative(resources, store, landing_root: Path) -> None:
    start = date(2024, 1, 1)
    generate(landing_root, days=2, orders_per_day=300, seed=3)
    generate_payments(landing_root, days=2, orders_per_day=300, seed=3, start=start)
    generate_customers(landing_root, days=2, customers=1000, seed=3, start=start)
    partitioned = [t for t, a in TABLES.items() if a.partitions_def is not None]
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=dg.AssetSelection.assets(*(TABLES[t] for t in partitioned)),
        tags=range_tags("2024-01-01", "2024-01-02"),
        raise_on_error=False,
    )
    assert result.success
    whole = dg.materialize(
        [*ASSETS, *CHECKS],
        resources={**resources, "settings": resources["settings"].model_copy(update={"thresholds": {"silver": 0.5}})},
        selection=dg.AssetSelection.assets(*(a for t, a in TABLES.items() if t not in partitioned)),
        raise_on_error=False,
    )
    assert whole.success
    log = DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()
    assert set(log.asset) == set(TABLES)
    counts = log[["rows_in", "rows_written", "quarantined", "superseded"]]
    assert (counts >= 0).all().all()
    published = log[log.passed]
    assert (published.rows_in == published.rows_written + published.quarantined + published.superseded).all()
    bronze = log[log.layer == "bronze"]
    assert (bronze.superseded == 0).all() and (bronze.quarantined == 0).all() and (bronze.pass_rate < 1).any()
    assert (log[log.asset == "silver/orders"].superseded > 0).all()


def test_a_failed_run_log_write_never_refuses_the_next_layer(resources, store, landing_root, monkeypatch) -> None:
    generate(landing_root, days=1, orders_per_day=300, seed=5)
    original = run_log.record

    failures = []

    def broken(store_, rows):
        if not failures:  # the first append of the log fails: bronze's own
            failures.append(rows)
            raise OSError("disk full")
        return original(store_, rows)

    monkeypatch.setattr(run_log, "record", broken)
    bronze = materialize_days(resources, "2024-01-01", selection="bronze/orders")
    assert bronze.success  # the data is published and its record is in the commit
    [event] = bronze.get_asset_materialization_events()[:1]
    assert event.materialization.metadata["run_log_pending"].value is True
    assert run_log.latest_attempts(store, "bronze/orders", ["2024-01-01"]) == {}
    silver = materialize_days(resources, "2024-01-01", selection="silver/orders")
    assert silver.success  # reconciled from bronze's commit, not refused
    [attempt] = run_log.latest_attempts(store, "bronze/orders", ["2024-01-01"]).values()
    assert attempt["passed"] is True and attempt["run_id"] == bronze.run_id
    log = DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()
    assert log[log.asset == "bronze/orders"].reconciled.tolist() == [True]


def test_only_the_commits_after_the_reconciled_mark_are_read(resources, store, landing_root, monkeypatch) -> None:
    """Each step read its table's and its upstreams' last 20 commits (a year's range note among them) and looked
    them up in the log: about 0.1 s a day's run. A run that logged its own commit moves the mark on to it."""
    generate(landing_root, days=2, orders_per_day=300, seed=8)
    assert materialize_days(resources, "2024-01-01", selection="bronze/orders").success
    read: list[int] = []
    original_notes, original_record = DeltaTableStore.commit_notes, run_log.record

    def notes(self, table, key, *, limit):
        read.append(limit)
        return original_notes(self, table, key, limit=limit)

    def broken(store_, rows):
        raise OSError("disk full")

    monkeypatch.setattr(DeltaTableStore, "commit_notes", notes)
    assert run_log.reconcile(store, ["bronze/orders"]) == [] and read == []  # the log holds the last commit
    monkeypatch.setattr(run_log, "record", broken)
    second = materialize_days(resources, "2024-01-02", selection="bronze/orders")
    assert second.success and read == []
    monkeypatch.setattr(run_log, "record", original_record)
    [row] = run_log.reconcile(store, ["bronze/orders"])  # the commit whose log write failed, and only that one
    assert (row.run_id, row.partition, row.reconciled) == (second.run_id, "2024-01-02", True)
    assert read == [1]
    assert run_log.reconcile(store, ["bronze/orders"]) == [] and len(read) == 1
    assert run_log.latest_attempts(store, "bronze/orders", ["2024-01-02"])["2024-01-02"]["run_id"] == second.run_id
    # a commit landing while the notes are read may push an unread one out of them: the mark then stays behind
    monkeypatch.setattr(run_log, "record", broken)
    third = materialize_days(resources, "2024-01-02", selection="bronze/orders")
    monkeypatch.setattr(run_log, "record", original_record)
    marked, real_version = store.marked_version("bronze/orders", run_log.RECONCILED), DeltaTableStore.version
    seen: list[int] = []

    def moving(self, table):
        version = real_version(self, table)
        seen.append(version) if table == "bronze/orders" else None
        return version + (len(seen) == 2 and table == "bronze/orders")

    monkeypatch.setattr(DeltaTableStore, "version", moving)
    assert [r.run_id for r in run_log.reconcile(store, ["bronze/orders"])] == [third.run_id]
    monkeypatch.setattr(DeltaTableStore, "version", real_version)
    assert store.marked_version("bronze/orders", run_log.RECONCILED) == marked == store.version("bronze/orders") - 1


@pytest.mark.parametrize("table", ["bronze/orders", "silver/orders"])
def test_commits_carry_their_run_log_rows(resources, store, landing_root, table) -> None:
    generate(landing_root, days=1, orders_per_day=300, seed=6)
    result = materialize_days(resources, "2024-01-01")
    assert result.success
    [(version, notes)] = store.commit_notes(table, run_log.NOTE_KEY, limit=1)
    assert version == store.version(table)
    assert [(n["run_id"], n["partition"], n["passed"]) for n in notes] == [(result.run_id, "2024-01-01", True)]

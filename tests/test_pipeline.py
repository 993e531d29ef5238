"""The orders graph end to end through Dagster on Sail, into real Delta tables read back with deltalake."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from medallion_assets import run_log
from medallion_assets.factory import Run
from medallion_assets.orders import SILVER_SPEC
from medallion_assets.quality.gate import DayOutcome, DayStats
from medallion_assets.sample_data import FAULTS, GenerationReport, generate
from resources.delta_store import DeltaTableStore
from resources.settings import Settings

from . import independent
from .conftest import materialize_days

TABLES = ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales")
VOLATILE = ["_ingested_at", "_quarantined_at", "_run_id"]


def table(store: DeltaTableStore, name: str) -> pd.DataFrame:
    return DeltaTable(store.table_uri(name)).to_pandas()


def stable(df: pd.DataFrame) -> list[str]:
    """Rows without run-time audit columns, as sorted JSON lines (comparable across runs)."""
    keep = df.drop(columns=[c for c in VOLATILE if c in df.columns])
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in keep.to_dict("records"))


def materialization(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key][-1:]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_two_partitions_end_to_end(resources, store, sample: GenerationReport) -> None:
    result = materialize_days(resources, "2024-01-01", "2024-01-02")
    assert result.success
    for name in TABLES:
        df = table(store, name)
        assert sorted(df["order_date"].astype(str).unique()) == ["2024-01-01", "2024-01-02"], name
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {
        "quality_gate",
        "row_accounting",
        "order_id_unique",
        "totals_reconcile",
        "pandera_schema",
        "line_accounting",
        "column_schema_change",
    }
    assert all(c.passed for c in checks)
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "silver/orders"]
    per_day = {e.partition: {k: v.value for k, v in e.materialization.metadata.items()} for e in events}
    assert set(per_day) == {"2024-01-01", "2024-01-02"}  # each partition carries its own day's figures
    silver, quarantine = table(store, "silver/orders"), table(store, "quarantine/orders")
    for day, meta in per_day.items():
        assert meta["rows_out"] == meta["dagster/row_count"] == (silver["order_date"].astype(str) == day).sum()
        assert meta["quarantined"] == (quarantine["order_date"].astype(str) == day).sum()
        assert 0.95 <= meta["pass_rate"] < 1.0 and meta["delta_version"] == 0 and meta["passed"] is True
        assert meta["partitions"] == ["2024-01-01", "2024-01-02"]  # the run's fields are on every partition


def test_a_range_run_gives_no_notice_about_checks_it_gates_itself(resources, sample, caplog) -> None:
    """A range logs its read-back checks per day and fails the step on a blocking one: Dagster's notice that
    they "emitted no result" and downstream "will proceed without gating" (14 of them in ``make demo``) is
    dropped for them, and kept for any other check."""
    import logging

    from medallion_assets.quiet import PLAN_LOGGER

    with caplog.at_level(logging.WARNING):
        assert materialize_days(resources, "2024-01-01", "2024-01-02").success
    assert not [r for r in caplog.records if "emitted no result" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for key in ("silver/orders:row_accounting", "silver/orders:someone_elses_check"):
            logging.getLogger(PLAN_LOGGER).warning(
                f"Blocking asset check '{key}' emitted no result in step 'silver__orders'; downstream step "
                "'gold__daily_sales' will proceed without gating on it."
            )
    assert [r.getMessage().split("'")[1] for r in caplog.records] == ["silver/orders:someone_elses_check"]


def test_each_step_gives_back_the_arrow_memory_it_freed(resources, sample, monkeypatch) -> None:
    """pyarrow's pool keeps the blocks a step freed (the landing reader's, the rows collected for a write,
    pandera's frames): 150-300 MB a step on the bench's 5M lines stayed resident under the next step's peak."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from medallion_assets import arrow_memory

    def rss_mb() -> float:
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024

    arrow_memory.release_arrow_memory()  # what earlier tests left in the pool
    before = rss_mb()
    blocks = [pc.add(pa.array(np.arange(1_000_000)), 1) for _ in range(40)]  # 320 MB from the pool
    del blocks
    kept = rss_mb()
    arrow_memory.release_arrow_memory()
    assert kept - before > 200 and kept - rss_mb() > 200, (before, kept, rss_mb())
    released: list[int] = []
    monkeypatch.setattr(arrow_memory, "release_arrow_memory", lambda: released.append(1))
    assert materialize_days(resources, "2024-01-01").success
    assert len(released) == 5  # bronze, silver and gold, and the two pandera checks


def test_a_long_run_keeps_day_lists_on_their_own_partitions(resources, store, sample) -> None:
    """Dagster copies a range run's metadata onto every partition: beyond ``gate_events_max_days`` days the run's
    day and file lists stay on each day's own materialization (365 days × 365 entries made a year's backfill
    spend most of its time serializing events)."""
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    short = {**resources, "settings": Settings(gate_events_max_days=2)}
    result = materialize_days(short, days[0], days[-1])
    assert result.success
    for key in ("bronze/orders", "silver/orders"):
        events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
        assert sorted(e.partition for e in events) == days, key
        for event in events:
            meta = {k: v.value for k, v in event.materialization.metadata.items()}
            assert not {"partitions", "published_partitions", "per_day"} & set(meta), (key, sorted(meta))
            assert meta["partition_range"] == "2024-01-01...2024-01-03 (3 days)" and meta["published_days"] == 3
            if key == "bronze/orders":  # its own files only, with their line counts
                assert meta["landed_lines"] and {f.split("/")[1] for f in meta["landed_lines"]} == {
                    f"date={event.partition}"
                }, meta["landed_lines"]


def test_rerunning_a_partition_gives_identical_tables(resources, store, sample) -> None:
    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    before = {name: stable(table(store, name)) for name in TABLES}
    versions = {name: store.version(name) for name in TABLES}
    assert materialize_days(resources, "2024-01-02").success
    assert {name: stable(table(store, name)) for name in TABLES} == before
    assert all(store.version(name) == versions[name] + 1 for name in TABLES)
    silver = table(store, "silver/orders")
    assert not silver.duplicated(["order_date", "order_id"]).any()


def test_row_accounting_holds_exactly(resources, store, sample, landing_root: Path) -> None:
    result = materialize_days(resources, "2024-01-01", "2024-01-03")
    assert result.success
    bronze, silver, quarantine = (table(store, n) for n in ("bronze/orders", "silver/orders", "quarantine/orders"))
    total_superseded = 0
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        b, s, q = (int((t["order_date"].astype(str) == day).sum()) for t in (bronze, silver, quarantine))
        superseded = len(independent.valid_orders(landing_root, day)) - len(independent.latest(landing_root, day))
        assert b == independent.bronze_lines(landing_root, day)
        assert b == s + q + superseded, day
        total_superseded += superseded
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "silver/orders"]
    per_day = {e.partition: e.materialization.metadata["superseded"].value for e in events}
    assert sum(per_day.values()) == total_superseded > 0 and len(per_day) == 3
    assert not bronze["_source_file"].str.endswith(".tmp").any()


def test_row_accounting_check_catches_a_lost_row(resources, store, sample) -> None:
    assert materialize_days(resources, "2024-01-01", "2024-01-02").success
    log = table(store, run_log.TABLE)
    outcomes = [
        DayOutcome(
            day=r.partition,
            threshold=0.95,
            stats=DayStats(
                rows_in=r.rows_in, valid=r.rows_in - r.quarantined, published=r.rows_written,
                quarantined=r.quarantined, superseded=r.superseded,
            ),
        )
        for r in log[log.asset == "silver/orders"].itertuples()
    ]  # fmt: skip
    spark = resources["engine"].get_session()
    run = Run(SILVER_SPEC, None, spark, store, resources["settings"], resources["landing"], "connect", None, None)
    [accounting] = [c for c in SILVER_SPEC.checks if c.name == "row_accounting"]
    assert not accounting.check(run, outcomes).failed
    victim = table(store, "silver/orders").query("order_date.astype('str') == '2024-01-02'").iloc[0]["order_id"]
    DeltaTable(store.table_uri("silver/orders")).delete(f"order_id = '{victim}'")
    [(day, counts)] = accounting.check(run, outcomes).failed.items()
    assert (
        day == "2024-01-02" and counts["bronze"] == counts["silver"] + 1 + counts["quarantine"] + counts["superseded"]
    )


def test_every_fault_lands_in_quarantine_with_its_reason(resources, store, sample: GenerationReport) -> None:
    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    quarantine = table(store, "quarantine/orders")
    reasons = {
        (r["_source_file"], r["_line_number"]): sorted(r["_quarantine_reasons"]) for _, r in quarantine.iterrows()
    }
    kinds = {f.kind for f in sample.faults}
    assert kinds == set(FAULTS)
    for fault in sample.faults:
        got = reasons.get((fault.file, fault.line))
        if fault.rule is None:
            assert got is None, fault
        else:
            assert got == [fault.rule], fault
    assert len(quarantine) == sum(1 for f in sample.faults if f.rule)
    bronze = table(store, "bronze/orders")
    assert {"promo_code", "channel"} <= set(bronze.columns)


def test_gold_equals_an_independent_computation(resources, store, sample, landing_root: Path) -> None:
    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    gold = table(store, "gold/daily_sales")
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        expected = independent.daily_sales(landing_root, day)
        rows = gold[gold["order_date"].astype(str) == day]
        got = {r["region"]: {k: r[k] for k in expected[r["region"]]} for _, r in rows.iterrows()}
        got = {region: {k: (None if pd.isna(v) else v) for k, v in m.items()} for region, m in got.items()}
        assert got == expected, day


def test_silver_refuses_a_bad_day_and_keeps_its_previous_version(resources, store, sample, landing_root) -> None:
    assert materialize_days(resources, "2024-01-02").success
    good_silver, good_quarantine = stable(table(store, "silver/orders")), stable(table(store, "quarantine/orders"))
    silver_version = store.version("silver/orders")
    # The day's files are replaced by a feed where ~a third of the rows are broken.
    folder = landing_root / "orders" / "date=2024-01-02"
    for path in folder.iterdir():
        path.unlink()
    generate(
        landing_root,
        days=1,
        orders_per_day=200,
        seed=9,
        start=pd.Timestamp("2024-01-02").date(),
        rates={"negative_amount": 0.1, "unknown_status": 0.1, "unparseable_line": 0.05},
    )
    result = materialize_days(resources, "2024-01-02")
    assert not result.success
    failure = result.failure_data_for_node("silver__orders")
    message = failure.error.message if failure else ""
    assert "refused 1 partition" in message and "amount_in_range" in message and "status_known" in message
    assert store.version("silver/orders") == silver_version
    assert stable(table(store, "silver/orders")) == good_silver
    # The published day keeps the quarantine of its published version (the two account for its bronze rows);
    # the refused attempt's 20 unknown statuses are in the failure's figures.
    assert stable(table(store, "quarantine/orders")) == good_quarantine
    assert "status_known (20)" in message
    # gold did not run after the refusal
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "bronze/orders",
        "monitoring/pipeline_runs",
    }


@pytest.mark.parametrize("name", TABLES)
def test_tables_are_plain_delta_readable_by_deltalake(resources, store, sample, name) -> None:
    assert materialize_days(resources, "2024-01-01").success
    dt = DeltaTable(store.table_uri(name))
    assert dt.metadata().partition_columns == ["order_date"]
    assert dt.protocol().min_reader_version >= 1 and dt.to_pyarrow_table().num_rows > 0


def test_a_range_in_one_pass_equals_day_by_day(resources, store, sample, tmp_path) -> None:
    from resources.delta_store import DeltaTableStore

    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    one_pass = {name: stable(table(store, name)) for name in TABLES}
    daily_store = DeltaTableStore(root=str(tmp_path / "daily"))
    daily = {**resources, "store": daily_store}
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert materialize_days(daily, day).success
    assert {name: stable(table(daily_store, name)) for name in TABLES} == one_pass


def test_a_range_built_in_blocks_of_days_equals_one_pass(resources, store, sample, tmp_path, monkeypatch) -> None:
    """``MEDALLION_BLOCK_ROWS``: each staged step of a range builds its days in blocks (one query each, so memory
    follows the block); the tables are the same as when the range is built at once."""
    parts: dict[str, list[int]] = {}
    staged = DeltaTableStore.staged

    def counting(self: DeltaTableStore, df, *, name: str):
        parts.setdefault(name, []).append(len(df) if isinstance(df, list | tuple) else 1)
        return staged(self, df, name=name)

    monkeypatch.setattr(DeltaTableStore, "staged", counting)
    assert materialize_days(resources, "2024-01-01", "2024-01-03").success
    assert parts["silver_orders"] == [1] and parts["gold_daily_sales"] == [1]
    one_pass = {name: stable(table(store, name)) for name in TABLES}

    parts.clear()
    blocked_store = DeltaTableStore(root=str(tmp_path / "blocked"))
    settings = Settings.from_env({"MEDALLION_BLOCK_ROWS": "250"})  # about one sample day of bronze rows
    assert materialize_days({**resources, "store": blocked_store, "settings": settings}, "2024-01-01", "2024-01-03")
    assert parts["silver_orders"] == [3] and parts["gold_daily_sales"] == [3]  # about 200 rows a day each
    assert {name: stable(table(blocked_store, name)) for name in TABLES} == one_pass


def test_a_range_whose_upstream_table_is_gone_says_so(resources, store, sample) -> None:
    """The run log says bronze passed, but its table was removed by hand: the range names the table, not a raw
    delta-rs error from working out its blocks of days."""
    import shutil

    bronze = dg.AssetSelection.keys("bronze/orders")
    assert materialize_days(resources, "2024-01-01", "2024-01-03", selection=bronze).success
    shutil.rmtree(store.table_uri("bronze/orders"))
    result = materialize_days(resources, "2024-01-01", "2024-01-03", selection=dg.AssetSelection.keys("silver/orders"))
    failure = result.failure_data_for_node("silver__orders")
    assert failure and "bronze/orders does not exist yet: materialize it before silver/orders" in failure.error.message


def test_backfill_chunk_size_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from medallion_assets.partitions import backfill_policy

    monkeypatch.delenv("MEDALLION_MAX_PARTITIONS_PER_RUN", raising=False)
    assert backfill_policy() == dg.BackfillPolicy.single_run()
    monkeypatch.setenv("MEDALLION_MAX_PARTITIONS_PER_RUN", "30")
    assert backfill_policy() == dg.BackfillPolicy.multi_run(max_partitions_per_run=30)

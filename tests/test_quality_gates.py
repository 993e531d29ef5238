"""Quality gates across runs through a real Dagster instance, the run log, and pandera on published data."""

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pandera.typing import Series

from medallion_assets import run_log
from medallion_assets.definitions import ASSETS, CHECKS
from medallion_assets.quality.checks import checked_columns, jointly_unique, validate
from medallion_assets.quality.schemas import Day, GoldDailySales, SilverOrders, Text, arrow_frame
from medallion_assets.sample_data import FAULTS, generate
from resources.delta_store import DeltaTableStore
from resources.settings import Settings

from .conftest import materialize_days, range_tags

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
BAD_DAY = "2024-01-02"
REPO = Path(__file__).resolve().parents[1]
BAD_RATES = {**{kind: 0.0 for kind in FAULTS}, "negative_amount": 0.1, "unknown_status": 0.1, "unparseable_line": 0.05}


def days_in(store: DeltaTableStore, table: str) -> list[str]:
    if not store.exists(table):
        return []
    return sorted(DeltaTable(store.table_uri(table)).to_pandas()["order_date"].astype(str).unique())


def write_day(landing: Path, day: str, *, bad: bool) -> None:
    folder = landing / "orders" / f"date={day}"
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    generate(
        landing, days=1, orders_per_day=200, seed=3, start=date.fromisoformat(day), rates=BAD_RATES if bad else None
    )


def gate_evaluations(instance: dg.DagsterInstance, key: list[str], day: str) -> list[bool]:
    events = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True
    )
    out = []
    for record in events:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if (evaluation.asset_key, evaluation.check_name, evaluation.partition) == (
            dg.AssetKey(key),
            "quality_gate",
            day,
        ):
            out.append(evaluation.passed)
    return out


def test_bad_day_in_a_range_is_refused_alone_and_never_reaches_gold(resources, store, landing_root, tmp_path) -> None:
    for day in DAYS:
        write_day(landing_root, day, bad=day == BAD_DAY)
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        # 1. One single-run backfill over the three days (what the daemon launches for BackfillPolicy.single_run).
        first = materialize_days(resources, DAYS[0], DAYS[-1], instance=instance)
        assert first.success  # the good days publish; the bad one is refused, not fatal to its neighbours
        assert days_in(store, "silver/orders") == ["2024-01-01", "2024-01-03"]
        assert days_in(store, "gold/daily_sales") == ["2024-01-01", "2024-01-03"]
        assert BAD_DAY in days_in(store, "quarantine/orders")
        assert gate_evaluations(instance, ["silver", "orders"], BAD_DAY) == [False]
        assert gate_evaluations(instance, ["silver", "orders"], "2024-01-01") == [True]
        assert gate_evaluations(instance, ["gold", "daily_sales"], BAD_DAY) == [False]

        # 2. A later, separate run of gold alone for the bad day: Dagster would run it; the gate refuses it.
        second = materialize_days(resources, BAD_DAY, instance=instance, selection="gold/daily_sales")
        assert not second.success
        error = second.failure_data_for_node("gold__daily_sales").error.message
        assert f"silver/orders {BAD_DAY} was refused by its quality gate" in error
        assert days_in(store, "gold/daily_sales") == ["2024-01-01", "2024-01-03"]

        # 3. Fix the files and re-run the day: it publishes through gold.
        write_day(landing_root, BAD_DAY, bad=False)
        third = materialize_days(resources, BAD_DAY, instance=instance)
        assert third.success
        assert days_in(store, "silver/orders") == DAYS and days_in(store, "gold/daily_sales") == DAYS
        assert gate_evaluations(instance, ["silver", "orders"], BAD_DAY) == [False, True]

    log = DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()
    silver_bad = log[(log.asset == "silver/orders") & (log.partition == BAD_DAY)].sort_values("ended_at")
    assert silver_bad["passed"].tolist() == [False, True]
    refused = silver_bad.iloc[0]
    assert refused.pass_rate < 0.95 and refused.threshold == 0.95 and refused.rows_written == 0
    assert "status_known" in refused.error_message and pd.isna(refused.delta_version)
    assert refused.quarantined > 0 and refused.engine == "connect" and refused.run_mode == "manual"
    published = silver_bad.iloc[1]
    assert published.rows_written > 0 and published.error_message is None and published.delta_version >= 0
    assert published.rows_in == published.rows_written + published.quarantined + published.superseded
    assert published.duration_secs >= 0 and published.ended_at >= published.started_at
    gold_bad = log[(log.asset == "gold/daily_sales") & (log.partition == BAD_DAY)].sort_values("ended_at")
    assert gold_bad["passed"].tolist() == [False, False, True]


def test_long_runs_log_gate_evaluations_for_refused_days_only(resources, landing_root, tmp_path, monkeypatch) -> None:
    for day in DAYS:
        write_day(landing_root, day, bad=day == BAD_DAY)
    monkeypatch.setenv("MEDALLION_GATE_EVENTS_MAX_DAYS", "2")  # a 3-day run counts as long
    resources = {**resources, "settings": Settings.from_env()}
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        result = materialize_days(resources, DAYS[0], DAYS[-1], instance=instance)
        assert result.success
        per_day = [(e.check_name, e.partition, e.passed) for e in result.get_asset_check_evaluations() if e.partition]
        key = dg.AssetKey(["silver", "orders"])
        silver = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
        meta = silver[-1].materialization.metadata
    assert sorted(per_day) == [("quality_gate", BAD_DAY, False)] * 2  # silver and gold; bronze passed all days
    assert meta["gate_evaluations_logged"].value == 1 and meta["refused_partitions"].value == [BAD_DAY]
    verdicts = {e.partition: e.materialization.metadata["passed"].value for e in silver}  # each day's, on its own
    assert verdicts == {"2024-01-01": True, BAD_DAY: False, "2024-01-03": True}


def test_a_range_runs_per_day_check_evaluations_are_stored_as_batches(
    resources, landing_root, tmp_path, monkeypatch
) -> None:
    """On the product's instance a range run hands each step's per-day evaluations to the storage as one batch
    (one transaction per shard); they read back per day as evaluations logged one by one do."""
    for day in DAYS:
        write_day(landing_root, day, bad=day == BAD_DAY)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage, batches = instance.event_log_storage, []
        store_batch = storage.store_event_batch

        def spy(events):
            batches.append([e.dagster_event_type for e in events])
            store_batch(events)

        monkeypatch.setattr(storage, "store_event_batch", spy)
        result = materialize_days(resources, DAYS[0], DAYS[-1], instance=instance)
        assert result.success
        evaluation = dg.DagsterEventType.ASSET_CHECK_EVALUATION
        assert sum(1 for b in batches if b.count(evaluation) == len(b) >= len(DAYS)) >= 4  # gates and read-backs
        assert gate_evaluations(instance, ["silver", "orders"], BAD_DAY) == [False]
        assert gate_evaluations(instance, ["silver", "orders"], DAYS[0]) == [True]
        history = storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["silver", "orders"]), "row_accounting"), limit=10
        )
        statuses = {h.partition: h.status.value for h in history}  # the refused day's check never ran
        assert statuses == {DAYS[0]: "SUCCEEDED", BAD_DAY: "PLANNED", DAYS[2]: "SUCCEEDED"}
    in_result = {(e.asset_key.path[0], e.check_name, e.partition) for e in result.get_asset_check_evaluations()}
    assert ("silver", "quality_gate", BAD_DAY) in in_result and ("gold", "quality_gate", DAYS[2]) in in_result


def test_a_single_refused_day_fails_the_asset_with_rate_rules_and_samples(resources, store, landing_root) -> None:
    write_day(landing_root, BAD_DAY, bad=True)
    result = materialize_days(resources, BAD_DAY)
    assert not result.success
    message = result.failure_data_for_node("silver__orders").error.message
    assert "silver/orders refused 1 partition(s)" in message
    assert "under the threshold 95%" in message and "amount_in_range (20)" in message and "status_known (20)" in message
    assert "sample rejected rows" in message and "_quarantine_reasons" in message
    assert days_in(store, "silver/orders") == [] and days_in(store, "quarantine/orders") == [BAD_DAY]
    assert not store.exists("gold/daily_sales")


def test_bronze_gate_refuses_unreadable_days(resources, store, landing_root) -> None:
    folder = landing_root / "orders" / f"date={BAD_DAY}"
    folder.mkdir(parents=True)
    (folder / "part-000.jsonl").write_text("garbage\n" * 20 + '{"order_id": "o1"}\n')
    result = materialize_days(resources, BAD_DAY)
    assert not result.success
    assert "bronze/orders refused 1 partition(s)" in result.failure_data_for_node("bronze__orders").error.message
    assert not store.exists("bronze/orders")
    attempts = run_log.latest_attempts(store, "bronze/orders", [BAD_DAY])
    assert attempts[BAD_DAY]["passed"] is False


def test_a_refused_rerun_keeps_the_quarantine_of_the_published_day(resources, store, landing_root) -> None:
    """A published day re-landed worse and refused keeps its silver rows and, with them, its quarantined rows:
    no bronze line ends up both published and quarantined, and the day still adds up."""
    day = DAYS[0]
    write_day(landing_root, day, bad=False)
    assert materialize_days(resources, day).success

    def table(name: str) -> pd.DataFrame:
        rows = DeltaTable(store.table_uri(name)).to_pandas()
        return rows.drop(columns=[c for c in ("_quarantined_at", "_run_id") if c in rows]).sort_values(
            ["_source_file", "_line_number"], ignore_index=True
        )

    silver, quarantine = table("silver/orders"), table("quarantine/orders")
    assert len(quarantine) > 0
    write_day(landing_root, day, bad=True)
    rerun = materialize_days(resources, day)
    assert not rerun.success and run_log.latest_attempts(store, "silver/orders", [day])[day]["passed"] is False
    assert run_log.latest_attempts(store, "bronze/orders", [day])[day]["passed"] is True  # bronze took the new lines
    assert table("silver/orders").equals(silver)
    assert table("quarantine/orders")[quarantine.columns].equals(quarantine)
    both = table("silver/orders").merge(table("quarantine/orders"), on=["_source_file", "_line_number"])
    assert both.empty


def test_pandera_reports_failure_cases() -> None:
    ts = pa.timestamp("us", tz="UTC")
    silver = arrow_frame(
        pa.table(
            {
                "order_id": ["o1", "o1"],
                "customer_id": ["c1", None],
                "order_ts": pa.array(pd.to_datetime(["2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z"]), ts),
                "status": ["paid", "lost"],
                "amount": pa.array([Decimal("10.00"), None], pa.decimal128(18, 2)),
                "currency": ["USD", "usd"],
                "region": ["n", "n"],
                "updated_at": pa.array(pd.to_datetime(["2024-01-02T10:00:00Z"] * 2), ts),
                "order_date": pa.array([date(2024, 1, 2)] * 2, pa.date32()),
            }
        )
    )
    result, failed_days = validate(SilverOrders, silver, day_column="order_date")
    assert not result.passed and set(failed_days) == {"2024-01-02"}
    failed = set(result.metadata["failed_checks"].value)
    assert "not_nullable" in failed and "multiple_fields_uniqueness" in failed
    assert result.metadata["failure_count"].value >= 3
    assert validate(SilverOrders, silver.iloc[:1])[0].passed
    wrong_type = arrow_frame(pa.table({**{c: silver[c].iloc[:1].tolist() for c in silver.columns}, "amount": [1.5]}))
    assert not validate(SilverOrders, wrong_type)[0].passed


def test_pandera_validates_blocks_as_it_validates_their_rows_at_once() -> None:
    """Blocks of days validated one after another report what one pass reports: the same failure count (a
    column-level failure once, not once per block) and each failing row at its position in the range."""
    base = {
        "order_date": pa.array([date(2024, 1, 1)] * 2 + [date(2024, 1, 2)] * 2, pa.date32()),
        "order_id": ["o1", "o2", "o1", "o1"],  # o1 twice on the second day
        "region": ["n", None, "n", "s"],
    }

    class Rows(pandera.DataFrameModel):
        order_date: Series[Day]
        order_id: Series[Text]
        region: Series[Text] = pandera.Field(nullable=False)
        currency: Series[Text]  # missing: a column-level failure

        class Config:
            unique = ["order_date", "order_id"]

    whole = arrow_frame(pa.table(base))
    blocks = [whole.iloc[:2].reset_index(drop=True), whole.iloc[2:].reset_index(drop=True)]
    one, one_days = validate(Rows, whole, day_column="order_date")
    two, two_days = validate(Rows, blocks, day_column="order_date")
    assert two_days == one_days and not two.passed
    for key in ("rows_checked", "failure_count", "failed_checks"):
        assert two.metadata[key].value == one.metadata[key].value, key
    assert {"column_in_dataframe", "not_nullable", "multiple_fields_uniqueness"} <= set(
        one.metadata["failed_checks"].value
    )


def test_pandera_skips_its_duplicate_scan_only_when_the_keys_are_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unique keys are confirmed in Arrow, so pandas' slow duplicate scan is not run; when a key repeats (nulls
    equal), pandera's own uniqueness test runs and reports its failure cases as before."""
    frame = arrow_frame(pa.table({"order_date": pa.array([date(2024, 1, 2)] * 3, pa.date32()),
                                  "order_id": ["o1", "o2", None]}))  # fmt: skip
    assert jointly_unique(frame, ["order_date", "order_id"])
    assert not jointly_unique(pd.concat([frame, frame.iloc[2:]], ignore_index=True), ["order_date", "order_id"])
    assert not jointly_unique(frame, ["order_date", "absent"])
    scans = []
    duplicated = pd.DataFrame.duplicated
    monkeypatch.setattr(pd.DataFrame, "duplicated", lambda *a, **k: scans.append(1) or duplicated(*a, **k))

    class Keys(pandera.DataFrameModel):
        order_date: Series[Day]
        order_id: Series[Text] = pandera.Field(nullable=True)

        class Config:
            unique = ["order_date", "order_id"]

    assert validate(Keys, frame, day_column="order_date")[0].passed and scans == []
    twice = pd.concat([frame, frame.iloc[2:]], ignore_index=True)  # the null key twice
    result, failed_days = validate(Keys, twice, day_column="order_date")
    assert not result.passed and scans and failed_days == {"2024-01-02": {"multiple_fields_uniqueness"}}
    assert Keys.to_schema().unique == ["order_date", "order_id"]  # the model's own schema is untouched


def test_column_schema_change_compares_with_the_version_before_the_runs_own_write(spark, store) -> None:
    """The check takes the version before the run's write from the write itself. It used to search the history
    for a commit carrying the run's note, and a commit without one (Sail's MERGE writes none: the dimension's)
    made it compare the table with itself, so a changed column type passed."""
    from types import SimpleNamespace

    from deltalake import write_deltalake

    from medallion_assets.quality.checks import column_schema_change
    from resources.delta_store import WriteResult

    first = spark.createDataFrame([("a", 1, date(2024, 1, 1))], "k string, v long, d date")
    store.replace_partitions("silver/t", first, partition_column="d", days=["2024-01-01"])
    columns_before = tuple(store.columns("silver/t"))
    retyped = pa.table({"k": ["a"], "v": ["one"], "d": pa.array([date(2024, 1, 1)], pa.date32())})
    write_deltalake(store.table_uri("silver/t"), retyped, mode="overwrite", schema_mode="overwrite")  # no note
    version = store.version("silver/t")
    written = WriteResult(
        "silver/t", store.table_uri("silver/t"), version, "MERGE", version_before=version - 1,
        columns_before=columns_before,
    )  # fmt: skip
    run = SimpleNamespace(store=store, run_id="the-run", written=written)
    verdict = column_schema_change("silver/t").check(run, [SimpleNamespace(day="2024-01-01")])
    assert verdict.failed == {"2024-01-01": {"v": {"was": "int64", "now": "string"}}}
    unchanged = SimpleNamespace(store=store, run_id="the-run", written=None)  # nothing written: nothing changed
    assert column_schema_change("silver/t").check(unchanged, [SimpleNamespace(day="2024-01-01")]).failed == {}


def test_column_schema_change_lists_a_column_the_run_itself_added(resources, store, landing_root) -> None:
    """A write that adds a column commits it first (``ADD COLUMN``), then the rows: the check compares with the
    version before both, so the new column is listed."""
    write_day(landing_root, DAYS[0], bad=False)
    write_day(landing_root, DAYS[1], bad=False)
    with next((landing_root / "orders" / f"date={DAYS[1]}").glob("*.jsonl")).open("a") as f:
        f.write('{"order_id": "x1", "customer_id": "c1", "order_ts": "2024-01-02T10:00:00Z", "status": "paid", '
                '"amount": 1.5, "currency": "USD", "region": "north", "updated_at": "2024-01-02T10:00:00Z", '
                '"coupon_code": "WINTER"}\n')  # fmt: skip
    bronze = dg.AssetSelection.keys("bronze/orders")
    assert materialize_days(resources, DAYS[0], selection=bronze).success
    result = materialize_days(resources, DAYS[1], selection=bronze)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "column_schema_change"]
    assert check.passed and check.metadata["added_columns"].value == ["coupon_code"]


def test_pandera_check_runs_on_the_published_table(resources, store, landing_root) -> None:
    write_day(landing_root, "2024-01-01", bad=False)
    assert materialize_days(resources, "2024-01-01").success
    # Corrupt the published gold partition behind the pipeline's back, then run only the check.
    gold = DeltaTable(store.table_uri("gold/daily_sales"))
    gold.update(updates={"region": "NULL"}, predicate="region = 'north'")
    check_keys = [
        key
        for c in CHECKS
        for key in c.check_keys
        if key.asset_key == dg.AssetKey(["gold", "daily_sales"]) and key.name == "pandera_schema"
    ]
    result = dg.materialize(
        [*ASSETS, *CHECKS], resources=resources, selection=dg.AssetSelection.checks(*check_keys), raise_on_error=False
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "pandera_schema" and not evaluation.passed
    assert "not_nullable" in evaluation.metadata["failed_checks"].value
    assert validate(GoldDailySales, arrow_frame(gold.to_pyarrow_table()).iloc[0:0])[0].passed


def test_pandera_check_of_a_one_day_run_reads_that_day_only(resources, store, landing_root) -> None:
    """A single-partition run (a sensor's or ``dagster asset materialize --partition``) validates its own day,
    not the whole table: the check's cost must not grow with the days already published."""
    for day in DAYS:
        write_day(landing_root, day, bad=False)
    assert materialize_days(resources, DAYS[0], DAYS[1]).success
    result = materialize_days(resources, DAYS[2])
    assert result.success
    silver = DeltaTable(store.table_uri("silver/orders")).to_pandas()
    per_day = silver["order_date"].astype(str).value_counts()
    evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
                   if e.check_name == "pandera_schema"}  # fmt: skip
    checked = evaluations["silver/orders"].metadata
    assert checked["partitions"].value == [DAYS[2]]
    assert checked["rows_checked"].value == per_day[DAYS[2]] < len(silver)


def test_pandera_check_of_a_range_validates_it_in_blocks_of_days(resources, store, landing_root, monkeypatch) -> None:
    """With ``MEDALLION_BLOCK_ROWS`` below a day's rows, each day is read and validated alone (memory follows the
    block); the verdict, the rows checked and the failed day are those of one pass over the range."""
    for day in DAYS:
        write_day(landing_root, day, bad=False)
    assert materialize_days(resources, DAYS[0], DAYS[-1]).success
    silver = DeltaTable(store.table_uri("silver/orders"))
    silver.update(updates={"region": "NULL"}, predicate=f"order_date = '{DAYS[1]}'")
    reads: list[str] = []
    arrow_table = DeltaTableStore.arrow_table
    monkeypatch.setattr(
        DeltaTableStore, "arrow_table", lambda self, table, **kw: reads.append(table) or arrow_table(self, table, **kw)
    )
    check_keys = [key for c in CHECKS for key in c.check_keys
                  if key.asset_key == dg.AssetKey(["silver", "orders"]) and key.name == "pandera_schema"]  # fmt: skip
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources={**resources, "settings": Settings.from_env({"MEDALLION_BLOCK_ROWS": "1"})},
        selection=dg.AssetSelection.checks(*check_keys),
        tags=range_tags(DAYS[0], DAYS[-1]),
        raise_on_error=False,
    )
    assert reads.count("silver/orders") == len(DAYS)
    evaluations = result.get_asset_check_evaluations()
    per_day = {e.partition: e.passed for e in evaluations if e.partition}
    assert per_day == {DAYS[0]: True, DAYS[1]: False, DAYS[2]: True}
    [whole] = [e for e in evaluations if not e.partition]
    assert not whole.passed and whole.metadata["rows_checked"].value == len(silver.to_pandas())
    assert whole.metadata["failed_checks"].value == ["not_nullable"]


@pytest.mark.parametrize("table", ["quarantine/orders", "quarantine/daily_sales"])
def test_quarantine_tables_carry_reasons_time_and_run(resources, store, landing_root, table) -> None:
    write_day(landing_root, "2024-01-01", bad=False)
    result = materialize_days(resources, "2024-01-01")
    assert result.success
    if table == "quarantine/daily_sales":
        assert store.exists(table)  # written every run, empty when every gold row passes
        return
    q = DeltaTable(store.table_uri(table)).to_pandas()
    assert {"_quarantine_reasons", "_quarantined_at", "_run_id", "order_date"} <= set(q.columns)
    assert set(q["_run_id"]) == {result.run_id} and q["_quarantine_reasons"].map(len).min() >= 1


def test_a_blocking_check_failing_in_a_range_run_stops_the_next_layer(resources, store, landing_root) -> None:
    from deltalake import write_deltalake

    for day in DAYS:
        write_day(landing_root, day, bad=False)
    assert materialize_days(resources, DAYS[0], DAYS[-1], selection="bronze/orders").success
    bronze = DeltaTable(store.table_uri("bronze/orders"))
    line = bronze.to_pyarrow_table(partitions=[("order_date", "=", BAD_DAY)]).slice(0, 1)
    write_deltalake(store.table_uri("bronze/orders"), line, mode="append")  # a line in bronze twice
    result = materialize_days(resources, DAYS[0], DAYS[-1], selection=["silver/orders", "gold/daily_sales"])
    assert not result.success
    evaluations = {(e.check_name, e.partition): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations[("row_accounting", BAD_DAY)] is False and evaluations[("row_accounting", DAYS[0])] is True
    assert "row_accounting on 2024-01-02" in result.failure_data_for_node("silver__orders").error.message
    assert not store.exists("gold/daily_sales")  # the next layer did not run


def test_the_pandera_check_reads_the_columns_its_model_checks(tmp_path) -> None:
    """Bookkeeping columns are not read (a third of silver's read); a model column the table lacks is still
    reported, and a strict model still sees every column."""
    from deltalake import write_deltalake

    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"order_id": ["o1"], "_source_file": ["f.jsonl"], "region": ["n"]}))
    table = DeltaTable(uri)
    assert checked_columns(SilverOrders, table) == ["order_id", "region"]
    read = table.to_pyarrow_table(columns=checked_columns(SilverOrders, table))
    result, _ = validate(SilverOrders, arrow_frame(read))
    assert not result.passed and "column_in_dataframe" in result.metadata["failed_checks"].value

    class Strict(SilverOrders):
        class Config:
            strict = True

    assert checked_columns(Strict, table) is None


def good_order(i: int, **overrides) -> dict:
    at = "2024-01-02T10:00:00Z"
    return {"order_id": f"G{i}", "customer_id": f"C{i % 7}", "order_ts": at, "status": "paid", "amount": 10.5,
            "currency": "USD", "region": "north", "updated_at": at, **overrides}  # fmt: skip


def a_day_with(resources, store, landing_root: Path, odd: list[dict]) -> dict[str, pd.DataFrame]:
    """Bronze, silver, quarantine and gold of 2024-01-02: 200 good orders and the ``odd`` ones, in one run."""
    folder = landing_root / "orders" / "date=2024-01-02"
    folder.mkdir(parents=True)
    rows = [good_order(i) for i in range(200)] + odd
    (folder / "part-000.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    assert materialize_days(resources, "2024-01-02").success
    tables = ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales")
    return {t: DeltaTable(store.table_uri(t)).to_pandas() for t in tables}


def test_keys_and_regions_that_are_no_json_text_never_reach_silver_or_gold(resources, store, landing_root) -> None:
    """``order_id`` ``{"a":1}``, ``["O_arr"]``, ``true``, a ``customer_id`` array and a ``region`` object were
    published (gold had a region ``{"x":"north"}``); they are quarantined, bronze keeps their text."""
    odd = [
        good_order(0, order_id={"a": 1}), good_order(0, order_id=["O_arr"]), good_order(0, order_id=True),
        good_order(0, order_id="O_objregion", region={"x": "north"}),
        good_order(0, order_id="O_arrcust", customer_id=["C1", "C2"]),
        good_order(0, order_id="O_numcust", customer_id=12), good_order(0, order_id="true", region="{north}"),
    ]  # fmt: skip
    t = a_day_with(resources, store, landing_root, odd)
    reasons = {r["order_id"]: list(r["_quarantine_reasons"]) for r in t["quarantine/orders"].to_dict("records")}
    assert reasons == {
        '{"a":1}': ["order_id_text"], '["O_arr"]': ["order_id_text"], "true": ["order_id_text"],
        "O_objregion": ["region_text"], "O_arrcust": ["customer_id_text"],
    }  # fmt: skip
    silver = t["silver/orders"].set_index("order_id")
    assert silver.loc["O_numcust", "customer_id"] == "12" and silver.loc["true", "region"] == "{north}"
    assert sorted(t["gold/daily_sales"].region) == ["north", "{north}"]
    types = {r["order_id"]: dict(r["_json_types"]) for r in t["bronze/orders"].to_dict("records") if r["_json_types"]}
    assert types == {'{"a":1}': {"order_id": "object"}, '["O_arr"]': {"order_id": "array"},
                     "true": {"order_id": "boolean"}, "O_objregion": {"region": "object"},
                     "O_arrcust": {"customer_id": "array"}}  # fmt: skip


def test_a_region_too_long_for_gold_is_quarantined_in_silver_and_the_day_publishes(
    resources, store, landing_root
) -> None:
    """One order with a 65-character region was published by silver (any non-empty region), then gold refused
    the whole day on ``region_max_length_64``; silver's contract holds gold's limit now, with the same rule name."""
    odd = [
        good_order(0, order_id="O_long", region="r" * 65), good_order(0, order_id="O_64", region="s" * 64),
        good_order(0, order_id="O_padded", region=f"\u00a0{'t' * 64}\t"), good_order(0, order_id="E", region="é" * 64),
    ]  # fmt: skip
    t = a_day_with(resources, store, landing_root, odd)
    reasons = {r["order_id"]: list(r["_quarantine_reasons"]) for r in t["quarantine/orders"].to_dict("records")}
    assert reasons == {"O_long": ["region_max_length_64"]}
    assert sorted(t["gold/daily_sales"].region) == sorted(["north", "s" * 64, "t" * 64, "é" * 64])
    assert t["gold/daily_sales"].orders.sum() == 203

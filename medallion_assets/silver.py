"""``silver/orders``: typed, validated, one row per order and day; failures go to ``quarantine/orders``.

Write–audit–publish per day: rates are computed on the in-flight rows, the quarantine is always written, and
a day under the silver threshold — or whose bronze gate did not pass — is not published (the table keeps its
previous version of that day).
"""

from datetime import datetime, timezone
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import run_log, transforms
from medallion_assets.bronze import bronze_orders
from medallion_assets.partitions import DAILY, RANGE_POLICY, SILVER_FRESHNESS, run_days, table_pool
from medallion_assets.quality.gate import GATE_CHECK, DayOutcome, GateContext, decide, finish
from medallion_assets.quality.thresholds import threshold
from medallion_assets.reporting import write_metadata
from resources.delta_store import DeltaTableStore, WriteResult
from resources.engine import SparkEngine

TABLE = "silver/orders"
QUARANTINE = "quarantine/orders"
UPSTREAM = "bronze/orders"
KEY = ["silver", "orders"]
PART = contract.PARTITION_COLUMN


def day_counts(store: DeltaTableStore, spark: SparkSession, tables: list[str], days: list[str]) -> dict[str, dict]:
    """Rows per table and day, read back from the tables in one query."""
    per_table = [
        store.read(spark, t, partition_column=PART, days=days).groupBy(PART).count().withColumn("table", F.lit(t))
        for t in tables
    ]
    counts: dict[str, dict] = {t: {} for t in tables}
    for r in reduce(DataFrame.unionByName, per_table).collect():
        counts[r["table"]][r[PART].isoformat()] = r["count"]
    return counts


def accounting_check(store: DeltaTableStore, spark: SparkSession, outcomes: list[DayOutcome]) -> dg.AssetCheckResult:
    """bronze rows = silver rows + quarantined rows + superseded rows, per published day, read back."""
    published = [o for o in outcomes if o.passed]
    if not published:
        return dg.AssetCheckResult(check_name="row_accounting", passed=True, metadata={"days_checked": 0})
    days = [o.day for o in published]
    counts = day_counts(store, spark, [UPSTREAM, TABLE, QUARANTINE], days)
    bronze, silver, quarantine = counts[UPSTREAM], counts[TABLE], counts[QUARANTINE]
    broken = {
        o.day: {
            "bronze": bronze.get(o.day, 0),
            "silver": silver.get(o.day, 0),
            "quarantine": quarantine.get(o.day, 0),
            "superseded": o.superseded,
        }
        for o in published
        if bronze.get(o.day, 0) != silver.get(o.day, 0) + quarantine.get(o.day, 0) + o.superseded
    }
    return dg.AssetCheckResult(
        check_name="row_accounting",
        passed=not broken,
        metadata={"days_checked": len(days), "mismatches": dg.MetadataValue.json(broken)},
        description="bronze = silver + quarantine + superseded, per published day, read back from the tables",
    )


def unique_key_check(store: DeltaTableStore, spark: SparkSession, days: list[str]) -> dg.AssetCheckResult:
    """No ``order_id`` appears twice within a day of the published silver table."""
    if not days:
        return dg.AssetCheckResult(check_name="order_id_unique", passed=True, metadata={"days_checked": 0})
    silver = store.read(spark, TABLE, partition_column=PART, days=days)
    dupes = silver.groupBy(PART, contract.KEY).count().filter(F.col("count") > 1)
    sample = [f"{r[PART]}:{r[contract.KEY]}" for r in dupes.limit(5).collect()]
    return dg.AssetCheckResult(
        check_name="order_id_unique",
        passed=not sample,
        metadata={"days_checked": len(days), "duplicate_sample": dg.MetadataValue.json(sample)},
        description="order_id is unique within each published day",
    )


@dg.asset(
    key=KEY,
    deps=[bronze_orders],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    pool=table_pool(TABLE),
    freshness_policy=SILVER_FRESHNESS,
    kinds={"spark", "delta"},
    check_specs=[
        dg.AssetCheckSpec(GATE_CHECK, asset=KEY, partitions_def=DAILY),
        dg.AssetCheckSpec("row_accounting", asset=KEY, partitions_def=DAILY, blocking=True),
        dg.AssetCheckSpec("order_id_unique", asset=KEY, partitions_def=DAILY, blocking=True),
    ],
    description="Typed orders (try-cast), contract rules enforced, latest version per order_id and day. "
    "Failing rows go to quarantine/orders with every failed rule.",
)
def silver_orders(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    days = run_days(context)
    spark = engine.get_session()
    gate = GateContext(context, store, spark, TABLE, engine.resolved_mode, started)
    refusals = run_log.upstream_refusals(store, UPSTREAM, days)
    todo = [d for d in days if d not in refusals]
    if not todo:
        return publish(gate, decide(days, {}, threshold(TABLE), refusals), None)
    bronze = store.read(spark, UPSTREAM, partition_column=PART, days=todo)
    # Statistics, quarantine and silver all read the validated rows: compute them (and the window) once.
    with store.staged(transforms.validated_orders(bronze), name="silver_orders") as validated:
        stats = {r[PART].isoformat(): r.asDict() for r in transforms.silver_stats(validated).collect()}
        quarantine = transforms.quarantined_orders(validated, bronze.columns, quarantined_at=started).withColumn(
            "_run_id", F.lit(context.run_id)
        )
        q_write = store.replace_partitions(QUARANTINE, quarantine, partition_column=PART, days=todo)
        outcomes = decide(days, stats, threshold(TABLE), refusals)
        published = [o.day for o in outcomes if o.passed]
        silver = transforms.silver_orders(validated)
        write = store.replace_partitions(TABLE, silver, partition_column=PART, days=published) if published else None
        bad = [o.day for o in outcomes if not o.passed and not o.upstream_refusal]
        samples = quarantine_samples(quarantine, bad)
    return publish(gate, outcomes, write, q_write, samples)


def quarantine_samples(quarantine: DataFrame, days: list[str], n: int = 5) -> list[dict]:
    """A few quarantined rows of ``days``, for the failure message."""
    if not days:
        return []
    cols = [contract.KEY, "amount", "status", "_source_file", "_line_number", "_quarantine_reasons"]
    return [r.asDict() for r in quarantine.filter(F.col(PART).isin(days)).select(*cols).limit(n).collect()]


def publish(
    gate: GateContext,
    outcomes: list[DayOutcome],
    write: WriteResult | None,
    q_write: WriteResult | None = None,
    samples: list[dict] | None = None,
) -> dg.MaterializeResult:
    """The run log, per-day gate results and read-back checks, then the result (or the failure)."""
    published = [o.day for o in outcomes if o.passed]
    return finish(
        gate,
        outcomes,
        version=write.version if write else None,
        metadata={
            "failures_by_rule": dg.MetadataValue.json(
                {
                    name: sum(o.failures.get(name, 0) + o.warnings.get(name, 0) for o in outcomes)
                    for name in contract.RULES.names
                }
            ),
            **(
                {"quarantine_path": dg.MetadataValue.path(q_write.uri), "quarantine_version": q_write.version}
                if q_write
                else {}
            ),
            **write_metadata(write),
        },
        samples=lambda bad: samples or [],
        check_results=[
            accounting_check(gate.store, gate.spark, outcomes),
            unique_key_check(gate.store, gate.spark, published),
        ],
    )

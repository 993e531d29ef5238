"""``silver/orders``: typed, validated, one row per order and day; failures go to ``quarantine/orders``.

Write–audit–publish per day: pass rates are computed on the in-flight rows, the quarantine is always
written, and a day whose pass rate is under the silver threshold is not published (the table keeps its
previous version of that day) and fails the asset with the top failing rules.
"""

import time
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.bronze import bronze_orders
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days
from medallion_assets.quality.thresholds import passes, threshold
from medallion_assets.reporting import per_day_table, write_metadata
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine

TABLE = "silver/orders"
QUARANTINE = "quarantine/orders"
KEY = ["silver", "orders"]
PART = contract.PARTITION_COLUMN


def day_counts(df: DataFrame) -> dict[str, int]:
    return {r[PART].isoformat(): r["count"] for r in df.groupBy(PART).count().collect()}


def summarize(row: dict[str, Any], minimum: float) -> dict[str, Any]:
    """A day's figures from ``silver_stats``: counts, pass rate, verdict, top failing rules."""
    failures = {k.removeprefix("rule:"): v for k, v in row.items() if k.startswith("rule:") and v}
    rows_in, valid = row["rows_in"], row["valid"]
    return {
        "day": row[PART].isoformat(),
        "rows_in": rows_in,
        "published": row["kept"],
        "quarantined": rows_in - valid,
        "superseded": valid - row["kept"],
        "warned": row["warned"],
        "pass_rate": valid / rows_in if rows_in else 1.0,
        "passed": passes(valid, rows_in, minimum),
        "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])),
    }


def accounting_check(store: DeltaTableStore, spark, days: list[dict[str, Any]]) -> dg.AssetCheckResult:
    """bronze rows = silver rows + quarantined rows + superseded rows, for every published day."""
    published = [d["day"] for d in days if d["passed"]]
    if not published:
        return dg.AssetCheckResult(check_name="row_accounting", passed=True, metadata={"days_checked": 0})
    bronze = day_counts(store.read(spark, "bronze/orders", partition_column=PART, days=published))
    silver = day_counts(store.read(spark, TABLE, partition_column=PART, days=published))
    quarantine = day_counts(store.read(spark, QUARANTINE, partition_column=PART, days=published))
    by_day = {d["day"]: d for d in days}
    broken = {
        day: {
            "bronze": bronze.get(day, 0),
            "silver": silver.get(day, 0),
            "quarantine": quarantine.get(day, 0),
            "superseded": by_day[day]["superseded"],
        }
        for day in published
        if bronze.get(day, 0) != silver.get(day, 0) + quarantine.get(day, 0) + by_day[day]["superseded"]
    }
    return dg.AssetCheckResult(
        check_name="row_accounting",
        passed=not broken,
        metadata={"days_checked": len(published), "mismatches": dg.MetadataValue.json(broken)},
        description="bronze = silver + quarantine + superseded, per published day, read back from the tables",
    )


def unique_key_check(store: DeltaTableStore, spark, days: list[str]) -> dg.AssetCheckResult:
    """No ``order_id`` appears twice within a day of the published silver table."""
    if not days:
        return dg.AssetCheckResult(check_name="order_id_unique", passed=True, metadata={"duplicates": 0})
    silver = store.read(spark, TABLE, partition_column=PART, days=days)
    dupes = silver.groupBy(PART, contract.KEY).count().filter(F.col("count") > 1)
    sample = [f"{r[PART]}:{r[contract.KEY]}" for r in dupes.limit(5).collect()]
    return dg.AssetCheckResult(
        check_name="order_id_unique",
        passed=not sample,
        metadata={"duplicate_sample": dg.MetadataValue.json(sample)},
        description="order_id is unique within each published day",
    )


def refusal_message(refused: list[dict[str, Any]], minimum: float) -> str:
    lines = [f"silver/orders refused {len(refused)} partition(s): pass rate under {minimum:.0%}"]
    for d in refused:
        top = ", ".join(f"{name} ({n})" for name, n in list(d["failures"].items())[:5])
        lines.append(f"  {d['day']}: {d['pass_rate']:.2%} of {d['rows_in']} rows valid; top failing rules: {top}")
    return "\n".join(lines)


@dg.asset(
    key=KEY,
    deps=[bronze_orders],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    kinds={"spark", "delta"},
    check_specs=[
        dg.AssetCheckSpec("row_accounting", asset=KEY, blocking=True),
        dg.AssetCheckSpec("order_id_unique", asset=KEY, blocking=True),
    ],
    description="Typed orders (try-cast), contract rules enforced, latest version per order_id and day. "
    "Failing rows go to quarantine/orders with every failed rule.",
)
def silver_orders(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    started = time.monotonic()
    days = run_days(context)
    spark = engine.get_session()
    now = datetime.now(timezone.utc)
    bronze = store.read(spark, "bronze/orders", partition_column=PART, days=days)
    validated = transforms.validated_orders(bronze)
    rule_names = [r.name for r in contract.rules()]
    minimum = threshold(TABLE)
    stats = {r[PART].isoformat(): r.asDict() for r in transforms.silver_stats(validated, rule_names).collect()}
    empty = {PART: None, "rows_in": 0, "valid": 0, "kept": 0, "warned": 0}
    per_day = [
        summarize({**(stats.get(day) or empty), PART: datetime.fromisoformat(day).date()}, minimum) for day in days
    ]

    quarantine = transforms.quarantined_orders(validated, bronze.columns, quarantined_at=now).withColumn(
        "_run_id", F.lit(context.run_id)
    )
    q_write = store.replace_partitions(QUARANTINE, quarantine, partition_column=PART, days=days)
    published = [d["day"] for d in per_day if d["passed"]]
    refused = [d for d in per_day if not d["passed"]]
    write = None
    if published:
        write = store.replace_partitions(
            TABLE, transforms.silver_orders(validated), partition_column=PART, days=published
        )
    if refused:
        raise dg.Failure(
            description=refusal_message(refused, minimum),
            metadata={
                "refused_partitions": dg.MetadataValue.json([d["day"] for d in refused]),
                "published_partitions": dg.MetadataValue.json(published),
                "threshold": minimum,
                "per_day": per_day_table([{k: v for k, v in d.items() if k != "failures"} for d in per_day]),
                "top_failing_rules": dg.MetadataValue.json({d["day"]: d["failures"] for d in refused}),
                "quarantine_version": q_write.version,
            },
        )
    totals = {k: sum(d[k] for d in per_day) for k in ("rows_in", "published", "quarantined", "superseded", "warned")}
    valid = totals["rows_in"] - totals["quarantined"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(totals["published"]),
            "rows_in": totals["rows_in"],
            "rows_out": totals["published"],
            "quarantined": totals["quarantined"],
            "superseded": totals["superseded"],
            "warned": totals["warned"],
            "pass_rate": dg.MetadataValue.float(valid / totals["rows_in"] if totals["rows_in"] else 1.0),
            "threshold": minimum,
            "partitions": dg.MetadataValue.json(days),
            "per_day": per_day_table([{k: v for k, v in d.items() if k != "failures"} for d in per_day]),
            "failures_by_rule": dg.MetadataValue.json(
                {name: sum(d["failures"].get(name, 0) for d in per_day) for name in rule_names}
            ),
            "quarantine_path": dg.MetadataValue.path(q_write.uri),
            "quarantine_version": q_write.version,
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
            **write_metadata(write),
        },
        check_results=[accounting_check(store, spark, per_day), unique_key_check(store, spark, published)],
    )

"""``bronze/orders``: every line of every landed order file, as raw strings with audit columns."""

import time
from datetime import datetime, timezone
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame, SparkSession

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days
from medallion_assets.quality.thresholds import passes, threshold
from medallion_assets.reporting import per_day_table, write_metadata
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone

TABLE = "bronze/orders"
LINES_SCHEMA = "order_date date, _source_file string, _line_number long, value string"


def union_all(frames: list[DataFrame]) -> DataFrame:
    """Union by name as a balanced tree, so hundreds of files do not make a deep plan."""
    while len(frames) > 1:
        frames = [reduce(DataFrame.unionByName, frames[i : i + 2]) for i in range(0, len(frames), 2)]
    return frames[0]


def read_lines(spark: SparkSession, landing: LandingZone, days: list[str]) -> tuple[DataFrame, int]:
    """All lines of the days' ready files, each tagged with its file and line number."""
    frames = [
        transforms.number_lines(spark.read.text(str(path)), source_file=landing.relative(path), order_date=day)
        for day in days
        for path in landing.files(contract.SOURCE, day)
    ]
    if not frames:
        return spark.createDataFrame([], LINES_SCHEMA), 0
    return union_all(frames), len(frames)


@dg.asset(
    key=["bronze", "orders"],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    kinds={"spark", "delta"},
    check_specs=[dg.AssetCheckSpec("lines_parse", asset=["bronze", "orders"])],
    description="Every line of every ready order file of the day, raw strings plus _source_file, "
    "_line_number, _ingested_at and _corrupt_record for lines that are not JSON objects.",
)
def bronze_orders(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore, landing: LandingZone
) -> dg.MaterializeResult:
    started = time.monotonic()
    days = run_days(context)
    spark = engine.get_session()
    lines, files = read_lines(spark, landing, days)
    parsed = transforms.parsed_lines(lines)
    extras = transforms.extra_columns(r.key for r in transforms.json_keys(parsed).collect())
    bronze = transforms.bronze_orders(parsed, extras=extras, ingested_at=datetime.now(timezone.utc))
    stats = {r.order_date.isoformat(): r.asDict() for r in transforms.line_stats(lines).collect()}
    write = store.replace_partitions(TABLE, bronze, partition_column=contract.PARTITION_COLUMN, days=days)

    minimum = threshold(TABLE)
    per_day = []
    for day in days:
        s = stats.get(day) or {"lines": 0, "blank": 0, "corrupt": 0, "missing_required": 0}
        rows = s["lines"] - s["blank"]
        good = rows - s["corrupt"] - s["missing_required"]
        per_day.append(
            {
                "day": day,
                "rows": rows,
                "good": good,
                "blank_lines": s["blank"],
                "corrupt": s["corrupt"],
                "pass_rate": good / rows if rows else 1.0,
            }
        )
    rows_out = sum(d["rows"] for d in per_day)
    good_rows = sum(d["good"] for d in per_day)
    failing = [d["day"] for d in per_day if not passes(d["good"], d["rows"], minimum)]
    check = dg.AssetCheckResult(
        check_name="lines_parse",
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"threshold": minimum, "days_below_threshold": dg.MetadataValue.json(failing)},
        description=f"share of lines that parse and carry every required field ≥ {minimum:.0%}",
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows_out),
            "rows_in": dg.MetadataValue.int(sum(d["rows"] + d["blank_lines"] for d in per_day)),
            "rows_out": dg.MetadataValue.int(rows_out),
            "corrupt_lines": dg.MetadataValue.int(sum(d["corrupt"] for d in per_day)),
            "pass_rate": dg.MetadataValue.float(good_rows / rows_out if rows_out else 1.0),
            "files": dg.MetadataValue.int(files),
            "extra_fields": dg.MetadataValue.json(sorted(extras.values())),
            "partitions": dg.MetadataValue.json(days),
            "per_day": per_day_table(per_day),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
            **write_metadata(write),
        },
        check_results=[check],
    )

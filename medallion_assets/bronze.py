"""``bronze/orders``: every line of every landed order file, as raw strings with audit columns.

Gate: the share of lines that parse as JSON objects and carry every required field must reach the bronze
threshold (90 % by default); a day under it is not published.
"""

from datetime import datetime, timezone
from functools import reduce

import dagster as dg
from pyspark.sql import DataFrame, SparkSession

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days, table_pool
from medallion_assets.quality.gate import GATE_CHECK, GateContext, decide, finish
from medallion_assets.quality.thresholds import threshold
from medallion_assets.reporting import write_metadata
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone

TABLE = "bronze/orders"
KEY = ["bronze", "orders"]
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


def gate_stats(row: dict) -> dict:
    """Line statistics in the gate's terms: every non-blank line is published; bad lines count as failures."""
    rows_in = row["lines"] - row["blank"]
    return {
        "rows_in": rows_in,
        "valid": rows_in - row["corrupt"] - row["missing_required"],
        "kept": rows_in,
        "quarantined": 0,
        "superseded": 0,
        "rule:json_object": row["corrupt"],
        "rule:required_fields_present": row["missing_required"],
    }


@dg.asset(
    key=KEY,
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    pool=table_pool(TABLE),
    kinds={"spark", "delta"},
    check_specs=[dg.AssetCheckSpec(GATE_CHECK, asset=KEY, partitions_def=DAILY)],
    description="Every line of every ready order file of the day, raw strings plus _source_file, "
    "_line_number, _ingested_at and _corrupt_record for lines that are not JSON objects.",
)
def bronze_orders(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore, landing: LandingZone
) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    days = run_days(context)
    spark = engine.get_session()
    lines, files = read_lines(spark, landing, days)
    # One pass gives the gate's statistics and the JSON keys (new landing fields become bronze columns).
    per_day = transforms.line_stats(lines).collect()
    stats = {r.order_date.isoformat(): gate_stats(r.asDict()) for r in per_day}
    extras = transforms.extra_columns({key for r in per_day for key in r["keys"] or ()})
    bronze = transforms.bronze_orders(lines, extras=extras, ingested_at=started)
    outcomes = decide(days, stats, threshold(TABLE))
    published = [o.day for o in outcomes if o.passed]
    write = None
    if published:
        write = store.replace_partitions(TABLE, bronze, partition_column=contract.PARTITION_COLUMN, days=published)
    return finish(
        GateContext(context, store, spark, TABLE, engine.resolved_mode, started),
        outcomes,
        version=write.version if write else None,
        metadata={
            "files": dg.MetadataValue.int(files),
            "extra_fields": dg.MetadataValue.json(sorted(extras.values())),
            **write_metadata(write),
        },
        samples=lambda bad: [
            r.asDict() for r in lines.filter(lines.order_date.isin(bad)).filter("value is not null").limit(3).collect()
        ],
    )

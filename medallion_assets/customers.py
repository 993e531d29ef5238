"""``bronze/customers`` (raw CSV rows per ingest day) and ``silver/dim_customer`` (SCD type 2 via MERGE)."""

import re
from datetime import datetime, timezone

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets import customers_contract as contract
from medallion_assets import run_log
from medallion_assets.bronze import union_all
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days, table_pool
from medallion_assets.quality.gate import GATE_CHECK, GateContext, decide, finish
from medallion_assets.quality.rules import REASONS, evaluate, is_valid, rule_stats
from medallion_assets.quality.thresholds import threshold
from medallion_assets.reporting import write_metadata
from medallion_assets.scd2 import scd2_versions
from medallion_assets.transforms import with_line_numbers
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone

BRONZE = "bronze/customers"
DIM = "silver/dim_customer"
QUARANTINE = "quarantine/customers"
PART = contract.PARTITION_COLUMN
DIM_COLUMNS = ("customer_sk", "customer_id", *contract.ATTRIBUTES, "valid_from", "valid_to", "is_current")


def column_name(header: str) -> str:
    return re.sub(r"[^0-9a-z_]", "_", header.strip().lower()) or "_"


def read_csv(spark: SparkSession, landing: LandingZone, day: str, path) -> DataFrame:
    """One CSV file as raw strings (no type inference) with file, line number (header is line 1) and day."""
    df = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
    df = df.toDF(*(column_name(c) for c in df.columns))
    for field in contract.FIELDS:
        if field not in df.columns:
            df = df.withColumn(field, F.lit(None).cast("string"))
    return (
        with_line_numbers(df, first=2)  # line 1 is the header
        .withColumn("_source_file", F.lit(landing.relative(path)))
        .withColumn(PART, F.lit(day).cast("date"))
    )


@dg.asset(
    key=["bronze", "customers"],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="customers",
    pool=table_pool(BRONZE),
    kinds={"spark", "delta"},
    check_specs=[dg.AssetCheckSpec(GATE_CHECK, asset=["bronze", "customers"], partitions_def=DAILY)],
    description="Every row of every customers CSV of the ingest day, raw strings plus _source_file, _line_number, "
    "_ingested_at; columns that appear in new files are added to the table schema.",
)
def bronze_customers(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore, landing: LandingZone
) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    days = run_days(context)
    spark = engine.get_session()
    frames = [read_csv(spark, landing, day, p) for day in days for p in landing.files(contract.SOURCE, day)]
    stats: dict = {}
    write = None
    if frames:
        rows = union_all(frames).withColumn("_ingested_at", F.lit(started).cast("timestamp"))
        missing = F.lit(False)
        for field in ("customer_id", "updated_at"):
            missing = missing | F.col(field).isNull() | (F.trim(F.col(field)) == "")
        agg = rows.groupBy(PART).agg(F.count(F.lit(1)).alias("rows_in"), F.sum((~missing).cast("long")).alias("valid"))
        stats = {
            r[PART].isoformat(): {
                **r.asDict(),
                "kept": r["rows_in"],
                "quarantined": 0,
                "superseded": 0,
                "rule:required_fields_present": r["rows_in"] - r["valid"],
            }
            for r in agg.collect()
        }
    outcomes = decide(days, stats, threshold(BRONZE))
    published = [o.day for o in outcomes if o.passed]
    if published and frames:
        write = store.replace_partitions(BRONZE, rows, partition_column=PART, days=published)
    return finish(
        GateContext(context, store, spark, BRONZE, engine.resolved_mode, started),
        outcomes,
        version=write.version if write else None,
        metadata={
            "files": dg.MetadataValue.int(len(frames)),
            "columns": dg.MetadataValue.json(sorted(rows.columns) if frames else []),
            **write_metadata(write),
        },
    )


def dim_versions(valid: DataFrame) -> DataFrame:
    """SCD2 versions of the valid customer rows (validity follows ``updated_at``, not load order)."""
    return scd2_versions(
        valid.withColumn("updated_at", F.col("t_updated_at")),
        key=contract.KEY,
        attributes=contract.ATTRIBUTES,
        valid_from="updated_at",
        tie_breakers=(PART, "_source_file", "_line_number"),
        sk_name="customer_sk",
    )


@dg.asset(
    key=["silver", "dim_customer"],
    deps=[bronze_customers],
    group_name="customers",
    pool=table_pool(DIM),
    kinds={"spark", "delta"},
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(GATE_CHECK, asset=["silver", "dim_customer"]),
        dg.AssetCheckSpec("one_current_version", asset=["silver", "dim_customer"], blocking=True),
    ],
    description="Customers as SCD type 2 (customer_sk = hash of customer_id and valid_from, valid_from/valid_to "
    "from updated_at, is_current), merged by customer_sk; failing rows go to quarantine/customers.",
)
def dim_customer(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    spark = engine.get_session()
    if not store.exists(BRONZE):
        raise dg.Failure(f"{BRONZE} does not exist yet: materialize it first")
    bronze = store.read(spark, BRONZE)
    checked = evaluate(contract.typed(bronze), contract.RULES)
    stats = {r[PART].isoformat(): r.asDict() for r in rule_stats(checked, PART, contract.RULES).collect()}
    days = sorted(stats)
    outcomes = decide(days, stats, threshold(DIM), run_log.upstream_refusals(store, BRONZE, days))
    published = [o.day for o in outcomes if o.passed]
    quarantine = checked.filter(~is_valid()).select(
        *bronze.columns,
        REASONS,
        F.lit(started).cast("timestamp").alias("_quarantined_at"),
        F.lit(context.run_id).alias("_run_id"),
    )
    store.overwrite(QUARANTINE, quarantine)
    versions = dim_versions(checked.filter(is_valid() & F.col(PART).isin(published)))
    write = store.merge(DIM, versions.select(*DIM_COLUMNS), keys=["customer_sk"], delete_unmatched=True)
    dim = store.read(spark, DIM)
    current = dim.groupBy("customer_id").agg(F.sum(F.col("is_current").cast("long")).alias("n"))
    broken = current.filter(F.col("n") != 1).count()
    counts = dim.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col("is_current").cast("long")).alias("current"))
    totals = counts.collect()[0]
    return finish(
        GateContext(context, store, spark, DIM, engine.resolved_mode, started),
        outcomes,
        version=write.version,
        metadata={
            "versions": dg.MetadataValue.int(totals["rows"]),
            "current_customers": dg.MetadataValue.int(totals["current"] or 0),
            **write_metadata(write),
        },
        per_partition_checks=False,  # the days are ingest days of bronze, not partitions of the dimension
        check_results=[
            dg.AssetCheckResult(
                check_name="one_current_version",
                passed=broken == 0,
                metadata={"customers_without_exactly_one_current_version": broken},
                description="every customer_id has exactly one current version",
            )
        ],
    )

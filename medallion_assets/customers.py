"""``bronze/customers`` (every CSV record per ingest day) and ``silver/dim_customer`` (SCD type 2 via MERGE)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets import customers_contract as contract
from medallion_assets.factory import ReadBackCheck, Run, TableSpec, Verdict
from medallion_assets.ingest import LANDING, csv_records
from medallion_assets.partitions import FOLLOWS_UPSTREAM
from medallion_assets.quality.checks import line_accounting
from medallion_assets.quality.gate import DayOutcome
from medallion_assets.scd2 import scd2_versions
from medallion_assets.star import FACT_KEYS_CHECK
from resources.delta_store import WriteResult

BRONZE = "bronze/customers"
DIM = "silver/dim_customer"
QUARANTINE = "quarantine/customers"
PART = contract.PARTITION_COLUMN
DIM_COLUMNS = ("customer_sk", "customer_id", *contract.ATTRIBUTES, "valid_from", "valid_to", "is_current")


def bronze_customers(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Every record of every customers CSV of the ingest day: each column as raw text, _raw_record (the record
    as written), _invalid_utf8 (base64, when not UTF-8), _csv_error (a bad header or shape), _source_file,
    _line_number (the record's first physical line), _ingested_at. Columns of new headers are added."""
    rows = upstream[LANDING]
    run.report["columns"] = sorted(rows.columns)
    return rows.withColumn("_ingested_at", F.lit(run.started_at).cast("timestamp"))


BRONZE_SPEC = TableSpec(
    table=BRONZE,
    build=bronze_customers,
    rules=contract.BRONZE_RULES,
    partition_column=PART,
    keeps_failing_rows=True,
    read=csv_records(contract.SOURCE, PART, contract.FIELDS, reserved=contract.COLUMNS),
    guard_volume=True,
    checks=(line_accounting(BRONZE, PART),),
    sample_columns=("_raw_record", "_csv_error"),
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


def typed_customers(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Customers as SCD type 2 (customer_sk = hash of customer_id and valid_from, valid_from/valid_to from
    updated_at, is_current), merged by customer_sk; failing rows go to quarantine/customers."""
    return contract.typed(upstream[BRONZE])


def merge_versions(run: Run, valid: DataFrame, published: Sequence[str], note: str) -> WriteResult:
    """The versions of the published ingest days, merged by surrogate key (versions no longer derived go)."""
    versions = dim_versions(valid.filter(F.col(PART).isin(list(published))))
    return run.store.merge(DIM, versions.select(*DIM_COLUMNS), keys=["customer_sk"], delete_unmatched=True, note=note)


def one_current_version(run: Run, published: list[DayOutcome]) -> Verdict:
    """Every customer_id has exactly one current version."""
    dim = run.store.read(run.spark, DIM)
    current = dim.groupBy("customer_id").agg(F.sum(F.col("is_current").cast("long")).alias("n"))
    broken = [r["customer_id"] for r in current.filter(F.col("n") != 1).limit(20).collect()]
    return Verdict({"all": broken} if broken else {}, {"customers_sample": broken})


DIM_SPEC = TableSpec(
    table=DIM,
    build=typed_customers,
    rules=contract.RULES,
    upstream=(BRONZE,),
    judged_by=PART,
    quarantine=QUARANTINE,
    read=lambda run: {BRONZE: run.read(BRONZE, by_day=False)},
    write=merge_versions,
    published=lambda rows: rows,
    checks=(
        ReadBackCheck("one_current_version", one_current_version, "every customer has one current version"),
        FACT_KEYS_CHECK,
    ),
    automation=FOLLOWS_UPSTREAM,
    sample_columns=("customer_id", "email", "segment"),
)

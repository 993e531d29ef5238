"""Checks on what was published, read back from the tables: line and row accounting, unique keys, and pandera
models over the published partitions."""

from collections.abc import Sequence
from functools import reduce
from typing import TYPE_CHECKING

import dagster as dg
import pandera.errors
import pandera.pandas as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.quality.gate import DayOutcome
from medallion_assets.quality.schemas import arrow_frame
from resources.delta_store import DeltaTableStore

if TYPE_CHECKING:
    from medallion_assets.factory import ReadBackCheck, Run


def _result(run: "Run", name: str, passed: bool, metadata: dict, description: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=run.spec.key, check_name=name, passed=passed, metadata=metadata, description=description
    )


def _counts(run: "Run", table: str, day_column: str, days: Sequence[str], *by: str) -> list[dict]:
    """Rows of ``table`` per day (and ``by`` columns) for ``days``, read back."""
    df = run.store.read(run.spark, table, partition_column=day_column, days=days)
    return [r.asDict() for r in df.groupBy(day_column, *by).count().collect()]


def _duplicate_lines(run: "Run", table: str, day_column: str, days: Sequence[str]) -> dict[str, int]:
    """Lines (file, line number) that appear more than once in ``table``: file → extra copies."""
    df = run.store.read(run.spark, table, partition_column=day_column, days=days)
    extra: dict[str, int] = {}
    for r in df.groupBy("_source_file", "_line_number").count().filter(F.col("count") > 1).limit(10_000).collect():
        extra[r["_source_file"]] = extra.get(r["_source_file"], 0) + r["count"] - 1
    return extra


def line_accounting(table: str, day_column: str) -> "ReadBackCheck":
    """Every non-blank landed line of each published day is in the bronze table exactly once."""
    from medallion_assets.factory import ReadBackCheck

    def check(run: "Run", published: list[DayOutcome]) -> dg.AssetCheckResult:
        days = [o.day for o in published]
        folders = tuple(f"/date={d}/" for d in days)
        landed = {f: n for f, n in run.report.get("landed_lines", {}).items() if any(d in f for d in folders)}
        if not days:
            return _result(run, "line_accounting", True, {"days_checked": 0}, "no day published")
        read_back = {r["_source_file"]: r["count"] for r in _counts(run, table, day_column, days, "_source_file")}
        off = {
            f: {"landed": landed.get(f, 0), "bronze": read_back.get(f, 0)}
            for f in sorted(set(landed) | set(read_back))
            if landed.get(f, 0) != read_back.get(f, 0)
        }
        duplicates = _duplicate_lines(run, table, day_column, days)
        return _result(
            run, "line_accounting", not off and not duplicates,
            {"days_checked": len(days), "files_checked": len(landed), "mismatches": dg.MetadataValue.json(off),
             "duplicated_lines": dg.MetadataValue.json(duplicates)},
            "every non-blank landed line is in bronze exactly once, per file, read back",
        )  # fmt: skip

    return ReadBackCheck("line_accounting", check, "every non-blank landed line is in bronze exactly once")


def row_accounting(bronze: str, silver: str, quarantine: str, day_column: str) -> "ReadBackCheck":
    """bronze rows = silver rows + quarantined rows + superseded rows per published day, read back; and no
    bronze line appears twice (a copy would otherwise hide as a superseded version)."""
    from medallion_assets.factory import ReadBackCheck

    def check(run: "Run", published: list[DayOutcome]) -> dg.AssetCheckResult:
        days = [o.day for o in published]
        if not days:
            return _result(run, "row_accounting", True, {"days_checked": 0}, "no day published")
        per_table = [
            run.store.read(run.spark, t, partition_column=day_column, days=days)
            .groupBy(day_column).count().withColumn("table", F.lit(t))
            for t in (bronze, silver, quarantine)
        ]  # fmt: skip
        counts: dict[str, dict[str, int]] = {t: {} for t in (bronze, silver, quarantine)}
        for r in reduce(DataFrame.unionByName, per_table).collect():
            counts[r["table"]][r[day_column].isoformat()] = r["count"]
        broken = {
            o.day: {
                "bronze": counts[bronze].get(o.day, 0), "silver": counts[silver].get(o.day, 0),
                "quarantine": counts[quarantine].get(o.day, 0), "superseded": o.stats.superseded,
            }
            for o in published
            if counts[bronze].get(o.day, 0)
            != counts[silver].get(o.day, 0) + counts[quarantine].get(o.day, 0) + o.stats.superseded
        }  # fmt: skip
        duplicates = _duplicate_lines(run, bronze, day_column, days)
        if duplicates:
            broken["lines_in_bronze_twice"] = duplicates
        return _result(
            run, "row_accounting", not broken,
            {"days_checked": len(days), "mismatches": dg.MetadataValue.json(broken)},
            "bronze = silver + quarantine + superseded per published day, no bronze line twice; read back",
        )  # fmt: skip

    return ReadBackCheck("row_accounting", check, "bronze = silver + quarantine + superseded, per published day")


def key_unique(table: str, key: str, day_column: str) -> "ReadBackCheck":
    """No key appears twice within a published day."""
    from medallion_assets.factory import ReadBackCheck

    name = f"{key}_unique"

    def check(run: "Run", published: list[DayOutcome]) -> dg.AssetCheckResult:
        days = [o.day for o in published]
        if not days:
            return _result(run, name, True, {"days_checked": 0}, "no day published")
        rows = run.store.read(run.spark, table, partition_column=day_column, days=days)
        dupes = rows.groupBy(day_column, key).count().filter(F.col("count") > 1)
        sample = [f"{r[day_column]}:{r[key]}" for r in dupes.limit(5).collect()]
        return _result(
            run, name, not sample, {"days_checked": len(days), "duplicate_sample": dg.MetadataValue.json(sample)},
            f"{key} is unique within each published day",
        )  # fmt: skip

    return ReadBackCheck(name, check, f"{key} is unique within each published day")


def pandera_check(
    key: dg.AssetKey, table: str, model: type[pa.DataFrameModel], partitions_def: dg.PartitionsDefinition | None,
    partition_column: str | None,
) -> dg.AssetChecksDefinition:  # fmt: skip
    """A check validating the published rows of ``table`` against ``model`` (types, nullability, keys): the
    partitions the check runs for, or the whole table when it is unpartitioned."""

    @dg.asset_check(
        asset=key,
        name="pandera_schema",
        partitions_def=partitions_def,
        description=f"{model.__name__} (pandera: types, nullability, keys) on the published rows of {table}",
    )
    def _check(context: dg.AssetCheckExecutionContext, store: DeltaTableStore) -> dg.AssetCheckResult:
        if not store.exists(table):
            return dg.AssetCheckResult(passed=False, metadata={"error": f"{table} does not exist"})
        dt = store.delta_table(table)
        days = list(context.partition_keys) if partition_column and context.has_partition_key_range else None
        filters = [(partition_column, "in", days)] if days else None
        frame = arrow_frame(dt.to_pyarrow_table(partitions=filters))
        result = validate(model, frame)
        return dg.AssetCheckResult(
            passed=result.passed, metadata={**result.metadata, "partitions": dg.MetadataValue.json(days or [])}
        )

    return _check


def validate(model: type[pa.DataFrameModel], df) -> dg.AssetCheckResult:
    """Run ``model`` lazily; failure cases (capped) go into the check's metadata."""
    try:
        model.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return dg.AssetCheckResult(
            passed=False,
            metadata={
                "rows_checked": dg.MetadataValue.int(len(df)),
                "failure_count": dg.MetadataValue.int(len(cases)),
                "failed_checks": dg.MetadataValue.json(sorted({str(c) for c in cases["check"]})),
                "failure_cases": dg.MetadataValue.md(cases.head(20).to_markdown(index=False)),
            },
        )
    return dg.AssetCheckResult(passed=True, metadata={"rows_checked": dg.MetadataValue.int(len(df))})

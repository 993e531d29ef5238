"""Checks on what was published, read back from the tables: line and row accounting, unique keys, and pandera
models over the published partitions."""

import copy
import re
from collections.abc import Iterable, Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pyarrow
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets import arrow_memory
from medallion_assets.quality.gate import DayOutcome
from medallion_assets.quality.schemas import arrow_frame
from resources.delta_store import DeltaTableStore
from resources.settings import Settings

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from medallion_assets.factory import ReadBackCheck, Run


def _day_of(source_file: str) -> str | None:
    """The landing day of a ``_source_file`` (``orders/date=2024-01-02/a.jsonl`` → ``2024-01-02``)."""
    match = re.search(r"/date=(\d{4}-\d{2}-\d{2})/", source_file)
    return match.group(1) if match else None


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


def _by_day(per_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for file, value in per_file.items():
        out.setdefault(_day_of(file) or "?", {})[file] = value
    return out


def line_accounting(table: str, day_column: str) -> "ReadBackCheck":
    """Every non-blank landed line of each published day is in the bronze table exactly once."""
    from medallion_assets.factory import ReadBackCheck, Verdict

    def check(run: "Run", published: list[DayOutcome]) -> Verdict:
        days = [o.day for o in published]
        landed = {f: n for f, n in run.report.get("landed_lines", {}).items() if _day_of(f) in days}
        read_back = {r["_source_file"]: r["count"] for r in _counts(run, table, day_column, days, "_source_file")}
        off = {
            f: {"landed": landed.get(f, 0), "bronze": read_back.get(f, 0)}
            for f in sorted(set(landed) | set(read_back))
            if landed.get(f, 0) != read_back.get(f, 0)
        }
        twice = {f: {"lines_in_bronze_twice": n} for f, n in _duplicate_lines(run, table, day_column, days).items()}
        return Verdict(_by_day({**off, **twice}), {"days_checked": len(days), "files_checked": len(landed)})

    return ReadBackCheck("line_accounting", check, "every non-blank landed line is in bronze exactly once")


def row_accounting(bronze: str, silver: str, quarantine: str, day_column: str) -> "ReadBackCheck":
    """bronze rows = silver rows + quarantined rows + superseded rows per published day, read back; and no
    bronze line appears twice (a copy would otherwise hide as a superseded version)."""
    from medallion_assets.factory import ReadBackCheck, Verdict

    def check(run: "Run", published: list[DayOutcome]) -> Verdict:
        days = [o.day for o in published]
        per_table = [
            run.store.read(run.spark, t, partition_column=day_column, days=days)
            .groupBy(day_column).count().withColumn("table", F.lit(t))
            for t in (bronze, silver, quarantine)
        ]  # fmt: skip
        counts: dict[str, dict[str, int]] = {t: {} for t in (bronze, silver, quarantine)}
        for r in reduce(DataFrame.unionByName, per_table).collect():
            counts[r["table"]][r[day_column].isoformat()] = r["count"]
        failed: dict[str, Any] = {}
        for o in published:
            b, s, q = (counts[t].get(o.day, 0) for t in (bronze, silver, quarantine))
            if b != s + q + o.stats.superseded:
                failed[o.day] = {"bronze": b, "silver": s, "quarantine": q, "superseded": o.stats.superseded}
        for day, files in _by_day(_duplicate_lines(run, bronze, day_column, days)).items():
            failed.setdefault(day, {})["lines_in_bronze_twice"] = files
        return Verdict(failed, {"days_checked": len(days)})

    return ReadBackCheck("row_accounting", check, "bronze = silver + quarantine + superseded, per published day")


def key_unique(table: str, key: str, day_column: str) -> "ReadBackCheck":
    """No key appears twice within a published day."""
    from medallion_assets.factory import ReadBackCheck, Verdict

    def check(run: "Run", published: list[DayOutcome]) -> Verdict:
        days = [o.day for o in published]
        rows = run.store.read(run.spark, table, partition_column=day_column, days=days)
        dupes = rows.groupBy(day_column, key).count().filter(F.col("count") > 1)
        failed: dict[str, list[str]] = {}
        for r in dupes.limit(100).collect():
            failed.setdefault(r[day_column].isoformat(), []).append(str(r[key]))
        return Verdict(failed, {"days_checked": len(days)})

    return ReadBackCheck(f"{key}_unique", check, f"{key} is unique within each published day")


def column_schema_change(table: str) -> "ReadBackCheck":
    """No column of the table disappeared or changed type since the version before this run's write (new
    columns are schema evolution, listed but allowed)."""
    from medallion_assets.factory import ReadBackCheck, Verdict

    def check(run: "Run", published: list[DayOutcome]) -> Verdict:
        now = dict(run.store.columns(table))
        # from the write itself, not a search of the history for the run's note (a MERGE commit carries none)
        before = dict(run.written.columns_before) if run.written else now
        changed = {c: {"was": t, "now": now.get(c)} for c, t in before.items() if now.get(c) != t}
        added = sorted(set(now) - set(before))
        failed = {o.day: changed for o in published} if changed and before else {}
        return Verdict(failed, {"added_columns": added, "changed_columns": changed})

    return ReadBackCheck(
        "column_schema_change", check, column_schema_change.__doc__ or "", blocking=False,
        severity=dg.AssetCheckSeverity.WARN,
    )  # fmt: skip


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
    def _check(context: dg.AssetCheckExecutionContext, store: DeltaTableStore, settings: Settings):
        if not store.exists(table):
            yield dg.AssetCheckResult(passed=False, metadata={"error": f"{table} does not exist"})
            return
        dt = store.delta_table(table)
        partitioned = context.has_partition_key or context.has_partition_key_range  # one day, or a range of days
        days = list(context.partition_keys) if partition_column and partitioned else None
        columns = checked_columns(model, dt)
        frames = (
            arrow_frame(store.arrow_table(table, partitions=[(partition_column, "in", block)] if block else None,
                                          columns=columns))
            for block in _day_blocks(model, store, settings, table, partition_column, days)
        )  # fmt: skip
        try:
            result, failed_days = validate(model, frames, day_column=partition_column)
        finally:
            arrow_memory.release_arrow_memory()
        if days and len(days) > 1:  # one evaluation per day (failed days only in long runs), as for every check
            for day in days if len(days) <= settings.gate_events_max_days else sorted(failed_days):
                yield dg.AssetCheckEvaluation(
                    asset_key=key, check_name="pandera_schema", passed=day not in failed_days, partition=day,
                    metadata={"failed_checks": dg.MetadataValue.json(sorted(failed_days.get(day, ())))},
                )  # fmt: skip
        yield dg.AssetCheckResult(
            passed=result.passed, metadata={**result.metadata, "partitions": dg.MetadataValue.json(days or [])}
        )

    return _check


def _day_blocks(
    model: type[pa.DataFrameModel], store: DeltaTableStore, settings: Settings, table: str,
    partition_column: str | None, days: list[str] | None,
) -> list[list[str]]:  # fmt: skip
    """The checked days in blocks of at most ``settings.block_rows`` rows, each validated alone (memory follows the
    block); one block when the model's unique key spans days. ``[[]]``: the whole table."""
    unique = model.to_schema().unique or []
    unique = [unique] if isinstance(unique, str) else unique
    if len(days or ()) < 2 or not partition_column or (unique and partition_column not in unique):
        return [days or []]
    return store.day_blocks([table], days, max_rows=settings.block_rows)


def checked_columns(model: type[pa.DataFrameModel], dt: "DeltaTable") -> list[str] | None:
    """The columns ``model`` checks that the table has (a missing one is still reported as missing); all of them
    (None) for a strict model, which refuses columns it does not declare. Bookkeeping columns (``_source_file``…)
    are not read: a third of the read on silver."""
    schema = model.to_schema()
    if schema.strict:
        return None
    present = {f.name for f in dt.schema().fields}
    return [c for c in schema.columns if c in present]


def validate(
    model: type[pa.DataFrameModel], frames: "pd.DataFrame | Iterable[pd.DataFrame]", *, day_column: str | None = None
) -> tuple[dg.AssetCheckResult, dict[str, set[str]]]:
    """Run ``model`` lazily, once per frame (the frames of one table's day blocks, each read when its turn
    comes); failure cases (capped) go into the check's metadata, and the failed checks of each day
    (``day_column``'s value of the failing rows; a column-level failure counts for every day of its frame)."""
    schema = model.to_schema()
    rows, cases, failed = 0, [], {}
    for df in [frames] if isinstance(frames, pd.DataFrame) else frames:
        offset, rows = rows, rows + len(df)
        checked = schema
        if schema.unique and jointly_unique(df, schema.unique):
            checked = copy.copy(schema)  # the same verdict without pandas' duplicate scan (0.4-1.0 s on 1.9 M rows)
            checked.unique = None
        try:
            checked.validate(df, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            for day, names in _failed_days(df, exc.failure_cases, day_column).items():
                failed.setdefault(day, set()).update(names)
            at = exc.failure_cases["index"].map(lambda i, o=offset: i if i is None or i != i else int(i) + o)
            cases.append(exc.failure_cases.assign(index=at))  # the row's position in the range, not the block
    if not cases:
        return dg.AssetCheckResult(passed=True, metadata={"rows_checked": dg.MetadataValue.int(rows)}), {}
    # a column-level failure (no row index) is found again in every block: reported once
    all_cases = pd.concat(cases, ignore_index=True)
    all_cases = all_cases[all_cases["index"].notna() | ~all_cases.drop(columns="index").astype(str).duplicated()]
    result = dg.AssetCheckResult(
        passed=False,
        metadata={
            "rows_checked": dg.MetadataValue.int(rows),
            "failure_count": dg.MetadataValue.int(len(all_cases)),
            "failed_checks": dg.MetadataValue.json(sorted({str(c) for c in all_cases["check"]})),
            "failure_cases": dg.MetadataValue.md(all_cases.head(20).to_markdown(index=False)),
        },
    )
    return result, failed


def jointly_unique(df, columns: Sequence[str]) -> bool:
    """Whether no two rows of ``df`` share their ``columns`` values (nulls equal, as in pandas' ``duplicated``),
    counted with one Arrow hash aggregation. False when it cannot tell (a column missing or not convertible to
    Arrow), so pandera's own test runs and reports the failure cases."""
    if not set(columns) <= set(df.columns):
        return False
    try:
        keys = pyarrow.table({c: pyarrow.array(df[c]) for c in columns})  # Arrow-backed columns: no copy
    except (pyarrow.ArrowException, TypeError, ValueError):
        return False
    return keys.group_by(list(columns)).aggregate([([], "count_all")]).num_rows == keys.num_rows


def _failed_days(df, cases, day_column: str | None) -> dict[str, set[str]]:
    if day_column is None or day_column not in df.columns:
        return {}
    days = df[day_column].astype(str)
    everyday = set(days.unique())
    failed: dict[str, set[str]] = {}
    for check, index in zip(cases["check"], cases["index"], strict=True):
        hit = {days.iloc[int(index)]} if index is not None and index == index else everyday
        for day in hit:
            failed.setdefault(day, set()).add(str(check))
    return failed

"""Read hooks of the bronze tables: landing files of the run's days, normalised by ``resources.landing_files``
into scratch Parquet, then read by the engine.

What a read found — files, lines, blank and non-UTF-8 lines, entries skipped (links), days without files — goes
into the step's metadata, and a day without files gets its reason for the publish guard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from resources.landing import DayListing, LandingFile
from resources.landing_files import (
    JSON_LINE_FIELDS,
    CsvFile,
    FileRead,
    csv_table,
    read_csv_records,
    read_json_lines,
)
from resources.partition_keys import parse_day

if TYPE_CHECKING:
    from medallion_assets.factory import Run

LANDING = "landing"
#: Per-partition metadata of a bronze materialization: the file set it read (the sensors compare theirs to it).
FINGERPRINT = "landing_fingerprint"


def listings(run: Run, source: str) -> list[DayListing]:
    """The run's day folders of ``source``; fails first when the landing root itself is missing."""
    run.landing.check_root()
    found = [run.landing.listing(source, day) for day in run.days or []]
    skipped = [{"file": s.relative, "reason": s.reason} for d in found for s in d.skipped]
    for entry in skipped:
        run.context.log.warning(f"skipped landing entry {entry['file']}: {entry['reason']}")
    run.report["skipped_files"] = skipped
    for day in found:
        run.day_report.setdefault(day.day, {})[FINGERPRINT] = day.fingerprint
        if not day.files:
            why = "; ".join(f"{s.relative} {s.reason}" for s in day.skipped)
            run.no_input[day.day] = f"no landing files in {day.folder}" + (f" ({why})" if why else "")
    return found


def _with_audit(table: pa.Table, relative: str, day: str | None, partition_column: str) -> pa.Table:
    """``table`` with the day (the folder's date) and the file it came from as its first columns."""
    n = table.num_rows
    days = pa.array([parse_day(day)] * n if day else [], pa.date32())
    return table.add_column(0, pa.field(partition_column, pa.date32()), days).add_column(
        1, pa.field("_source_file", pa.string()), pa.array([relative] * n, pa.string())
    )


def _report(run: Run, reads: Sequence[FileRead]) -> None:
    run.report.update(
        files=len(reads),
        landed_lines={r.relative: r.rows for r in reads},
        blank_lines=sum(r.blank for r in reads),
        invalid_utf8_lines=sum(r.invalid_utf8 for r in reads),
    )
    for r in reads:
        if r.invalid_utf8:
            run.context.log.warning(f"{r.relative}: {r.invalid_utf8} line(s) are not UTF-8 (kept as bytes)")


def _stage(run: Run, name: str, tables: Sequence[pa.Table], schema: pa.Schema) -> DataFrame:
    """Write ``tables`` to scratch Parquet (one file each) and read them back as one engine frame."""
    if not tables:
        return run.spark.createDataFrame([], _spark_schema(schema))
    uri = run.scratch.enter_context(run.store.scratch(name))
    filesystem, path = run.store.filesystem(uri)  # the lakehouse's storage configuration, object stores included
    filesystem.create_dir(path, recursive=True)
    for i, table in enumerate(tables):
        pq.write_table(table.cast(schema), f"{path}/part-{i:05d}.parquet", filesystem=filesystem, compression="none")
    return run.spark.read.parquet(uri)


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.string(): "string", pa.int64(): "bigint", pa.date32(): "date"}
    return ", ".join(f"`{f.name}` {names.get(f.type, 'map<string,string>')}" for f in schema)


def json_lines(source: str, partition_column: str) -> Callable[[Run], dict[str, DataFrame]]:
    """Read hook: every non-blank line of the run's days of a JSON-lines source, with its file and number."""
    empty = _with_audit(pa.schema(JSON_LINE_FIELDS).empty_table(), "", None, partition_column)

    def read(run: Run) -> dict[str, DataFrame]:
        tables, reads = [], []
        for day in listings(run, source):
            for file in day.files:
                batches, read = read_json_lines(file)
                reads.append(read)
                if batches:
                    tables.append(_with_audit(pa.Table.from_batches(batches), file.relative, day.day, partition_column))
        _report(run, reads)
        return {LANDING: _stage(run, f"landing_{source}", tables, empty.schema)}

    return read


def csv_records(source: str, partition_column: str, required: Sequence[str]) -> Callable[[Run], dict[str, DataFrame]]:
    """Read hook: every record of the run's days of a CSV source, over the union of all headers' columns."""

    def read(run: Run) -> dict[str, DataFrame]:
        parsed: list[tuple[str, LandingFile, CsvFile]] = []
        for day in listings(run, source):
            parsed += [(day.day, f, read_csv_records(f, required=required)) for f in day.files]
        _report(run, [p.read for _, _, p in parsed])
        columns = list(dict.fromkeys([*required, *(c for _, _, p in parsed for c in p.columns)]))
        tables = [
            _with_audit(csv_table([p], columns), f.relative, day, partition_column) for day, f, p in parsed if p.records
        ]
        empty = _with_audit(csv_table([], columns), "", None, partition_column)
        return {LANDING: _stage(run, f"landing_{source}", tables, empty.schema)}

    return read

"""Read hooks of the bronze tables: landing files of the run's days, normalised by ``resources.landing_files``
into scratch Parquet, then read by the engine.

What a read found — files, lines, blank and non-UTF-8 lines, entries skipped (links), days without files — goes
into the step's metadata, and a day without files gets its reason for the publish guard.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from medallion_assets.quality.rules import PIPELINE_COLUMNS
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
#: Landing files read at once (the reader spends its time in Arrow, NumPy and Parquet code that releases the GIL).
READ_THREADS = min(4, os.cpu_count() or 1)
#: Per-partition metadata of a bronze materialization: the file set it read (the sensors compare theirs to it).
FINGERPRINT = "landing_fingerprint"
#: Lines of each landed file (run and per-partition metadata; line accounting reads it from the run's report).
LANDED_LINES = "landed_lines"
#: bronze's column naming the landing file of each row (relative to the landing root)
SOURCE_FILE = "_source_file"


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


def _unread(run: Run, day: str, file: LandingFile, exc: Exception) -> None:
    """A listed file that could not be read — gone or changed since it was listed (``OSError``), or content the
    reader failed on (any other error, logged with its traceback): its day is refused by the publish guard (the
    file and the error named), the other days go on."""
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc)
    else:
        why = f"the landing reader failed on it: {type(exc).__name__}: {exc}"
        run.context.log.error(f"{file.relative} ({day}): {why}", exc_info=exc)
    run.unread.setdefault(day, {})[file.relative] = why
    run.context.log.warning(f"{file.relative} could not be read ({why}); the publish guard judges {day}")


def _with_audit(table: pa.Table, relative: str, day: str | None, partition_column: str) -> pa.Table:
    """``table`` with the day (the folder's date) and the file it came from as its first columns."""
    n = table.num_rows
    days = pa.array([parse_day(day)] * n if day else [], pa.date32())
    return table.add_column(0, pa.field(partition_column, pa.date32()), days).add_column(
        1, pa.field(SOURCE_FILE, pa.string()), pa.array([relative] * n, pa.string())
    )


def _report(run: Run, reads: Sequence[FileRead], days: Sequence[str]) -> None:
    """The run's landing figures; each day's files and their line counts also go to that day's partition."""
    for day, r in zip(days, reads, strict=True):
        run.day_report.setdefault(day, {}).setdefault(LANDED_LINES, {})[r.relative] = r.rows
    run.report.update(
        files=len(reads),
        landed_lines={r.relative: r.rows for r in reads},
        blank_lines=sum(r.blank for r in reads),
        invalid_utf8_lines=sum(r.invalid_utf8 for r in reads),
    )
    for r in reads:
        if r.invalid_utf8:
            run.context.log.warning(f"{r.relative}: {r.invalid_utf8} line(s) are not UTF-8 (kept as bytes)")


class _Scratch:
    """A scratch folder of Parquet files, one per landing file, read back by the engine as one frame."""

    def __init__(self, run: Run, name: str, schema: pa.Schema) -> None:
        self.uri = run.scratch.enter_context(run.store.scratch(name))
        self.filesystem, self.path = run.store.filesystem(self.uri)  # object stores included
        self.filesystem.create_dir(self.path, recursive=True)
        self.schema = schema
        self.written = 0
        self._lock = threading.Lock()

    def write(self, index: int, table: pa.Table) -> None:
        pq.write_table(
            table.cast(self.schema), f"{self.path}/part-{index:05d}.parquet", filesystem=self.filesystem,
            compression="none",
        )  # fmt: skip
        with self._lock:
            self.written += 1

    def frame(self, run: Run) -> DataFrame:
        if not self.written:
            return run.spark.createDataFrame([], _spark_schema(self.schema))
        return run.spark.read.parquet(self.uri)


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.string(): "string", pa.int64(): "bigint", pa.date32(): "date"}
    return ", ".join(f"`{f.name}` {names.get(f.type, 'map<string,string>')}" for f in schema)


def json_lines(source: str, partition_column: str) -> Callable[[Run], dict[str, DataFrame]]:
    """Read hook: every non-blank line of the run's days of a JSON-lines source, with its file and number.

    Files are read on ``READ_THREADS`` threads (Arrow and Parquet release the GIL), each written to scratch as
    soon as it is read, so memory holds a few files, not the run's."""
    empty = _with_audit(pa.schema(JSON_LINE_FIELDS).empty_table(), "", None, partition_column)

    def read(run: Run) -> dict[str, DataFrame]:
        files = [(day.day, file) for day in listings(run, source) for file in day.files]
        scratch = _Scratch(run, f"landing_{source}", empty.schema)

        def read_one(job: tuple[int, str, LandingFile]) -> FileRead | None:
            index, day, file = job
            try:
                batches, found = read_json_lines(file)
            except Exception as exc:  # gone or changed since it was listed, or content the reader fails on
                _unread(run, day, file, exc)
                return None
            if batches:
                scratch.write(index, _with_audit(pa.Table.from_batches(batches), file.relative, day, partition_column))
            return found

        jobs = [(index, day, file) for index, (day, file) in enumerate(files)]
        with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="landing") as pool:
            reads = list(pool.map(read_one, jobs))
        done = [(day, found) for (day, _), found in zip(files, reads, strict=True) if found is not None]
        _report(run, [found for _, found in done], [day for day, _ in done])
        return {LANDING: scratch.frame(run)}

    return read


def csv_records(
    source: str, partition_column: str, required: Sequence[str], reserved: Sequence[str] = ()
) -> Callable[[Run], dict[str, DataFrame]]:
    """Read hook: every record of the run's days of a CSV source, over the union of all headers' columns. A header
    column named like the partition column, ``_source_file``, one of ``reserved`` (the table's other columns) or
    one the pipeline adds (``PIPELINE_COLUMNS``) is renamed as JSON extras are (``landing_files.column_name``)."""
    taken = (*reserved, partition_column, SOURCE_FILE, *PIPELINE_COLUMNS)

    def read(run: Run) -> dict[str, DataFrame]:
        parsed: list[tuple[str, LandingFile, CsvFile]] = []
        for day in listings(run, source):
            for file in day.files:
                try:
                    parsed.append((day.day, file, read_csv_records(file, required=required, reserved=taken)))
                except Exception as exc:  # gone or changed since it was listed, or content the reader fails on
                    _unread(run, day.day, file, exc)
        _report(run, [p.read for _, _, p in parsed], [day for day, _, _ in parsed])
        columns = list(dict.fromkeys([*required, *(c for _, _, p in parsed for c in p.columns)]))
        empty = _with_audit(csv_table([], columns), "", None, partition_column)
        scratch = _Scratch(run, f"landing_{source}", empty.schema)
        for index, (day, file, found) in enumerate(parsed):
            if found.records:
                scratch.write(index, _with_audit(csv_table([found], columns), file.relative, day, partition_column))
        return {LANDING: scratch.frame(run)}

    return read

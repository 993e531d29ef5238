"""``monitoring/pipeline_runs``: one row per asset-partition materialization attempt, published or refused.

Every data commit carries its run-log rows in the Delta commit itself (``userMetadata``), so published data
always has its record even when the run dies before the log is appended or the append fails: the next run
that touches the table (or reads its gates) reconciles the log from the commits. Downstream assets read the
latest attempt per upstream partition to enforce quality gates across runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import pyarrow as pa

from resources.delta_store import DeltaTableStore

LOG = logging.getLogger("medallion.run_log")
TABLE = "monitoring/pipeline_runs"
NOTE_KEY = "medallion_run_log"
#: How many recent commits of a table are checked for rows missing from the log.
RECONCILE_COMMITS = 20
#: The table-store mark up to which a table's commits are known to have their rows in the log.
RECONCILED = "run_log_reconciled"
ARROW_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()), ("run_mode", pa.string()), ("asset", pa.string()), ("layer", pa.string()),
        ("partition", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("ended_at", pa.timestamp("us", tz="UTC")), ("duration_secs", pa.float64()), ("rows_in", pa.int64()),
        ("rows_written", pa.int64()), ("quarantined", pa.int64()), ("superseded", pa.int64()),
        ("pass_rate", pa.float64()), ("threshold", pa.float64()), ("passed", pa.bool_()),
        ("delta_version", pa.int64()), ("engine", pa.string()), ("error_message", pa.string()),
        ("reconciled", pa.bool_()),
    ]
)  # fmt: skip


@dataclass(frozen=True)
class RunLogRow:
    run_id: str
    run_mode: str
    asset: str
    layer: str
    partition: str
    started_at: datetime
    ended_at: datetime
    duration_secs: float
    rows_in: int
    rows_written: int
    quarantined: int
    superseded: int
    pass_rate: float
    threshold: float
    passed: bool
    delta_version: int | None
    engine: str
    error_message: str | None
    reconciled: bool = False

    def note(self) -> dict[str, Any]:
        """The row as JSON-able values, for a Delta commit's ``userMetadata``."""
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_note(cls, note: Mapping[str, Any], *, version: int) -> RunLogRow:
        values = {f.name: note.get(f.name) for f in fields(cls)}
        for key in ("started_at", "ended_at"):
            values[key] = datetime.fromisoformat(values[key])
        return cls(**{**values, "delta_version": version if values["passed"] else None, "reconciled": True})


def run_mode(tags: Mapping[str, str]) -> str:
    """manual, schedule, sensor or backfill, from the run's tags."""
    if "dagster/backfill" in tags:
        return "backfill"
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    return "manual"


def commit_note(rows: Sequence[RunLogRow]) -> str:
    """The ``userMetadata`` of a data commit: the attempt's run-log rows."""
    return json.dumps({NOTE_KEY: [r.note() for r in rows]}, separators=(",", ":"), default=str)


def record(store: DeltaTableStore, rows: Sequence[RunLogRow]) -> int:
    """Append ``rows`` (with ``deltalake``: no engine needed); returns the log's Delta version."""
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=ARROW_SCHEMA)
    return store.append_rows(TABLE, table).version


def reconcile(store: DeltaTableStore, tables: Iterable[str]) -> list[RunLogRow]:
    """Append the run-log rows that recent commits of ``tables`` carry but the log lacks (a run that died or
    failed to write the log after publishing); returns what was added. Only the commits after a table's
    ``RECONCILED`` mark are read (the latest ``RECONCILE_COMMITS`` when it has none), and the mark moves on once
    their rows are in the log."""
    missing: list[RunLogRow] = []
    checked: dict[str, int] = {}
    for table in tables:
        current = store.version(table)
        since = store.marked_version(table, RECONCILED) if current is not None else None
        if current is None or since == current:
            continue
        since = since if since is not None and since < current else None
        fresh = RECONCILE_COMMITS if since is None else min(current - since, RECONCILE_COMMITS)
        noted = [
            (version, note)
            for version, notes in store.commit_notes(table, NOTE_KEY, limit=fresh)  # the commits after ``since``
            if version <= current
            for note in notes
        ]
        if store.version(table) == current:  # else a commit landed meanwhile and may have hidden one: not marked
            checked[table] = current
        if not noted:
            continue
        logged = _logged_attempts(store, table, {note.get("run_id") for _, note in noted})
        missing += [
            RunLogRow.from_note(note, version=version)
            for version, note in noted
            if (note.get("run_id"), note.get("partition")) not in logged
        ]
    if missing:
        try:
            record(store, missing)
            LOG.warning("reconciled %d run-log row(s) from Delta commits: %s", len(missing), _describe(missing))
        except Exception as exc:  # the commits still carry them: decisions below use them either way
            LOG.error("could not append %d reconciled row(s) to %s: %s", len(missing), TABLE, exc)
            return missing
    for table, version in checked.items():
        store.set_mark(table, RECONCILED, version)
    return missing


def logged_commit(store: DeltaTableStore, table: str, before: int, version: int) -> None:
    """After a run appended the log rows its own commit ``version`` of ``table`` carries: move the table's
    ``RECONCILED`` mark on to it when the mark stood at ``before``, the commit just before it (-1: the commit
    created the table)."""
    if version == before + 1 and (before == -1 or store.marked_version(table, RECONCILED) == before):
        store.set_mark(table, RECONCILED, version)


def _describe(rows: Sequence[RunLogRow]) -> str:
    return ", ".join(sorted({f"{r.asset} {r.partition} (run {r.run_id[:8]})" for r in rows}))[:500]


def _logged_attempts(store: DeltaTableStore, asset: str, run_ids: set[Any]) -> set[tuple[str, str]]:
    if not store.exists(TABLE):
        return set()
    wanted = sorted(r for r in run_ids if r is not None)
    table = store.arrow_table(
        TABLE,
        filters=[("asset", "=", asset), ("run_id", "in", wanted)],
        columns=["run_id", "partition"],
    )
    return set(zip(table.column("run_id").to_pylist(), table.column("partition").to_pylist(), strict=True))


def latest_attempts(store: DeltaTableStore, asset: str, days: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest logged attempt of ``asset`` for each of ``days`` (days never attempted are absent)."""
    wanted = list(days)
    if not wanted or not store.exists(TABLE):
        return {}
    table = store.arrow_table(
        TABLE,
        filters=[("asset", "=", asset), ("partition", "in", wanted)],
        columns=["partition", "ended_at", "passed", "run_id", "error_message"],
    )
    latest: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        current = latest.get(row["partition"])
        if current is None or row["ended_at"] >= current["ended_at"]:
            latest[row["partition"]] = row
    return latest


def days_of_last_write(store: DeltaTableStore, asset: str) -> set[str]:
    """The days the latest passing attempt of ``asset`` published: for a table rebuilt from every upstream day,
    the days its published state holds (a run that refuses a day it holds writes nothing)."""
    if not store.exists(TABLE):
        return set()
    rows = store.arrow_table(
        TABLE, filters=[("asset", "=", asset), ("passed", "=", True)], columns=["run_id", "partition", "ended_at"]
    ).to_pylist()
    if not rows:
        return set()
    last = max(rows, key=lambda r: r["ended_at"])["run_id"]
    return {r["partition"] for r in rows if r["run_id"] == last}


def upstream_refusals(store: DeltaTableStore, upstream: str, days: Iterable[str]) -> dict[str, str]:
    """Days whose latest ``upstream`` attempt did not pass (or that were never attempted), with why."""
    days = list(days)
    latest = latest_attempts(store, upstream, days)
    if len(latest) < len(days):
        for row in reconcile(store, [upstream]):
            current = latest.get(row.partition)
            if row.partition in days and (current is None or row.ended_at >= current["ended_at"]):
                latest[row.partition] = {"passed": row.passed, "run_id": row.run_id, "ended_at": row.ended_at}
    refused = {}
    for day in days:
        attempt = latest.get(day)
        if attempt is None:
            refused[day] = f"{upstream} has no recorded attempt for {day}; materialize it first"
        elif not attempt["passed"]:
            refused[day] = f"{upstream} {day} was refused by its quality gate in run {attempt['run_id']}"
    return refused


def refused_in_run(store: DeltaTableStore, run_id: str) -> list[dict[str, Any]]:
    """The run-log rows of ``run_id`` whose gate refused the partition."""
    if not store.exists(TABLE):
        return []
    table = store.arrow_table(
        TABLE,
        filters=[("run_id", "=", run_id), ("passed", "=", False)],
        columns=["asset", "partition", "pass_rate", "threshold", "error_message"],
    )
    return table.to_pylist()

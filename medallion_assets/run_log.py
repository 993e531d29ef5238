"""``monitoring/pipeline_runs``: one row per asset-partition materialization attempt, published or refused.

Written through the table store; a failure to write the log is logged and never blocks the data write.
Downstream assets read the latest attempt per upstream partition to enforce quality gates across runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession

from resources.delta_store import DeltaTableStore

TABLE = "monitoring/pipeline_runs"
SCHEMA = (
    "run_id string, run_mode string, asset string, layer string, partition string, started_at timestamp, "
    "ended_at timestamp, duration_secs double, rows_in long, rows_written long, quarantined long, "
    "superseded long, pass_rate double, threshold double, passed boolean, delta_version long, engine string, "
    "error_message string"
)


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


def run_mode(tags: dict[str, str]) -> str:
    """manual, schedule, sensor or backfill, from the run's tags."""
    if "dagster/backfill" in tags:
        return "backfill"
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    return "manual"


def record(store: DeltaTableStore, spark: SparkSession, rows: Sequence[RunLogRow], log: Any) -> int | None:
    """Append ``rows``; return the log's Delta version, or None (logged) when the write failed."""
    if not rows:
        return None
    try:
        df = spark.createDataFrame([tuple(asdict(r).values()) for r in rows], SCHEMA)
        return store.append(TABLE, df).version
    except Exception as exc:  # the run log must never block the data write
        log.warning(f"could not write {TABLE}: {exc}")
        return None


def latest_attempts(store: DeltaTableStore, asset: str, days: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest logged attempt of ``asset`` for each of ``days`` (days never attempted are absent)."""
    wanted = list(days)
    if not wanted or not store.exists(TABLE):
        return {}
    table = store.delta_table(TABLE).to_pyarrow_table(
        filters=[("asset", "=", asset), ("partition", "in", wanted)],
        columns=["partition", "ended_at", "passed", "run_id", "error_message"],
    )
    latest: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        current = latest.get(row["partition"])
        if current is None or row["ended_at"] >= current["ended_at"]:
            latest[row["partition"]] = row
    return latest


def upstream_refusals(store: DeltaTableStore, upstream: str, days: Iterable[str]) -> dict[str, str]:
    """Days whose latest ``upstream`` attempt did not pass (or that were never attempted), with why."""
    days = list(days)
    latest = latest_attempts(store, upstream, days)
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
    table = store.delta_table(TABLE).to_pyarrow_table(
        filters=[("run_id", "=", run_id), ("passed", "=", False)],
        columns=["asset", "partition", "pass_rate", "threshold", "error_message"],
    )
    return table.to_pylist()

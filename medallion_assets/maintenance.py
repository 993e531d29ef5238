"""Weekly lakehouse maintenance: vacuum, compact and checkpoint every table, recorded in a Delta table; remove
scratch that runs which died while staging left behind.

The backend follows the engine: on Databricks, delta-spark's ``DeltaTable`` API on the engine's session
(``optimize().executeCompaction()``, ``vacuum(hours)``, ``history()``; Databricks checkpoints by itself); on Sail
and other Connect engines, ``deltalake`` (Sail's Connect server refuses delta-spark's API and parses no
``OPTIMIZE``/``VACUUM``). The delta-spark path has not run here: there are no Delta jars on this machine.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import dagster as dg
import pyarrow as pa
from pyspark.sql import SparkSession

from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine

LOG_TABLE = "monitoring/maintenance"
DEFAULT_RETENTION_HOURS = 7 * 24
#: Staging scratch lives for one asset step; older than this, the run that wrote it has died.
SCRATCH_MAX_AGE_HOURS = 24
LOG_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("retention_hours", pa.int64()),
        ("files_vacuumed", pa.int64()),
        ("files_added", pa.int64()),
        ("files_removed", pa.int64()),
        ("version", pa.int64()),
        ("checkpoint_version", pa.int64()),
        ("backend", pa.string()),
    ]
)


class Maintainer(Protocol):
    """Vacuums, compacts and checkpoints one table; says what it did."""

    backend: str

    def maintain(self, table: str, *, retention_hours: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DeltaLakeMaintenance:
    """``deltalake`` (the store's ``maintain``): vacuum, compact, checkpoint."""

    store: DeltaTableStore
    backend: str = "deltalake"

    def maintain(self, table: str, *, retention_hours: int) -> dict[str, Any]:
        return self.store.maintain(table, retention_hours=retention_hours)


@dataclass(frozen=True)
class DeltaSparkMaintenance:
    """delta-spark on the engine's session: ``OPTIMIZE`` (compaction), ``VACUUM``, then the version from
    ``history``. A retention under 168 hours needs ``spark.databricks.delta.retentionDurationCheck.enabled=false``."""

    session: Callable[[], SparkSession]
    store: DeltaTableStore
    backend: str = "delta-spark"

    def maintain(self, table: str, *, retention_hours: int) -> dict[str, Any]:
        from delta.tables import DeltaTable

        dt = DeltaTable.forPath(self.session(), self.store.table_uri(table))
        compaction = dt.optimize().executeCompaction().collect()
        metrics = compaction[0]["metrics"] if compaction else None
        dt.vacuum(float(retention_hours))
        history = dt.history(5).collect()  # newest first: VACUUM END, VACUUM START, OPTIMIZE, …
        vacuum_end = next((h for h in history if h["operation"] == "VACUUM END"), None)
        deleted = (vacuum_end["operationMetrics"] or {}).get("numDeletedFiles") if vacuum_end else None
        return {
            "files_vacuumed": int(deleted) if deleted is not None else None,
            "files_added": int(metrics["numFilesAdded"]) if metrics else 0,
            "files_removed": int(metrics["numFilesRemoved"]) if metrics else 0,
            "version": int(history[0]["version"]) if history else None,
            "checkpoint_version": None,  # Databricks writes checkpoints itself
        }


def maintainer(store: DeltaTableStore, engine_mode: str, session: Callable[[], SparkSession]) -> Maintainer:
    """delta-spark when the engine is Databricks, else deltalake (``session`` is only called by delta-spark)."""
    if engine_mode == "databricks":
        return DeltaSparkMaintenance(session=session, store=store)
    return DeltaLakeMaintenance(store)


def maintain_tables(
    store: DeltaTableStore, backend: Maintainer, tables: Sequence[str], hours: int, log: Any
) -> dict[str, dict[str, Any]]:
    """Maintain ``tables``, record what was done in ``monitoring/maintenance``, remove dead runs' scratch."""
    rows = []
    for table in tables:
        started = datetime.now(timezone.utc)
        result = backend.maintain(table, retention_hours=hours)
        rows.append(
            {"table": table, "started_at": started, "retention_hours": hours, **result, "backend": backend.backend}
        )
        log.info(f"{table} ({backend.backend}): {result}")
    if rows:
        store.append_rows(LOG_TABLE, pa.Table.from_pylist(rows, LOG_SCHEMA))
    stale = store.remove_dead_scratch(unowned_after_hours=SCRATCH_MAX_AGE_HOURS)
    if stale:
        log.info(f"removed stale scratch: {stale}")
    return {r["table"]: {k: v for k, v in r.items() if k != "started_at"} for r in rows}


class MaintenanceConfig(dg.Config):
    """Retention for vacuum (default 7 days, or ``MEDALLION_VACUUM_RETENTION_HOURS``) and which tables."""

    retention_hours: int | None = None
    tables: list[str] | None = None


def retention_hours(config: MaintenanceConfig) -> int:
    if config.retention_hours is not None:
        return config.retention_hours
    return int(os.environ.get("MEDALLION_VACUUM_RETENTION_HOURS", DEFAULT_RETENTION_HOURS))


@dg.op(description="Vacuum, compact and checkpoint every Delta table of the lakehouse; record what was done.")
def compact_and_vacuum(context: dg.OpExecutionContext, config: MaintenanceConfig, store: DeltaTableStore) -> dict:
    engine = SparkEngine.from_env()  # the engine the definitions use; a session is opened only on Databricks
    try:
        tables = config.tables or [t for t in store.list_tables() if t != LOG_TABLE]
        backend = maintainer(store, engine.resolved_mode, engine.get_session)
        return maintain_tables(store, backend, tables, retention_hours(config), context.log)
    finally:
        engine.stop()


@dg.job(description="Weekly maintenance of every lakehouse table (vacuum, compaction, checkpoint).")
def maintenance_job() -> None:
    compact_and_vacuum()

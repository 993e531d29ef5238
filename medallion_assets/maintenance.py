"""Weekly lakehouse maintenance: vacuum, compact and checkpoint every table, recorded in a Delta table; remove
scratch that runs which died while staging left behind."""

import os
from datetime import datetime, timezone

import dagster as dg

from resources.delta_store import DeltaTableStore

LOG_TABLE = "monitoring/maintenance"
DEFAULT_RETENTION_HOURS = 7 * 24
#: Staging scratch lives for one asset step; older than this, the run that wrote it has died.
SCRATCH_MAX_AGE_HOURS = 24


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
    hours = retention_hours(config)
    tables = config.tables or [t for t in store.list_tables() if t != LOG_TABLE]
    rows = []
    for table in tables:
        started = datetime.now(timezone.utc)
        result = store.maintain(table, retention_hours=hours)
        rows.append({"table": table, "started_at": started, "retention_hours": hours, **result})
        context.log.info(f"{table}: {result}")
    if rows:
        store.append_rows(LOG_TABLE, rows)
    stale = store.remove_dead_scratch(unowned_after_hours=SCRATCH_MAX_AGE_HOURS)
    if stale:
        context.log.info(f"removed stale scratch: {stale}")
    return {r["table"]: {k: v for k, v in r.items() if k != "started_at"} for r in rows}


@dg.job(description="Weekly maintenance of every lakehouse table (vacuum, compaction, checkpoint).")
def maintenance_job() -> None:
    compact_and_vacuum()

"""The daily partitioning every table shares, and the days a run covers."""

from __future__ import annotations

import os

import dagster as dg

from resources.partition_keys import parse_days

START_DATE = os.environ.get("MEDALLION_START_DATE", "2024-01-01")
DAILY = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")
#: One engine pass over the whole selected range; per-day gates still apply inside it.
RANGE_POLICY = dg.BackfillPolicy.single_run()


def run_days(context: dg.AssetExecutionContext) -> list[str]:
    """The day partitions this run materializes (one key, or every key of a single-run range)."""
    return [d.isoformat() for d in parse_days(context.partition_keys)]

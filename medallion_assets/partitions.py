"""The daily partitioning every table shares, the days a run covers, pools and freshness policies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import dagster as dg

from resources.partition_keys import parse_days
from resources.settings import Settings

#: The settings in force when the definitions load: a bad ``MEDALLION_*`` value fails the load, naming it.
SETTINGS = Settings.from_env()
START_DATE = SETTINGS.start_date
#: end_offset=1: today is a partition too, so file-arrival sensors can build the current day as files land.
DAILY = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC", end_offset=1)


def backfill_policy(settings: Settings | None = None) -> dg.BackfillPolicy:
    """One engine pass over a whole backfill range (per-day gates still apply inside it), or chunks of
    ``MEDALLION_MAX_PARTITIONS_PER_RUN`` days for very long ranges."""
    chunk = (settings or Settings.from_env()).max_partitions_per_run
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=chunk) if chunk else dg.BackfillPolicy.single_run()


RANGE_POLICY = backfill_policy(SETTINGS)


def tagged_range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The first and last partition key a run targets, from its tags; None for an unpartitioned run."""
    if "dagster/partition" in tags:
        return tags["dagster/partition"], tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return (start, end) if start and end else None


def run_days(context: dg.AssetExecutionContext) -> list[str]:
    """The day partitions this run materializes (one key, or every key of a single-run range)."""
    return [d.isoformat() for d in parse_days(context.partition_keys)]


def table_pool(table: str) -> str:
    """The Dagster concurrency pool of a table: one writer per Delta table at a time (limit set in dagster.yaml)."""
    return "delta_" + table.replace("/", "_")


#: Gold is due by 06:00 UTC with the previous day's data; silver is rebuilt within 3 hours of its bronze.
GOLD_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 6 * * *", lower_bound_delta=timedelta(hours=6), timezone="UTC"
)
SILVER_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=27), warn_window=timedelta(hours=3))

#: A table rebuilt whole when any upstream updates — eager, except that upstream days never built (a daily
#: upstream always has some) do not hold it back; every upstream must exist, though.
FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & dg.AutomationCondition.all_deps_match(~dg.AutomationCondition.missing())
).with_label("follows upstream")


def follows_upstream_days(*, ignoring: str | None = None) -> dg.AutomationCondition:
    """A daily table rebuilt for the days whose upstream updated once every upstream of that day exists;
    ``ignoring`` names an upstream table it does not follow (one whose update would touch every day)."""

    def deps(condition: dg.AutomationCondition) -> dg.AutomationCondition:
        return condition.ignore(dg.AssetSelection.assets(ignoring.split("/"))) if ignoring else condition

    condition = (
        deps(dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~deps(dg.AutomationCondition.any_deps_missing())
        & ~deps(dg.AutomationCondition.any_deps_in_progress())
        & ~dg.AutomationCondition.in_progress()
    )
    return condition.with_label("follows upstream days")

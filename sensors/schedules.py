"""Schedules: the daily increment at 02:00 UTC (catch-all behind the sensors) and weekly maintenance."""

from datetime import timedelta

import dagster as dg

from medallion_assets.jobs import orders_job
from medallion_assets.maintenance import maintenance_job
from sensors.landing_sensors import automation_status


def _status() -> dg.DefaultScheduleStatus:
    running = automation_status() == dg.DefaultSensorStatus.RUNNING
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


@dg.schedule(
    name="orders_daily_schedule",
    job=orders_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=_status(),
    description="At 02:00 UTC, (re)build the previous day's orders partitions through gold.",
)
def orders_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"orders_daily:{day}", partition_key=day)


maintenance_schedule = dg.ScheduleDefinition(
    name="lakehouse_maintenance_weekly",
    job=maintenance_job,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    default_status=_status(),
    description="Sundays 04:00 UTC: vacuum old versions, compact small files and checkpoint every table.",
)

"""File-arrival sensors: one per landing source, requesting runs for exactly the days whose files changed."""

import os
import time

import dagster as dg

from medallion_assets.partitions import DAILY
from resources.landing import LandingZone
from sensors.landing_scan import ScanCursor, plan, scan

DEFAULT_SETTLE_SECONDS = 30.0


def automation_status() -> dg.DefaultSensorStatus:
    """RUNNING when ``MEDALLION_AUTOMATION=on`` (``make dev`` sets it), else STOPPED."""
    on = os.environ.get("MEDALLION_AUTOMATION", "").lower() in ("1", "on", "true", "yes")
    return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED


def settle_seconds() -> float:
    return float(os.environ.get("MEDALLION_SETTLE_SECONDS", DEFAULT_SETTLE_SECONDS))


def make_landing_sensor(source: str, job) -> dg.SensorDefinition:
    """A sensor scanning ``<landing>/<source>/date=*/`` that runs ``job`` for each day whose file set changed.

    ``run_key`` is the day plus the fingerprint of its file set, so a re-evaluated tick never launches a
    duplicate run and a late file for an old day re-runs that day (and its downstream partitions).
    """

    @dg.sensor(
        name=f"{source}_landing_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=automation_status(),
        description=f"Runs {job.name} for each day of {source} files that landed or changed (settled files only).",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult | dg.SkipReason:
        files = scan(landing.root_path, source)
        due, cursor = plan(
            files, ScanCursor.loads(context.cursor), now_ns=time.time_ns(), settle_seconds=settle_seconds()
        )
        valid = set(DAILY.get_partition_keys())
        requests = []
        for day in due:
            if day.day not in valid:
                context.log.warning(f"{source}: {day.day} is outside the daily partitions; ignored")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"{source}:{day.day}:{day.fingerprint}",
                    partition_key=day.day,
                    tags={"medallion/source": source, "medallion/files": str(day.files)},
                )
            )
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no settled changes in {source}"), cursor=cursor.dumps())
        return dg.SensorResult(run_requests=requests, cursor=cursor.dumps())

    return _sensor

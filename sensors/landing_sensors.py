"""File-arrival sensors: one per landing source, requesting runs for exactly the days whose files changed."""

import logging
import time
from pathlib import Path

import dagster as dg

from medallion_assets.ingest import FINGERPRINT
from medallion_assets.partitions import DAILY, SETTINGS
from resources.landing import LandingZone
from resources.settings import Settings
from sensors.landing_scan import REPORTED_MAX, DayDue, ScanCursor, Skipped, plan_scan, scan_source, short_hash

#: Skipped entries logged one by one per tick at most; more are counted in one line.
LOG_LINES = 20


def automation_status() -> dg.DefaultSensorStatus:
    """RUNNING when ``MEDALLION_AUTOMATION=on`` (``make dev`` sets it), else STOPPED."""
    return dg.DefaultSensorStatus.RUNNING if Settings.from_env().automation else dg.DefaultSensorStatus.STOPPED


def settle_seconds() -> float:
    """``MEDALLION_SETTLE_SECONDS``, read at each tick."""
    return Settings.from_env().settle_seconds


def make_landing_sensor(source: str, job) -> dg.SensorDefinition:
    """A sensor scanning ``<landing>/<source>/date=*/`` that runs ``job`` for each day whose file set changed.

    ``run_key`` is the day plus the fingerprint of its file set, so a re-evaluated tick never launches a
    duplicate run and a late (or deleted) file for an old day re-runs that day (and its downstream partitions).
    """

    @dg.sensor(
        name=f"{source}_landing_sensor",
        job=job,
        minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
        default_status=automation_status(),
        description=f"Runs {job.name} for each day of {source} files that landed or changed (settled files only).",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
        return evaluate(context, landing.root_path, source)

    return _sensor


def evaluate(context: dg.SensorEvaluationContext, root: Path, source: str) -> dg.SensorResult:
    """One tick: scan, log what is new to report, and request the days that changed."""
    cursor = ScanCursor.loads(context.cursor)
    scanned = scan_source(
        root, source, first_day=DAILY.get_first_partition_key(), last_day=DAILY.get_last_partition_key()
    )
    error = scanned.error and f"{scanned.error}: check MEDALLION_LANDING_ROOT (or the landing resource's root)"
    cursor.reported = report_once(context, source, scanned.skipped, error, cursor.reported)
    if error or scanned.absent:
        return skip(f"{source}: nothing scanned: {error or scanned.absent}", cursor)  # what it knew is kept
    planned = plan_scan(scanned, cursor, now_ns=time.time_ns(), settle_seconds=settle_seconds())
    for day in planned.removed:
        context.log.warning(f"{source}: day folder date={day} was removed; no run requested, built data is kept")
    built = already_built(context, source, planned.due)
    requests = [run_request(context, source, day) for day in planned.due if day.day not in built]
    if not requests:
        return skip(f"no settled changes in {source}", planned.cursor)
    return dg.SensorResult(run_requests=requests, cursor=planned.cursor.dumps())


def already_built(context: dg.SensorEvaluationContext, source: str, due: list[DayDue]) -> set[str]:
    """Days whose bronze partition was last built from exactly this file set (e.g. by ``make dev``'s first
    build or a run launched in the UI): nothing to run again."""
    if not due:
        return set()
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # evaluated without an instance (a unit test): nothing to compare
        return set()
    key = dg.AssetKey(["bronze", source])
    built = set()
    for day in due:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.day]), limit=1, ascending=False
        ).records
        meta = found[0].asset_materialization.metadata if found and found[0].asset_materialization else {}
        if FINGERPRINT in meta and meta[FINGERPRINT].value == day.fingerprint:
            built.add(day.day)
    if built:
        context.log.info(f"{source}: {len(built)} day(s) already built from the same files: {sorted(built)[:10]}")
    return built


def run_request(context: dg.SensorEvaluationContext, source: str, day: DayDue) -> dg.RunRequest:
    if not day.files:
        context.log.warning(
            f"{source}: date={day.day} has no ready files any more; requesting a run so the lost input is reported"
        )
    return dg.RunRequest(
        run_key=f"{source}:{day.day}:{day.fingerprint}",
        partition_key=day.day,
        tags={"medallion/source": source, "medallion/files": str(day.files)},
    )


def skip(reason: str, cursor: ScanCursor) -> dg.SensorResult:
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dumps())


def report_once(
    context: dg.SensorEvaluationContext, source: str, skipped: list[Skipped], error: str | None, reported: list[str]
) -> list[str]:
    """Log the problems not logged on an earlier tick; return what the cursor remembers now."""
    notices = [(logging.WARNING, s.key, f"{source}: skipped {s.path!r}: {s.reason}") for s in skipped]
    if error:
        notices.insert(0, (logging.ERROR, short_hash(error.encode()), f"{source}: {error}"))
    new, remembered = first_reports([key for _, key, _ in notices], reported)
    for i in new[:LOG_LINES]:
        context.log.log(notices[i][0], notices[i][2])
    if len(new) > LOG_LINES:
        context.log.warning(f"{source}: {len(new) - LOG_LINES} more entries skipped (not logged one by one)")
    return remembered


def first_reports(keys: list[str], reported: list[str], cap: int = REPORTED_MAX) -> tuple[list[int], list[str]]:
    """Which of ``keys`` were not reported yet (their indexes), and the at most ``cap`` keys to remember.

    Keys beyond the cap share one digest: they count as reported while that set stays the same.
    """
    head, tail = (keys[: cap - 1], keys[cap - 1 :]) if len(keys) > cap else (keys, [])
    tail_key = short_hash("\n".join(tail).encode()) if tail else None
    known = set(reported)
    new = [i for i, key in enumerate(head) if key not in known]
    if tail_key and tail_key not in known:
        new += range(len(head), len(keys))
    return new, ([*head, tail_key] if tail_key else list(head))

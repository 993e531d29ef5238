"""The file-arrival sensor: it scans every landing source and requests one run per day whose files changed,
selecting the tables of exactly the sources that changed that day."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from medallion_assets.ingest import FINGERPRINT
from medallion_assets.jobs import source_keys
from medallion_assets.partitions import DAILY, SETTINGS
from resources.landing import LandingZone
from resources.settings import Settings
from sensors.landing_scan import (
    REPORTED_MAX,
    DayDue,
    ScanCursor,
    Skipped,
    plan_scan,
    root_problem,
    scan_source,
    short_hash,
)

#: Skipped entries logged one by one per tick at most; more are counted in one line.
LOG_LINES = 20
#: Added to every scan error: the setting that names the root.
ROOT_HINT = "check MEDALLION_LANDING_ROOT (or the landing resource's root)"


def automation_status() -> dg.DefaultSensorStatus:
    """RUNNING when ``MEDALLION_AUTOMATION=on`` (``make dev`` sets it), else STOPPED."""
    return dg.DefaultSensorStatus.RUNNING if Settings.from_env().automation else dg.DefaultSensorStatus.STOPPED


def settle_seconds() -> float:
    """``MEDALLION_SETTLE_SECONDS``, read at each tick."""
    return Settings.from_env().settle_seconds


def make_landing_sensor(sources: Sequence[str], job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """One sensor scanning ``<landing>/<source>/date=*/`` for every source; for each day whose file set changed
    in one or more sources it runs ``job`` once, selecting those sources' tables (``jobs.SOURCE_TABLES``).

    ``run_key`` holds each due source's name, day and file-set fingerprint, so a re-evaluated tick never launches
    a duplicate run and a late (or deleted) file for an old day re-runs that day (and its downstream partitions).
    """

    @dg.sensor(
        name="landing_sensor",
        job=job,
        minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
        default_status=automation_status(),
        description="Runs the tables of each day whose files landed or changed (settled files only), every source "
        "of that day in one run.",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
        return evaluate(context, landing.root_path, sources)

    return _sensor


@dataclass
class LandingCursor:
    """Each source's scan cursor, and the landing-root problems already logged."""

    sources: dict[str, ScanCursor] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)

    def dumps(self) -> str:
        data = {"s": {name: c.as_dict() for name, c in sorted(self.sources.items())}, "k": self.reported}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> LandingCursor:
        """Read a cursor; an unreadable one starts over (the built-files check and run_key dedupe keep days
        already run from running again)."""
        try:
            data = json.loads(text) if text else {}
            sources = {str(k): ScanCursor.from_dict(v) for k, v in dict(data.get("s") or {}).items()}
            return cls(sources, [str(k) for k in data.get("k") or []])
        except (ValueError, TypeError, AttributeError):
            return cls()


def evaluate(context: dg.SensorEvaluationContext, root: Path, sources: Sequence[str]) -> dg.SensorResult:
    """One tick: check the landing root once, scan each source, and request one run per day that changed."""
    cursor = LandingCursor.loads(context.cursor)
    problem = root_problem(Path(root))
    if problem:  # the same for every source: logged once; what the sources knew is kept
        error = f"{problem}: {ROOT_HINT}"
        cursor.reported = report_once(context, "landing", [], error, cursor.reported)
        return skip(f"nothing scanned: {error}", cursor)
    cursor.reported = []
    due: dict[str, list[tuple[str, DayDue]]] = {}
    reasons = []
    for source in sources:
        days, cursor.sources[source], reason = source_tick(context, root, source, cursor.sources.get(source))
        for day in days:
            due.setdefault(day.day, []).append((source, day))
        if reason:
            reasons.append(reason)
    if not due:
        return skip("; ".join(reasons), cursor)
    requests = [run_request(context, day, due[day]) for day in sorted(due)]
    return dg.SensorResult(run_requests=requests, cursor=cursor.dumps())


def source_tick(
    context: dg.SensorEvaluationContext, root: Path, source: str, cursor: ScanCursor | None
) -> tuple[list[DayDue], ScanCursor, str | None]:
    """Scan one source: its days to run (not already built from the same files), its new cursor, and why it
    has nothing to run."""
    cursor = cursor or ScanCursor()
    scanned = scan_source(
        root, source, first_day=DAILY.get_first_partition_key(), last_day=DAILY.get_last_partition_key()
    )
    error = scanned.error and f"{scanned.error}: {ROOT_HINT}"
    cursor.reported = report_once(context, source, scanned.skipped, error, cursor.reported)
    if error or scanned.absent:
        return [], cursor, f"{source}: nothing scanned: {error or scanned.absent}"  # what it knew is kept
    planned = plan_scan(scanned, cursor, now_ns=time.time_ns(), settle_seconds=settle_seconds())
    for day in planned.removed:
        context.log.warning(f"{source}: day folder date={day} was removed; no run requested, built data is kept")
    built = already_built(context, source, planned.due)
    days = [day for day in planned.due if day.day not in built]
    return days, planned.cursor, None if days else f"no settled changes in {source}"


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


def run_request(context: dg.SensorEvaluationContext, day: str, due: list[tuple[str, DayDue]]) -> dg.RunRequest:
    """One run for ``day``, selecting the tables of every source in ``due``."""
    for source, d in due:
        if not d.files:
            context.log.warning(
                f"{source}: date={day} has no ready files any more; requesting a run so the lost input is reported"
            )
    return dg.RunRequest(
        run_key="+".join(f"{source}:{day}:{d.fingerprint}" for source, d in due),
        partition_key=day,
        asset_selection=source_keys(*(source for source, _ in due)),
        tags={
            "medallion/sources": ",".join(source for source, _ in due),
            "medallion/files": str(sum(d.files for _, d in due)),
        },
    )


def skip(reason: str, cursor: LandingCursor) -> dg.SensorResult:
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

"""Write–audit–publish gates: per-day pass/refuse decisions, the run log, checks and the failure message.

An asset computes per-day rule statistics on its in-flight rows, asks ``decide`` which days may publish,
writes only those, then calls ``finish``: it records one run-log row per day, logs a per-partition
``quality_gate`` check evaluation (ERROR) per day so the UI shows which day failed, and either returns the
``MaterializeResult`` or — when no day of the run could be published — raises ``dagster.Failure`` with the
rate, threshold, top failing rules and sample rows. Downstream assets refuse days whose upstream gate did not
pass in its latest attempt, in any run (``run_log.upstream_refusals``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from pyspark.sql import SparkSession

from medallion_assets import run_log
from medallion_assets.quality.thresholds import passes
from medallion_assets.reporting import per_day_table
from resources.delta_store import DeltaTableStore

GATE_CHECK = "quality_gate"
#: Runs longer than this many days log a per-partition gate evaluation for refused days only: each is one
#: event-log write (about 15 ms on SQLite, so about 16 s for three tables over a year). Every day's verdict stays
#: in the run log and in the materialization's ``per_day`` table.
EVENT_DAYS_ENV = "MEDALLION_GATE_EVENTS_MAX_DAYS"
DEFAULT_EVENT_DAYS = 31


def per_day_event_limit() -> int:
    """How many days a run may cover and still log a gate evaluation for every day."""
    raw = os.environ.get(EVENT_DAYS_ENV, str(DEFAULT_EVENT_DAYS))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{EVENT_DAYS_ENV} must be a whole number of days, not {raw!r}") from None


@dataclass
class DayOutcome:
    """One day's figures and verdict."""

    day: str
    threshold: float
    rows_in: int = 0
    valid: int = 0
    published: int = 0
    quarantined: int = 0
    superseded: int = 0
    warned: int = 0
    fail_violations: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    upstream_refusal: str | None = None

    @property
    def pass_rate(self) -> float:
        return self.valid / self.rows_in if self.rows_in else 1.0

    @property
    def passed(self) -> bool:
        return (
            self.upstream_refusal is None
            and self.fail_violations == 0
            and passes(self.valid, self.rows_in, self.threshold)
        )

    def top_failures(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(self.failures.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    @property
    def reason(self) -> str | None:
        if self.passed:
            return None
        if self.upstream_refusal:
            return self.upstream_refusal
        top = ", ".join(f"{name} ({n})" for name, n in self.top_failures())
        if self.fail_violations:
            return f"{self.fail_violations} row(s) violate a fail rule; top failing rules: {top}"
        return (
            f"pass rate {self.pass_rate:.2%} of {self.rows_in} rows is under the threshold {self.threshold:.0%}; "
            f"top failing rules: {top}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "rows_in": self.rows_in,
            "published": self.published if self.passed else 0,
            "quarantined": self.quarantined,
            "superseded": self.superseded,
            "warned": self.warned,
            "pass_rate": self.pass_rate,
            "passed": self.passed,
        }


def decide(
    days: Sequence[str],
    stats: Mapping[str, Mapping[str, Any]],
    threshold: float,
    refusals: Mapping[str, str] | None = None,
) -> list[DayOutcome]:
    """Per-day outcomes from ``rule_stats`` rows (keyed by day) and upstream refusals."""
    outcomes = []
    for day in days:
        s = stats.get(day, {})
        rows_in, valid, kept = s.get("rows_in", 0) or 0, s.get("valid", 0) or 0, s.get("kept", 0) or 0
        outcomes.append(
            DayOutcome(
                day=day,
                threshold=threshold,
                rows_in=rows_in,
                valid=valid,
                published=kept,
                quarantined=rows_in - valid,
                superseded=valid - kept,
                warned=s.get("warned", 0) or 0,
                warnings={k.removeprefix("warn:"): v for k, v in s.items() if k.startswith("warn:") and v},
                fail_violations=s.get("fail_violations", 0) or 0,
                failures={k.removeprefix("rule:"): v for k, v in s.items() if k.startswith("rule:") and v},
                upstream_refusal=(refusals or {}).get(day),
            )
        )
    return outcomes


@dataclass(frozen=True)
class GateContext:
    """What ``finish`` needs besides the outcomes."""

    context: dg.AssetExecutionContext
    store: DeltaTableStore
    spark: SparkSession
    table: str
    engine: str
    started_at: datetime


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("/"))


def _log_rows(gc: GateContext, outcomes: Sequence[DayOutcome], version: int | None) -> list[run_log.RunLogRow]:
    ended = datetime.now(timezone.utc)
    layer = gc.table.split("/")[0]
    tags = dict(gc.context.run.tags) if gc.context.run else {}
    return [
        run_log.RunLogRow(
            run_id=gc.context.run_id,
            run_mode=run_log.run_mode(tags),
            asset=gc.table,
            layer=layer,
            partition=o.day,
            started_at=gc.started_at,
            ended_at=ended,
            duration_secs=round((ended - gc.started_at).total_seconds(), 3),
            rows_in=o.rows_in,
            rows_written=o.published if o.passed else 0,
            quarantined=o.quarantined,
            superseded=o.superseded,
            pass_rate=o.pass_rate,
            threshold=o.threshold,
            passed=o.passed,
            delta_version=version if o.passed else None,
            engine=gc.engine,
            error_message=o.reason,
        )
        for o in outcomes
    ]


def _check_evaluation(table: str, o: DayOutcome) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=_key(table),
        check_name=GATE_CHECK,
        passed=o.passed,
        partition=o.day,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "pass_rate": dg.MetadataValue.float(o.pass_rate),
            "threshold": dg.MetadataValue.float(o.threshold),
            "rows_in": dg.MetadataValue.int(o.rows_in),
            "failures_by_rule": dg.MetadataValue.json(dict(o.top_failures(20))),
            "warnings_by_rule": dg.MetadataValue.json(o.warnings),
            **({"reason": dg.MetadataValue.text(o.reason)} if o.reason else {}),
        },
        description=f"{table} {o.day}: " + ("published" if o.passed else "refused"),
    )


def failure_message(table: str, refused: Sequence[DayOutcome], samples: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{table} refused {len(refused)} partition(s):"]
    lines += [f"  {o.day}: {o.reason}" for o in refused]
    if samples:
        lines.append("sample rejected rows:")
        lines += [f"  {json.dumps(dict(s), default=str)[:400]}" for s in samples]
    return "\n".join(lines)


def finish(
    gc: GateContext,
    outcomes: Sequence[DayOutcome],
    *,
    version: int | None,
    metadata: Mapping[str, Any],
    samples: Callable[[list[str]], list[dict[str, Any]]] = lambda days: [],
    check_results: Sequence[dg.AssetCheckResult] = (),
    per_partition_checks: bool = True,
) -> dg.MaterializeResult:
    """Record the run log and per-day gate checks; fail if nothing was published, else return the result."""
    log_version = run_log.record(gc.store, gc.spark, _log_rows(gc, outcomes, version), gc.context.log)
    refused = [o for o in outcomes if not o.passed]
    published = [o for o in outcomes if o.passed]
    evaluated: list[DayOutcome] = []
    if per_partition_checks and (len(outcomes) > 1 or not published):
        # Per-day verdicts (refused days only in long runs); a single published day is covered by the summary.
        evaluated = list(outcomes) if len(outcomes) <= per_day_event_limit() else refused
        for o in evaluated:
            gc.context.log_event(_check_evaluation(gc.table, o))
    sample_rows = samples([o.day for o in refused if not o.upstream_refusal]) if refused else []
    rows_in = sum(o.rows_in for o in outcomes)
    valid = sum(o.valid for o in outcomes)
    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(sum(o.published for o in published)),
        "rows_in": dg.MetadataValue.int(rows_in),
        "rows_out": dg.MetadataValue.int(sum(o.published for o in published)),
        "quarantined": dg.MetadataValue.int(sum(o.quarantined for o in outcomes)),
        "superseded": dg.MetadataValue.int(sum(o.superseded for o in outcomes)),
        "warned": dg.MetadataValue.int(sum(o.warned for o in outcomes)),
        "pass_rate": dg.MetadataValue.float(valid / rows_in if rows_in else 1.0),
        "threshold": dg.MetadataValue.float(outcomes[0].threshold if outcomes else 0.0),
        "partitions": dg.MetadataValue.json([o.day for o in outcomes]),
        "published_partitions": dg.MetadataValue.json([o.day for o in published]),
        "refused_partitions": dg.MetadataValue.json([o.day for o in refused]),
        "per_day": per_day_table([o.summary() for o in outcomes]),
        "gate_evaluations_logged": dg.MetadataValue.int(len(evaluated)),
        "seconds": dg.MetadataValue.float(round((datetime.now(timezone.utc) - gc.started_at).total_seconds(), 3)),
        **({"run_log_version": dg.MetadataValue.int(log_version)} if log_version is not None else {}),
        **metadata,
    }
    message = failure_message(gc.table, refused, sample_rows) if refused else None
    if refused and not published:
        raise dg.Failure(description=message, metadata=meta)
    if refused:
        gc.context.log.error(message)
    summary = dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=not refused,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"refused_partitions": dg.MetadataValue.json([o.day for o in refused])},
        description=message or f"every partition passed {outcomes[0].threshold:.0%}" if outcomes else "no partitions",
    )
    return dg.MaterializeResult(metadata=meta, check_results=[summary, *check_results])

"""One gated-table spec behind every asset, and the one sequence that reads, validates, gates and publishes.

A ``TableSpec`` declares a table: its transform (``build(run, upstream) -> DataFrame``), rule set, upstream
tables, partitioning, quarantine table, freshness and read-back checks, and optional hooks for how it reads
(bronze reads landing files) and how it writes (the SCD2 dimension merges). ``gated_asset(spec)`` turns it into
a Dagster multi-asset (the table, plus its quarantine table) with its checks. The sequence, in ``publish``:

1. reconcile the run log from recent commits, remove scratch of dead runs;
2. refuse the days whose upstream gate did not pass; read the rest (``spec.read``) and ``spec.build`` them;
3. evaluate the rules once, stage the result, count per day (``DayStats``) and ``decide`` which days publish
   (threshold, fail rules, upstream refusals and, for landing readers, the publish guard);
4. write the quarantine, then the published days, each commit carrying its run-log rows;
5. record the run log, per-day gate evaluations, per-partition metadata and read-back checks — or fail with
   the rates, rules and sample rows when no day could be published.

``publish`` needs only a ``StepContext`` of its step: Dagster's ``AssetExecutionContext`` in process, or a
``PipesStep`` over a ``dagster_pipes.PipesContext`` in a Pipes job (``medallion_assets.pipes_job``).
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets import arrow_memory, pipes_wire, run_log
from medallion_assets.check_events import log_evaluations
from medallion_assets.ingest import LANDED_LINES, SOURCE_FILE
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days, table_pool
from medallion_assets.quality.gate import (
    ALLOW_SHRINK_TAG,
    GATE_CHECK,
    MIN_SHARE_VAR,
    DayOutcome,
    DayStats,
    PublishGuard,
    check_evaluation,
    day_stats,
    decide,
    failure_message,
    forced_days,
    gate_metadata,
    percent,
)
from medallion_assets.quality.rules import (
    FAILURES,
    QUARANTINED_AT,
    REASONS,
    RUN_ID,
    WARNINGS,
    RuleSet,
    evaluate,
    is_valid,
    rule_counts,
)
from medallion_assets.quiet import chosen_dagster_apis, gated_by_publish
from medallion_assets.transforms import RANK, WORKING_PREFIX, rank_latest
from resources.delta_store import DeltaTableStore, WriteResult, storage_refusal
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.run_guard import RunGuard
from resources.settings import Settings
from resources.storage import ROOT_VAR as LAKEHOUSE_ROOT_VAR

if TYPE_CHECKING:
    from dagster_pipes import PipesContext

#: The pseudo-day of an unpartitioned table judged as a whole.
WHOLE_TABLE = "all"
RUN_LOG_KEY = dg.AssetKey(["monitoring", "pipeline_runs"])
_EVALUATION = (REASONS, FAILURES, WARNINGS)


class StepLog(Protocol):
    """The step's logger: Dagster's log manager, or the ``logging.Logger`` of a Pipes job."""

    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class RunTags(Protocol):
    @property
    def tags(self) -> Mapping[str, str]: ...


class StepContext(Protocol):
    """What ``publish`` and its hooks use of their step: satisfied by Dagster's ``AssetExecutionContext`` and by
    ``PipesStep``."""

    @property
    def run_id(self) -> str: ...
    @property
    def run(self) -> RunTags | None: ...
    @property
    def log(self) -> StepLog: ...
    @property
    def selected_asset_keys(self) -> Iterable[dg.AssetKey]: ...
    def log_event(self, event: dg.AssetCheckEvaluation | dg.AssetMaterialization) -> None: ...
    def add_asset_metadata(
        self, metadata: Mapping[str, Any], asset_key: Any = None, partition_key: str | None = None
    ) -> None: ...


@dataclass
class Run:
    """What a transform and its hooks see of one asset step."""

    spec: "TableSpec"
    context: StepContext
    spark: SparkSession
    store: DeltaTableStore
    settings: Settings
    landing: LandingZone
    engine_mode: str
    started_at: datetime
    #: the days this step builds (after upstream refusals); None for a table built whole
    days: list[str] | None
    #: why a day has no input (set by landing readers), for the publish guard
    no_input: dict[str, str] = field(default_factory=dict)
    #: files of a day that were listed but could not be read (gone or changed since), with why: day → file → why
    unread: dict[str, dict[str, str]] = field(default_factory=dict)
    #: extra materialization metadata from the read and build hooks: the run's, and each day's
    report: dict[str, Any] = field(default_factory=dict)
    day_report: dict[str, dict[str, Any]] = field(default_factory=dict)
    scratch: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    #: the table's write in this step, once made (for the read-back checks)
    written: WriteResult | None = None

    @property
    def run_id(self) -> str:
        return self.context.run_id

    @property
    def tags(self) -> Mapping[str, str]:
        return self.context.run.tags if self.context.run else {}

    def read(self, table: str, *, by_day: bool = True) -> DataFrame:
        """An upstream table: this step's days of a partitioned table, or the whole table."""
        if not self.store.exists(table):
            raise dg.Failure(f"{table} does not exist yet: materialize it before {self.spec.table}")
        column = self.store.partition_column(table)
        if by_day and self.days is not None and column:
            if self.days:
                return self.store.read(self.spark, table, partition_column=column, days=self.days)
            return self.store.read(self.spark, table).limit(0)
        return self.store.read(self.spark, table)

    def stage(self, df: DataFrame | Sequence[DataFrame], name: str) -> DataFrame:
        """``df`` (or parts of one schema) computed once into scratch for the rest of the step."""
        return self.scratch.enter_context(self.store.staged(df, name=name))


Build = Callable[[Run, Mapping[str, DataFrame]], DataFrame]
Read = Callable[[Run], Mapping[str, DataFrame]]
Write = Callable[[Run, DataFrame, Sequence[str], str], WriteResult | None]


@dataclass(frozen=True)
class Verdict:
    """What a read-back check found: the published days it failed (day → what is wrong), run-level figures."""

    failed: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadBackCheck:
    """An asset check computed after publishing, from what the tables hold: ``check(run, published_days)``.

    In a multi-day run each published day gets its own evaluation (so every partition shows its state)."""

    name: str
    check: Callable[[Run, list[DayOutcome]], Verdict]
    description: str
    blocking: bool = True
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


@dataclass(frozen=True)
class TableSpec:
    """A gated table: what it reads, how it is built and checked, where failing rows go."""

    table: str
    build: Build
    rules: RuleSet | None = None
    #: tables read for this step's days; a day they refused is refused here too
    upstream: tuple[str, ...] = ()
    #: tables read whole (a dimension); lineage only, no gate
    lookups: tuple[str, ...] = ()
    #: the table's daily partition column; None for an unpartitioned table
    partition_column: str | None = None
    #: for an unpartitioned table judged per upstream day (the SCD2 dimension): the column of those days
    judged_by: str | None = None
    quarantine: str | None = None
    #: bronze: every row is published; failing rows only count against the gate
    keeps_failing_rows: bool = False
    #: ``(key, order)``: among valid rows of one key and day only the latest by ``order`` (descending) is
    #: published; the others are superseded. Default: every valid row is published.
    latest_by: tuple[str, tuple[str, ...]] | None = None
    #: the published rows' columns, from the kept rows; default: the built columns without working columns
    published: Callable[[DataFrame], DataFrame] | None = None
    read: Read | None = None
    write: Write | None = None
    checks: tuple[ReadBackCheck, ...] = ()
    #: refuse a day that would lose most of its published rows (tables that read landing files)
    guard_volume: bool = False
    stage: bool = True
    freshness: dg.FreshnessPolicy | None = None
    automation: dg.AutomationCondition | None = None
    description: str | None = None
    #: columns shown for sample rejected rows in a failure message
    sample_columns: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        return self.table.split("/")[0]

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(self.table.split("/"))

    @property
    def day_column(self) -> str | None:
        return self.partition_column or self.judged_by

    @property
    def partitioned(self) -> bool:
        return self.partition_column is not None

    @property
    def all_checks(self) -> tuple[ReadBackCheck, ...]:
        """The spec's read-back checks and the column-schema check every table gets."""
        from medallion_assets.quality.checks import column_schema_change

        return (*self.checks, column_schema_change(self.table))


# -- the sequence -------------------------------------------------------------------------------------------
def publish(run: Run) -> Iterator[dg.MaterializeResult]:
    """Build, check and publish ``run.spec``'s table for the run's days; see the module docstring."""
    spec, store = run.spec, run.store
    store.remove_dead_scratch()
    run_log.reconcile(store, [spec.table, *spec.upstream])
    refusals = _upstream_refusals(run, run.days) if run.days is not None else {}
    all_days = list(run.days) if run.days is not None else None
    if run.days is not None:
        run.days = [d for d in run.days if d not in refusals]
    with run.scratch:
        checked, stats = _evaluate(run) if run.days != [] else (None, {})
        # A table judged per upstream day reads all of its upstream, which only ever holds days that passed.
        days = all_days if all_days is not None else sorted(stats) if spec.judged_by else [WHOLE_TABLE]
        guard = _guard(run, days) if spec.guard_volume else None
        outcomes = decide(days, stats, run.settings.threshold(spec.table), refusals, guard)
        if spec.judged_by:
            outcomes = _keep_published_days(run, outcomes)
        note = run_log.commit_note(_log_rows(run, outcomes, None))
        q_write = _write_quarantine(run, checked, outcomes, note) if checked is not None and spec.quarantine else None
        published = [o.day for o in outcomes if o.passed]
        write = run.written = _write_table(run, checked, outcomes, note) if checked is not None and published else None
        samples = _samples(run, checked, [o.day for o in outcomes if not o.passed and not o.refusal])
        verdicts = (
            {c.name: c.check(run, [o for o in outcomes if o.passed]) for c in spec.all_checks} if published else {}
        )
        check_results, blocked = _read_back_results(run, outcomes, verdicts)
    yield from _finish(run, outcomes, write, q_write, samples, check_results)
    if blocked:  # logged per day, so Dagster cannot gate on them: stop downstream steps as a blocking check does
        raise dg.Failure(description=f"blocking checks failed after publishing: {'; '.join(blocked)}")


def _upstream_refusals(run: Run, days: Sequence[str]) -> dict[str, str]:
    refusals: dict[str, str] = {}
    for upstream in run.spec.upstream:
        for day, why in run_log.upstream_refusals(run.store, upstream, days).items():
            refusals.setdefault(day, why)
    return refusals


def _evaluate(run: Run) -> tuple[DataFrame, dict[str, DayStats]]:
    """The built rows with every rule evaluated (staged once), and per-day statistics."""
    spec = run.spec
    rules = _rules(spec)
    parts = [checked_rows(spec, spec.build(part, (spec.read or default_read)(part))) for part in _blocks(run)]
    checked = run.stage(parts, spec.table.replace("/", "_")) if spec.stage else parts[0]
    day = spec.day_column
    grouped = checked if day else checked.withColumn("_day", F.lit(WHOLE_TABLE))
    counts = rule_counts(grouped, day or "_day", rules, kept=_kept(spec)).collect()
    stats = {
        _day_key(r[day or "_day"]): day_stats(r.asDict(), rules, keeps_failing_rows=spec.keeps_failing_rows)
        for r in counts
    }
    return checked, stats


def _blocks(run: Run) -> list[Run]:
    """The step as blocks of its days, each holding at most ``settings.block_rows`` rows of the upstream tables,
    each built and staged on its own: a range's memory then follows the block, not the range. One block for a
    step that is not staged, reads no upstream table, or is built whole."""
    spec = run.spec
    if not (spec.stage and spec.partition_column and spec.upstream and spec.read is None and len(run.days or ()) > 1):
        return [run]
    # a missing upstream table counts no rows here; run.read names it
    blocks = run.store.day_blocks(spec.upstream, run.days, max_rows=run.settings.block_rows)
    return [run] if len(blocks) == 1 else [replace(run, days=block) for block in blocks]


def _rules(spec: "TableSpec") -> RuleSet:
    return spec.rules or RuleSet(spec.table, columns=(), rules=())


def checked_rows(spec: "TableSpec", rows: DataFrame) -> DataFrame:
    """``rows`` with every rule of ``spec`` evaluated and, for ``latest_by`` tables, the version rank."""
    checked = evaluate(rows, _rules(spec))
    if spec.latest_by:
        key, order = spec.latest_by
        checked = rank_latest(checked, day_column=spec.day_column, key=key, order=order)
    return checked


def _kept(spec: TableSpec) -> Column:
    """The rows the table publishes: every row (bronze), else the valid rows — only the latest of each key."""
    if spec.keeps_failing_rows:
        return F.lit(True)
    return is_valid() & (F.col(RANK) == 1) if spec.latest_by else is_valid()


def _day_key(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def default_read(run: Run) -> dict[str, DataFrame]:
    """Upstream tables for this step's days; lookups whole (None when a lookup does not exist yet)."""
    frames = {t: run.read(t) for t in run.spec.upstream}
    frames.update({t: run.read(t, by_day=False) for t in run.spec.lookups if run.store.exists(t)})
    return frames


def _guard(run: Run, days: Sequence[str]) -> PublishGuard:
    spec = run.spec
    published = run.store.day_rows(spec.table, partition_column=spec.day_column, days=days)
    return PublishGuard(
        min_share=run.settings.min_volume_share,
        published_rows=published,
        no_input=run.no_input,
        missing=_missing_input(run, [d for d in days if published.get(d)]),
        forced=forced_days(run.tags, days),
    )


def _missing_input(run: Run, published_days: Sequence[str]) -> dict[str, str]:
    """Per day, the input it would lose without a word: files listed but not read, files its published rows came
    from that this run did not read (gone, renamed, in flight again, or skipped), and files that now give less than
    ``min_volume_share`` of the lines they published (emptied, cut short)."""
    spec, missing, share = run.spec, {}, run.settings.min_volume_share
    sources = run.store.day_counts(
        spec.table, partition_column=spec.day_column, days=published_days, column=SOURCE_FILE
    )
    for day in sorted(set(run.unread) | set(sources)):
        unread = run.unread.get(day, {})
        read_now = run.day_report.get(day, {}).get(LANDED_LINES, {})
        published = sources.get(day, {})
        lost = sorted(set(published) - set(read_now) - set(unread))
        problems = [f"{file} could not be read ({why})" for file, why in sorted(unread.items())]
        if lost:
            shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
            problems.append(f"{shown} fed the published {day} and {'is' if len(lost) == 1 else 'are'} not read now "
                            "(gone, renamed, in flight again or skipped: see skipped_files)")  # fmt: skip
        problems += [
            f"{file} fed the published {day} with {lines} lines and gives {read_now[file]} now "
            f"({percent(round(read_now[file] / lines, 3))} < {percent(share)}, {MIN_SHARE_VAR})"
            for file, lines in sorted(published.items())
            if file in read_now and read_now[file] < share * lines
        ]
        if problems:
            missing[day] = "; ".join(problems)
    return missing


def published_rows(spec: "TableSpec", checked: DataFrame) -> DataFrame:
    """The rows ``spec``'s table publishes, in its columns."""
    rows = checked.filter(_kept(spec))
    if spec.published:
        return spec.published(rows)
    return rows.select(*(c for c in rows.columns if c not in _EVALUATION and not c.startswith(WORKING_PREFIX)))


def quarantine_rows(checked: DataFrame, *, quarantined_at: datetime, run_id: str) -> DataFrame:
    """Rows that failed a drop or fail rule, with their source columns and every failed rule."""
    columns = [c for c in checked.columns if c not in _EVALUATION and not c.startswith(WORKING_PREFIX)]
    return checked.filter(~is_valid()).select(
        *columns,
        F.col(REASONS),
        F.lit(quarantined_at).cast("timestamp").alias(QUARANTINED_AT),
        F.lit(run_id).alias(RUN_ID),
    )


def _keep_published_days(run: Run, outcomes: list[DayOutcome]) -> list[DayOutcome]:
    """A table rebuilt from every upstream day (``judged_by``) holds the days its last write published. A write
    without one of them, refused now, would drop its published rows: every day is refused instead and the table
    kept as published, unless the run may drop that day (``ALLOW_SHRINK_TAG``)."""
    spec = run.spec
    forced = forced_days(run.tags, [o.day for o in outcomes])
    held = run_log.days_of_last_write(run.store, spec.table) if run.store.exists(spec.table) else set()
    kept = sorted(o.day for o in outcomes if not o.passed and o.day in held and o.day not in forced)
    if not kept or not any(o.passed for o in outcomes):
        return outcomes
    why = (
        f"{spec.table} is rebuilt from every day, and {', '.join(kept)}, refused, is in the published table: "
        f"nothing is written, so it keeps its published rows; fix that day's input, or set the run tag "
        f"{ALLOW_SHRINK_TAG}={','.join(kept)} to drop it on purpose"
    )
    return [replace(o, refusal=why) if o.passed else o for o in outcomes]


def _write_quarantine(run: Run, checked: DataFrame, outcomes: Sequence[DayOutcome], note: str) -> WriteResult | None:
    """The run's quarantined rows. A refused day whose rows stay published keeps its quarantine too, so the two
    still account for its bronze rows."""
    spec = run.spec
    frame = quarantine_rows(checked, quarantined_at=run.started_at, run_id=run.run_id)
    refused = [o.day for o in outcomes if not o.passed]
    if spec.partitioned:
        published = run.store.day_rows(spec.table, partition_column=spec.partition_column, days=refused)
        days = [d for d in run.days or [] if not published.get(d)]
        if not days:
            return None
        return run.store.replace_partitions(
            spec.quarantine, frame, partition_column=spec.partition_column, days=days, note=note
        )
    if refused and not any(o.passed for o in outcomes) and run.store.exists(spec.table):
        return None  # the table is kept as published, and so is its quarantine
    return run.store.overwrite(spec.quarantine, frame, note=note)


def _write_table(run: Run, checked: DataFrame, outcomes: Sequence[DayOutcome], note: str) -> WriteResult | None:
    spec = run.spec
    published = [o.day for o in outcomes if o.passed]
    frame = published_rows(spec, checked)
    if spec.write:
        return spec.write(run, frame, published, note)
    if spec.partitioned:
        return run.store.replace_partitions(
            spec.table, frame, partition_column=spec.partition_column, days=published, note=note
        )
    return run.store.overwrite(spec.table, frame, note=note)


def _samples(run: Run, checked: DataFrame | None, days: list[str]) -> list[dict[str, Any]]:
    """A few failing rows of the refused ``days``, for the failure message."""
    if checked is None or not days:
        return []
    spec = run.spec
    wanted = [c for c in (*spec.sample_columns, "_source_file", "_line_number") if c in checked.columns]
    failing = checked.filter(~is_valid())
    if spec.day_column:
        failing = failing.filter(F.col(spec.day_column).isin(days))
    return [r.asDict() for r in failing.select(*dict.fromkeys(wanted), REASONS).limit(5).collect()]


# -- the record: run log, checks, metadata ------------------------------------------------------------------
def _log_rows(run: Run, outcomes: Sequence[DayOutcome], version: int | None) -> list[run_log.RunLogRow]:
    ended = datetime.now(timezone.utc)
    return [
        run_log.RunLogRow(
            run_id=run.run_id,
            run_mode=run_log.run_mode(run.tags),
            asset=run.spec.table,
            layer=run.spec.layer,
            partition=o.day,
            started_at=run.started_at,
            ended_at=ended,
            duration_secs=round((ended - run.started_at).total_seconds(), 3),
            rows_in=o.stats.rows_in,
            rows_written=o.rows_written,
            quarantined=o.stats.quarantined,
            superseded=o.stats.superseded,
            pass_rate=o.pass_rate,
            threshold=o.threshold,
            passed=o.passed,
            delta_version=version if o.passed else None,
            engine=run.engine_mode,
            error_message=o.reason,
        )
        for o in outcomes
    ]


def _record(run: Run, outcomes: Sequence[DayOutcome], write: WriteResult | None) -> dict[str, Any]:
    """Append the run log; a failure is logged loudly and left to the next run's reconciliation (the published
    commits carry the same rows), never hidden and never a silent refusal downstream."""
    try:
        version = run_log.record(run.store, _log_rows(run, outcomes, write.version if write else None))
    except Exception as exc:
        run.context.log.error(
            f"could not append {run_log.TABLE} ({exc}); the rows are in the commit of {run.spec.table} and the "
            "next run reconciles them"
        )
        return {"run_log_pending": dg.MetadataValue.bool(True)}
    if write is not None and write.table == run.spec.table:
        run_log.logged_commit(run.store, write.table, write.version_before, write.version)
    run.context.log_event(
        dg.AssetMaterialization(asset_key=RUN_LOG_KEY, metadata={"rows_added": len(outcomes), "delta_version": version})
    )
    return {"run_log_version": dg.MetadataValue.int(version)}


def _finish(
    run: Run,
    outcomes: list[DayOutcome],
    write: WriteResult | None,
    q_write: WriteResult | None,
    samples: list[dict[str, Any]],
    check_results: list[dg.AssetCheckResult],
) -> Iterator[dg.MaterializeResult]:
    spec, context = run.spec, run.context
    log_meta = _record(run, outcomes, write)
    refused = [o for o in outcomes if not o.passed]
    published = [o for o in outcomes if o.passed]
    evaluated = _log_gate_evaluations(run, outcomes)
    message = failure_message(spec.table, refused, samples) if refused else None
    # Dagster copies a multi-partition result's metadata onto every partition's materialization: in a long run
    # the per-day and per-file lists stay on each day's own partition (and in the run log), not on all of them.
    long_run = spec.partitioned and len(outcomes) > run.settings.gate_events_max_days
    meta = {
        **_run_metadata(run, outcomes, evaluated, long_run=long_run),
        **log_meta,
        **_write_metadata(run.store, write),
        **{k: _metadata_value(v) for k, v in run.report.items() if not (long_run and k in PER_DAY_REPORT)},
    }
    if refused and not published:
        raise dg.Failure(description=message, metadata=meta)
    if refused:
        context.log.error(message)
    if spec.partitioned:
        _per_partition_metadata(run, outcomes)
    gate = dg.AssetCheckResult(
        asset_key=spec.key,
        check_name=GATE_CHECK,
        passed=not refused,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**gate_metadata(outcomes), "refused_partitions": dg.MetadataValue.json([o.day for o in refused])},
        description=message or f"every partition passed {percent(outcomes[0].threshold)}",
    )
    # A multi-day run judged each day with its own evaluation; a summary would be an extra, partition-less one.
    summary = [gate] if not (spec.partitioned and len(outcomes) > 1) else []
    yield dg.MaterializeResult(asset_key=spec.key, metadata=meta, check_results=[*summary, *check_results])
    if spec.quarantine and spec.quarantine.split("/") in [k.path for k in context.selected_asset_keys]:
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(spec.quarantine.split("/")),
            metadata={
                "dagster/row_count": dg.MetadataValue.int(sum(o.stats.quarantined for o in outcomes)),
                **_write_metadata(run.store, q_write),
            },
        )


def _read_back_results(
    run: Run, outcomes: Sequence[DayOutcome], verdicts: Mapping[str, Verdict]
) -> tuple[list[dg.AssetCheckResult], list[str]]:
    """One result per check for a single-day or whole-table run; else one evaluation per published day (every
    day up to ``MEDALLION_GATE_EVENTS_MAX_DAYS``, failed days only beyond) and the blocking checks that failed."""
    spec, results, blocked, evaluations = run.spec, [], [], []
    published = [o.day for o in outcomes if o.passed]
    per_day = spec.partitioned and len(outcomes) > 1
    for check in spec.all_checks:
        verdict = verdicts.get(check.name)
        if verdict is None:
            continue
        failed = {str(k): v for k, v in verdict.failed.items()}
        figures = {k: _metadata_value(v) for k, v in verdict.metadata.items()}  # the run's, on every evaluation
        metadata = {**figures, "failed": dg.MetadataValue.json(failed)}
        if not per_day:
            results.append(
                dg.AssetCheckResult(
                    asset_key=spec.key, check_name=check.name, passed=not failed, severity=check.severity,
                    metadata=metadata, description=check.description,
                )
            )  # fmt: skip
            continue
        days = (
            published if len(outcomes) <= run.settings.gate_events_max_days else [d for d in published if d in failed]
        )
        evaluations += [
            dg.AssetCheckEvaluation(
                asset_key=spec.key, check_name=check.name, passed=day not in failed, partition=day,
                severity=check.severity, metadata={**figures, "failed": dg.MetadataValue.json(failed.get(day))},
                description=check.description,
            )
            for day in days
        ]  # fmt: skip
        if failed and check.blocking and check.severity == dg.AssetCheckSeverity.ERROR:
            blocked.append(f"{spec.table} {check.name} on {', '.join(sorted(failed))}")
    log_evaluations(run.context, evaluations)
    return results, blocked


def _log_gate_evaluations(run: Run, outcomes: Sequence[DayOutcome]) -> list[DayOutcome]:
    """Per-day ``quality_gate`` evaluations: every day of a run up to the limit, else refused days only."""
    if len(outcomes) <= 1 and all(o.passed for o in outcomes):
        return []  # a single published day is covered by the summary result
    evaluated = (
        list(outcomes) if len(outcomes) <= run.settings.gate_events_max_days else [o for o in outcomes if not o.passed]
    )
    log_evaluations(
        run.context, [check_evaluation(run.spec.key, o, partitioned=run.spec.partitioned) for o in evaluated]
    )
    return evaluated


def _run_metadata(
    run: Run, outcomes: Sequence[DayOutcome], evaluated: Sequence[DayOutcome], *, long_run: bool = False
) -> dict[str, Any]:
    """The run's totals; its day lists and per-day table unless ``long_run`` (then a range and counts)."""
    published = [o for o in outcomes if o.passed]
    rows_in = sum(o.stats.rows_in for o in outcomes)
    valid = sum(o.stats.valid for o in outcomes)
    days: dict[str, Any] = (
        {
            "partition_range": dg.MetadataValue.text(f"{outcomes[0].day}...{outcomes[-1].day} ({len(outcomes)} days)"),
            "published_days": dg.MetadataValue.int(len(published)),
        }
        if long_run
        else {
            "partitions": dg.MetadataValue.json([o.day for o in outcomes]),
            "published_partitions": dg.MetadataValue.json([o.day for o in published]),
            "per_day": per_day_table(outcomes),
        }
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(o.rows_written for o in published)),
        "rows_in": dg.MetadataValue.int(rows_in),
        "rows_out": dg.MetadataValue.int(sum(o.rows_written for o in published)),
        "quarantined": dg.MetadataValue.int(sum(o.stats.quarantined for o in outcomes)),
        "superseded": dg.MetadataValue.int(sum(o.stats.superseded for o in outcomes)),
        "warned": dg.MetadataValue.int(sum(o.stats.warned for o in outcomes)),
        "pass_rate": dg.MetadataValue.float(valid / rows_in if rows_in else 1.0),
        "threshold": dg.MetadataValue.float(outcomes[0].threshold if outcomes else 0.0),
        **days,
        "refused_partitions": dg.MetadataValue.json([o.day for o in outcomes if not o.passed]),
        "failures_by_rule": gate_metadata(outcomes)["failures_by_rule"],
        "gate_evaluations_logged": dg.MetadataValue.int(len(evaluated)),
        "seconds": dg.MetadataValue.float(round((datetime.now(timezone.utc) - run.started_at).total_seconds(), 3)),
    }


def _per_partition_metadata(run: Run, outcomes: Sequence[DayOutcome]) -> None:
    """Each partition's materialization carries its own day's figures (not the run's totals)."""
    now = run.store.day_rows(run.spec.table, partition_column=run.spec.partition_column, days=[o.day for o in outcomes])
    for o in outcomes:
        figures = {k: _metadata_value(v) for k, v in o.figures().items()}
        figures["dagster/row_count"] = dg.MetadataValue.int(now.get(o.day, 0))
        figures["passed"] = dg.MetadataValue.bool(o.passed)
        figures.update({k: _metadata_value(v) for k, v in run.day_report.get(o.day, {}).items()})
        run.context.add_asset_metadata(figures, asset_key=run.spec.key, partition_key=o.day)


#: ``run.report`` entries with one item per landed file: per partition only in a long run (see ``_finish``).
PER_DAY_REPORT = frozenset({LANDED_LINES})
PER_DAY_COLUMNS = (
    ("day", "string"), ("rows_in", "int"), ("published", "int"), ("quarantined", "int"), ("superseded", "int"),
    ("warned", "int"), ("pass_rate", "float"), ("passed", "bool"),
)  # fmt: skip


def per_day_table(outcomes: Sequence[DayOutcome]) -> dg.MetadataValue:
    """Every day's figures and verdict as a table the UI renders."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in PER_DAY_COLUMNS])
    records = [
        dg.TableRecord(
            {
                "day": o.day, "rows_in": o.stats.rows_in, "published": o.rows_written,
                "quarantined": o.stats.quarantined, "superseded": o.stats.superseded, "warned": o.stats.warned,
                "pass_rate": round(o.pass_rate, 6), "passed": o.passed,
            }
        )
        for o in outcomes
    ]  # fmt: skip
    return dg.MetadataValue.table(records=records, schema=schema)


def _write_metadata(store: DeltaTableStore, write: WriteResult | None) -> dict[str, Any]:
    """Where the table lives, the version the write produced and the table's columns (``dagster/column_schema``,
    which the column-schema-change checks compare between materializations)."""
    if write is None:
        return {}
    columns = [dg.TableColumn(name, kind) for name, kind in store.columns(write.table)]
    meta: dict[str, Any] = {
        "table_path": dg.MetadataValue.path(write.uri),
        "delta_version": dg.MetadataValue.int(write.version),
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
    }
    if write.added_columns:
        meta["added_columns"] = dg.MetadataValue.json(list(write.added_columns))
    return meta


def _metadata_value(value: Any) -> Any:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return value


# -- the asset ------------------------------------------------------------------------------------------------
def gated_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """The Dagster multi-asset of ``spec``: the table and its quarantine table, the gate and read-back checks."""
    with chosen_dagster_apis():
        return _gated_asset(spec)


#: Step priority by layer: a run of several sources (``jobs.landing_job``) takes each source's tables on to
#: gold before the next source's bronze, so a day's first gold is published as early as the run allows.
PRIORITY_TAG = "dagster/priority"
LAYER_PRIORITY = {"bronze": 0, "silver": 1, "gold": 2}


def asset_args(spec: TableSpec) -> dict[str, Any]:
    """The ``dg.multi_asset`` arguments of ``spec`` — keys, checks, partitions, backfill policy, pool — the same
    whether the body publishes in process or submits a Pipes job (``medallion_assets.pipes``)."""
    partitions = DAILY if spec.partitioned else None
    deps = [dg.AssetKey(t.split("/")) for t in (*spec.upstream, *spec.lookups)]
    description = spec.description or (spec.build.__doc__ or "").strip()
    specs = [
        dg.AssetSpec(
            spec.key,
            deps=deps,
            description=description,
            group_name=spec.layer,
            kinds={"spark", "delta", spec.layer},
            freshness_policy=spec.freshness,
            automation_condition=spec.automation,
            skippable=False,
        )
    ]
    if spec.quarantine:
        specs.append(
            dg.AssetSpec(
                dg.AssetKey(spec.quarantine.split("/")),
                deps=deps,
                description=f"Rows built for {spec.table} that failed a drop or fail rule, with every failed rule "
                "in _quarantine_reasons, _quarantined_at and _run_id.",
                group_name="quarantine",
                kinds={"spark", "delta"},
                skippable=True,
            )
        )
    # Every check is judged per day (a multi-day run logs one evaluation per day; see _read_back_results).
    checks = [dg.AssetCheckSpec(GATE_CHECK, asset=spec.key, partitions_def=partitions)] + [
        dg.AssetCheckSpec(
            c.name, asset=spec.key, partitions_def=partitions, blocking=c.blocking, description=c.description
        )
        for c in spec.all_checks
    ]
    for check in checks:
        if check.blocking:
            gated_by_publish(check.key)

    return {
        "name": spec.table.replace("/", "__"),
        "specs": specs,
        "check_specs": checks,
        "partitions_def": partitions,
        "backfill_policy": RANGE_POLICY if spec.partitioned else None,
        "pool": table_pool(spec.table),
        "op_tags": {PRIORITY_TAG: str(LAYER_PRIORITY.get(spec.layer, 0))},
        "can_subset": True,
    }


def _gated_asset(spec: TableSpec) -> dg.AssetsDefinition:
    @dg.multi_asset(**asset_args(spec))
    def _asset(
        context: dg.AssetExecutionContext,
        engine: SparkEngine,
        store: DeltaTableStore,
        settings: Settings,
        landing: LandingZone,
        run_guard: RunGuard,  # set up at run start: reaps dead runs, bounds pool waits (resources/run_guard.py)
    ) -> Iterator[dg.MaterializeResult]:
        run = Run(
            spec=spec,
            context=context,
            spark=engine.get_session(),
            store=store,
            settings=settings,
            landing=landing,
            engine_mode=engine.resolved_mode,
            started_at=datetime.now(timezone.utc),
            days=run_days(context) if spec.partitioned else None,
        )
        try:
            yield from publish(run)
        except Exception as exc:
            why = storage_refusal(exc)
            if why is None:
                raise
            raise dg.Failure(description=_refused_write(run, why)) from exc
        finally:
            arrow_memory.release_arrow_memory()

    return _asset


def _refused_write(run: Run, why: str) -> str:
    """A storage failure named with the table, the days, the root and its setting."""
    days = run.days or []
    which = f" {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "") if days else ""
    return (
        f"{run.spec.table}{which}: the lakehouse root {run.store.root_uri} ({LAKEHOUSE_ROOT_VAR}) refused a write: "
        f"{why}. A table's published version changes only with a whole Delta commit: free space or make the root "
        "writable, then run the same days again"
    )


# -- the step in a Pipes job ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepRun:
    """The run of a Pipes step, as ``Run.tags`` reads it (the Dagster side sends the run's tags as an extra)."""

    tags: Mapping[str, str]


class PipesStep:
    """A ``StepContext`` over a ``dagster_pipes.PipesContext``: ``publish`` runs unchanged in a Pipes job and
    ``report`` sends its results back. What Pipes cannot carry — a partition on a check evaluation or on
    materialization metadata — is encoded by ``pipes_wire`` (one collapsed result per check and table, the
    per-partition metadata on the run-level materialization) and expanded again on the Dagster side."""

    def __init__(self, pipes: "PipesContext", tags: Mapping[str, str]) -> None:
        self._pipes = pipes
        self.run = StepRun(tags=dict(tags))
        self.selected_asset_keys = frozenset(pipes_wire.asset_key(k) for k in pipes.asset_keys)
        self._evaluations: dict[dg.AssetCheckKey, list[dg.AssetCheckEvaluation]] = {}
        self._metadata: dict[dg.AssetKey, dict[str, Any]] = {}
        self._by_partition: dict[dg.AssetKey, dict[str, dict[str, Any]]] = {}

    @property
    def run_id(self) -> str:
        return self._pipes.run_id

    @property
    def log(self) -> StepLog:
        return self._pipes.log

    def log_event(self, event: dg.AssetCheckEvaluation | dg.AssetMaterialization) -> None:
        """Check evaluations are kept to be collapsed; a materialization (the run log's: an asset outside the
        step) goes as a custom message the Dagster side logs only for an asset it declares."""
        if isinstance(event, dg.AssetCheckEvaluation):
            self._evaluations.setdefault(event.asset_check_key, []).append(event)
        else:
            self._pipes.report_custom_message(pipes_wire.materialization_message(event))

    def add_asset_metadata(
        self, metadata: Mapping[str, Any], asset_key: Any = None, partition_key: str | None = None
    ) -> None:
        key = dg.AssetKey.from_coercible(asset_key) if asset_key else self._only_key()
        if partition_key is None:
            self._metadata.setdefault(key, {}).update(metadata)
        else:
            self._by_partition.setdefault(key, {}).setdefault(partition_key, {}).update(metadata)

    def report(self, results: Iterable[dg.MaterializeResult]) -> None:
        """Report each materialization with its checks (merged with their per-day evaluations), then the checks
        only evaluated per day."""
        for result in results:
            key = result.asset_key or self._only_key()
            metadata = {
                **(result.metadata or {}),
                **self._metadata.pop(key, {}),
                **pipes_wire.partition_metadata(self._by_partition.pop(key, {})),
            }
            self._pipes.report_asset_materialization(
                metadata=pipes_wire.to_pipes(metadata), asset_key=pipes_wire.key_string(key)
            )
            for check in result.check_results or []:
                self._report_check(dg.AssetCheckKey(check.asset_key or key, check.check_name), check)
        for check_key in list(self._evaluations):
            self._report_check(check_key, None)

    def fail(self, failure: dg.Failure) -> None:
        """A refusal: the day verdicts logged so far, then the failure for the Dagster side to raise."""
        for check_key in list(self._evaluations):
            self._report_check(check_key, None)
        self._pipes.report_custom_message(pipes_wire.failure_message(failure))

    def _only_key(self) -> dg.AssetKey:
        if len(self.selected_asset_keys) != 1:
            raise ValueError(f"name the asset: this step targets {sorted(self.selected_asset_keys)}")
        return next(iter(self.selected_asset_keys))

    def _report_check(self, key: dg.AssetCheckKey, result: dg.AssetCheckResult | None) -> None:
        report = pipes_wire.check_report(result, self._evaluations.pop(key, []))
        self._pipes.report_asset_check(**report, asset_key=pipes_wire.key_string(key.asset_key))

"""Write–audit–publish gates: per-day row accounting, pass/refuse decisions and what the UI shows of them.

A table's rows are evaluated against its rule set; ``day_stats`` turns the per-day counts into ``DayStats``
(rows in = published + quarantined + superseded, never negative), and ``decide`` refuses a day when its pass
rate is under the threshold, a fail rule was violated, its upstream day was refused, or — for tables that read
landing files — it would replace a published day with nothing or with much less (``PublishGuard``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from medallion_assets.quality.rules import RuleSet
from resources.errors import MedallionError

GATE_CHECK = "quality_gate"
#: Run tag that lets a run replace a published day with an empty or much smaller one ("true" or a list of days).
ALLOW_SHRINK_TAG = "medallion/allow_shrink"
MIN_SHARE_VAR = "MEDALLION_MIN_VOLUME_SHARE"


class AccountingError(MedallionError, AssertionError):
    """Per-day counts that do not add up: a bug, never data."""


def percent(share: float) -> str:
    """A setting's share as set: ``0.95`` → ``95%``, ``0.999`` → ``99.9%`` (never rounded up to a bound)."""
    return f"{round(share * 100, 4):g}%"


def passes(passed: int, total: int, minimum: float) -> bool:
    """True when ``passed/total`` reaches ``minimum`` (an empty partition passes: nothing failed)."""
    return total == 0 or passed >= minimum * total - 1e-9


@dataclass(frozen=True)
class DayStats:
    """One day's rows: ``rows_in = published + quarantined + superseded``; ``valid`` rows passed every drop and
    fail rule (bronze publishes every row and counts the invalid ones only for its gate)."""

    rows_in: int = 0
    valid: int = 0
    published: int = 0
    quarantined: int = 0
    superseded: int = 0
    warned: int = 0
    fail_violations: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = {k: getattr(self, k) for k in ("rows_in", "valid", "published", "quarantined", "superseded")}
        negative = {k: v for k, v in {**counts, **self.failures, **self.warnings}.items() if v < 0}
        if negative:
            raise AccountingError(f"negative counts {negative}")
        if self.rows_in != self.published + self.quarantined + self.superseded or self.valid > self.rows_in:
            raise AccountingError(f"counts do not add up: {counts}")


def day_stats(row: Mapping[str, Any], rules: RuleSet, *, keeps_failing_rows: bool) -> DayStats:
    """``DayStats`` from a ``rule_counts`` row. ``keeps_failing_rows``: every row is published (bronze)."""
    rows_in, valid, kept = (int(row.get(k) or 0) for k in ("rows_in", "valid", "kept"))
    counts = {r.name: int(row.get(f"n{i}") or 0) for i, r in enumerate(rules.rules)}
    common = {
        "rows_in": rows_in,
        "valid": valid,
        "warned": int(row.get("warned") or 0),
        "fail_violations": int(row.get("fail_violations") or 0),
        "failures": {r.name: counts[r.name] for r in rules.rules if r.action != "warn" and counts[r.name]},
        "warnings": {r.name: counts[r.name] for r in rules.rules if r.action == "warn" and counts[r.name]},
    }
    if keeps_failing_rows:
        return DayStats(published=rows_in, **common)
    return DayStats(published=kept, quarantined=rows_in - valid, superseded=valid - kept, **common)


@dataclass(frozen=True)
class PublishGuard:
    """Refuses a day that would replace its published rows with nothing or much less, unless the run allows it.

    ``published_rows``: rows each day holds now; ``no_input``: why a day has no input (e.g. the folder is
    missing); ``missing``: input a day would lose (files not read now); ``forced``: the days this run may shrink
    (``ALLOW_SHRINK_TAG``).
    """

    min_share: float
    published_rows: Mapping[str, int] = field(default_factory=dict)
    no_input: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)
    forced: frozenset[str] = frozenset()

    def refusal(self, day: str, rows: int) -> str | None:
        if day in self.forced:
            return None
        before = self.published_rows.get(day, 0)
        problems = [self.missing[day]] if day in self.missing else []
        if rows == 0:
            problems.append(self.no_input.get(day) or f"no input rows for {day}")
        elif before and rows < self.min_share * before:
            share, minimum = percent(round(rows / before, 3)), percent(self.min_share)
            problems.append(f"{day} would shrink from {before} to {rows} rows ({share} < {minimum}, {MIN_SHARE_VAR})")
        if not problems:
            return None
        how = f"set the run tag {ALLOW_SHRINK_TAG}=true to replace it on purpose"
        kept = f"the published day ({before} rows) is kept; {how}" if before else f"nothing was written; {how}"
        return f"{'; '.join(problems)}; {kept}"


def forced_days(tags: Mapping[str, str], days: Sequence[str]) -> frozenset[str]:
    """The days a run may shrink: all of them for ``medallion/allow_shrink=true``, or the days it lists."""
    raw = tags.get(ALLOW_SHRINK_TAG, "").strip().lower()
    if raw in ("true", "yes", "1", "all"):
        return frozenset(days)
    return frozenset(d.strip() for d in raw.split(",") if d.strip()) & set(days)


@dataclass(frozen=True)
class DayOutcome:
    """One day's figures and verdict."""

    day: str
    threshold: float
    stats: DayStats = field(default_factory=DayStats)
    refusal: str | None = None  # an upstream refusal or a publish guard: the day is refused whatever its rate

    @property
    def pass_rate(self) -> float:
        return self.stats.valid / self.stats.rows_in if self.stats.rows_in else 1.0

    @property
    def passed(self) -> bool:
        return (
            self.refusal is None
            and self.stats.fail_violations == 0
            and passes(self.stats.valid, self.stats.rows_in, self.threshold)
        )

    def top_failures(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(self.stats.failures.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    @property
    def reason(self) -> str | None:
        if self.passed:
            return None
        if self.refusal:
            return self.refusal
        top = ", ".join(f"{name} ({n})" for name, n in self.top_failures())
        if self.stats.fail_violations:
            return f"{self.stats.fail_violations} row(s) violate a fail rule; top failing rules: {top}"
        return (
            f"pass rate {self.pass_rate:.2%} of {self.stats.rows_in} rows is under the threshold "
            f"{percent(self.threshold)}; top failing rules: {top}"
        )

    @property
    def rows_written(self) -> int:
        return self.stats.published if self.passed else 0

    def figures(self) -> dict[str, Any]:
        """The day's plottable figures (the same names in single-day and range runs)."""
        return {
            "rows_in": self.stats.rows_in,
            "rows_out": self.rows_written,
            "quarantined": self.stats.quarantined,
            "superseded": self.stats.superseded,
            "warned": self.stats.warned,
            "pass_rate": self.pass_rate,
            "threshold": self.threshold,
        }


def decide(
    days: Sequence[str],
    stats: Mapping[str, DayStats],
    threshold: float,
    refusals: Mapping[str, str] | None = None,
    guard: PublishGuard | None = None,
) -> list[DayOutcome]:
    """Per-day outcomes: upstream refusals first, then the publish guard, then the rate and fail rules."""
    outcomes = []
    for day in days:
        s = stats.get(day, DayStats())
        refusal = (refusals or {}).get(day) or (guard.refusal(day, s.rows_in) if guard else None)
        outcomes.append(DayOutcome(day, threshold, s, refusal))
    return outcomes


def check_evaluation(key: dg.AssetKey, o: DayOutcome, partitioned: bool = True) -> dg.AssetCheckEvaluation:
    """The day's ``quality_gate`` evaluation (ERROR severity), with the day's figures."""
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=GATE_CHECK,
        passed=o.passed,
        partition=o.day if partitioned else None,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=gate_metadata([o]),
        description=f"{key.to_user_string()} {o.day}: " + ("published" if o.passed else "refused"),
    )


def gate_metadata(outcomes: Sequence[DayOutcome]) -> dict[str, Any]:
    """rows_in, pass_rate, threshold and failures by rule over ``outcomes`` (one day or a whole run)."""
    rows_in = sum(o.stats.rows_in for o in outcomes)
    valid = sum(o.stats.valid for o in outcomes)
    failures: dict[str, int] = {}
    for o in outcomes:
        for name, n in o.stats.failures.items():
            failures[name] = failures.get(name, 0) + n
    reasons = [f"{o.day}: {o.reason}" for o in outcomes if o.reason]
    return {
        "rows_in": dg.MetadataValue.int(rows_in),
        "pass_rate": dg.MetadataValue.float(valid / rows_in if rows_in else 1.0),
        "threshold": dg.MetadataValue.float(outcomes[0].threshold if outcomes else 0.0),
        "failures_by_rule": dg.MetadataValue.json(dict(sorted(failures.items(), key=lambda kv: -kv[1])[:20])),
        **({"reason": dg.MetadataValue.text("\n".join(reasons)[:4000])} if reasons else {}),
    }


#: Columns that say where a sample row came from: printed first and never shortened.
SAMPLE_WHERE = ("_source_file", "_line_number")
SAMPLE_VALUE_CHARS = 120


def _shortened(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return value if len(text) <= SAMPLE_VALUE_CHARS else f"{text[:SAMPLE_VALUE_CHARS]}… ({len(text)} chars)"


def _sample_line(sample: Mapping[str, Any]) -> str:
    """One rejected row: its file and line first, then each value shortened on its own, so a long raw value
    never pushes the row's origin out of the message."""
    where = ":".join(str(sample[c]) for c in SAMPLE_WHERE if sample.get(c) is not None)
    rest = {k: _shortened(v) for k, v in sample.items() if k not in SAMPLE_WHERE}
    body = json.dumps(rest, default=str, ensure_ascii=False)
    return f"  {where} {body}" if where else f"  {body}"


def failure_message(table: str, refused: Sequence[DayOutcome], samples: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{table} refused {len(refused)} partition(s):"]
    lines += [f"  {o.day}: {o.reason}" for o in refused]
    if samples:
        lines.append("sample rejected rows:")
        lines += [_sample_line(s) for s in samples]
    return "\n".join(lines)

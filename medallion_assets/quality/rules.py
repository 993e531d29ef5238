"""Row-level quality rules: a named condition each row must meet, and what happens when it does not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Action = Literal["warn", "drop", "fail"]
REASONS = "_quarantine_reasons"
WARNINGS = "_warnings"


@dataclass(frozen=True)
class Rule:
    """A row passes when ``condition()`` is true; null counts as a failure.

    ``drop`` sends failing rows to quarantine, ``warn`` keeps them and counts them, ``fail`` refuses the
    partition if any row fails.
    """

    name: str
    condition: Callable[[], Column]
    action: Action = "drop"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"rule name {self.name!r} must be snake_case")
        if self.action not in ("warn", "drop", "fail"):
            raise ValueError(f"rule {self.name!r}: action must be warn, drop or fail, not {self.action!r}")

    def failed(self) -> Column:
        """True when the row fails this rule."""
        return ~F.coalesce(self.condition(), F.lit(False))


def _failed_names(rules: Sequence[Rule]) -> Column:
    if not rules:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*(F.when(r.failed(), F.lit(r.name)) for r in rules)))


def evaluate(df: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """Add ``_quarantine_reasons`` (every failed drop/fail rule) and ``_warnings`` (every failed warn rule)."""
    blocking = [r for r in rules if r.action != "warn"]
    warning = [r for r in rules if r.action == "warn"]
    return df.withColumn(REASONS, _failed_names(blocking)).withColumn(WARNINGS, _failed_names(warning))


def is_valid() -> Column:
    """True for rows that failed no drop/fail rule (after ``evaluate``)."""
    return F.size(F.col(REASONS)) == 0

"""Row-level quality rules: one typed way to declare them, validated when declared, evaluated in one pass.

    RULES = RuleSet(
        "gold/daily_sales",
        columns=COLUMNS,
        partition_column="order_date",
        rules=[
            Rule.not_null("region"),
            Rule.unique("region"),                                   # within a partition
            Rule.between("revenue", 0, 1_000_000_000_000, inclusive="left"),
            Rule.sql("customers_within_orders", "customers <= orders"),
            Rule.expr("big_day", lambda: F.col("revenue") < 10_000_000, action="warn"),
        ],
    )

Constructors name their rule (``revenue_between_0_1000000000000``) unless ``name=`` is given. Value rules
pass on nulls (add ``Rule.not_null`` to require a value); ``Rule.present`` also refuses blank strings.
``rule.only_when(...)`` / ``rule.when_present(column)`` restrict a rule to the rows where a guard holds.
Actions: ``drop`` (default: the row goes to quarantine), ``warn`` (kept, counted), ``fail`` (any violation
refuses the partition). A bad argument, a duplicate name or an unknown column raises ``RuleDefinitionError``
before any data is read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from resources.errors import MedallionError

Action = Literal["warn", "drop", "fail"]
Inclusive = Literal["both", "left", "right", "neither"]
ACTIONS: tuple[str, ...] = ("warn", "drop", "fail")
REASONS = "_quarantine_reasons"
WARNINGS = "_warnings"
FAILURES = "_failures"
#: The audit columns of a quarantined row.
QUARANTINED_AT, RUN_ID = "_quarantined_at", "_run_id"
#: Columns the pipeline adds to a table's rows (rule evaluation, quarantine): no landed column takes their names.
PIPELINE_COLUMNS: tuple[str, ...] = (REASONS, WARNINGS, FAILURES, QUARANTINED_AT, RUN_ID)
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class RuleDefinitionError(MedallionError, ValueError):
    """A rule has bad arguments, a duplicate name or names a column the table does not have."""


def _label(value: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(value).lower()).strip("_") or "x"


def _value(what: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RuleDefinitionError(f"{what} takes a number or string, got {value!r}")
    return value


#: Blank, and trimmed from keys and numbers: every character Python's ``str.isspace`` holds (spaces, tabs, line
#: breaks, no-break and other Unicode spaces; not the zero-width space, which is not white space).
WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def unpadded(raw: Column) -> Column:
    """``raw`` without leading and trailing ``WHITE_SPACE``."""
    return F.btrim(raw, F.lit(WHITE_SPACE))


def present(column: str) -> Column:
    """The column holds a value that is not blank (nothing but ``WHITE_SPACE``)."""
    return F.col(column).isNotNull() & (unpadded(F.col(column).cast("string")) != "")


@dataclass(frozen=True)
class Rule:
    """A row passes when ``condition()`` is true; null counts as a failure. Build with the constructors."""

    name: str
    condition: Callable[[], Column]
    action: Action = "drop"
    description: str = ""
    columns: tuple[str, ...] = ()
    #: set by ``Rule.unique``: the rule needs the table's partition column to count within a partition
    needs_partition: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise RuleDefinitionError(f"rule name {self.name!r} must be snake_case")
        if self.action not in ACTIONS:
            raise RuleDefinitionError(f"rule {self.name!r}: action must be one of {ACTIONS}, not {self.action!r}")
        if not callable(self.condition):
            raise RuleDefinitionError(f"rule {self.name!r}: condition must be a callable returning a Column")

    # -- constructors --------------------------------------------------------------------------------------
    @classmethod
    def not_null(cls, column: str, **options: Any) -> Rule:
        """The column has a value."""
        return cls._on(column, "not_null", lambda: F.col(column).isNotNull(), f"{column} is not null", **options)

    @classmethod
    def present(cls, column: str, **options: Any) -> Rule:
        """The column has a non-blank value."""
        return cls._on(column, "present", lambda: present(column), f"{column} is required and non-empty", **options)

    @classmethod
    def compare(cls, column: str, op: Literal["gt", "gte", "lt", "lte", "eq"], value: Any, **options: Any) -> Rule:
        """``column <op> value`` (gt, gte, lt, lte, eq); nulls pass."""
        ops: dict[str, Callable[[Column, Column], Column]] = {
            "gt": lambda c, v: c > v, "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v,
            "lte": lambda c, v: c <= v, "eq": lambda c, v: c == v,
        }  # fmt: skip
        if op not in ops:
            raise RuleDefinitionError(f"compare: op must be one of {', '.join(ops)}, not {op!r}")
        value = _value(op, value)
        return cls._on(
            column, f"{op}_{_label(value)}", lambda: F.col(column).isNull() | ops[op](F.col(column), F.lit(value)),
            f"{column} {op} {value!r}", **options,
        )  # fmt: skip

    @classmethod
    def between(cls, column: str, low: Any, high: Any, *, inclusive: Inclusive | bool = "both", **options: Any) -> Rule:
        """``low <= column <= high`` (``inclusive`` says which ends count; ``False`` = neither); nulls pass."""
        low, high = _value("between", low), _value("between", high)
        mode = {True: "both", False: "neither"}.get(inclusive, inclusive) if isinstance(inclusive, bool) else inclusive
        if mode not in ("both", "left", "right", "neither"):
            raise RuleDefinitionError(f"between: inclusive must be both, left, right or neither, not {inclusive!r}")
        if not isinstance(low, str) and not isinstance(high, str) and low > high:
            raise RuleDefinitionError(f"between: low {low!r} is above high {high!r}")

        def condition() -> Column:
            c = F.col(column)
            above = c >= F.lit(low) if mode in ("both", "left") else c > F.lit(low)
            below = c <= F.lit(high) if mode in ("both", "right") else c < F.lit(high)
            return c.isNull() | (above & below)

        return cls._on(
            column, f"between_{_label(low)}_{_label(high)}", condition, f"{column} between {low!r} and {high!r} "
            f"({mode} inclusive)", **options,
        )  # fmt: skip

    @classmethod
    def isin(cls, column: str, values: Sequence[Any], **options: Any) -> Rule:
        """The column is one of ``values``; nulls pass."""
        if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
            raise RuleDefinitionError(f"isin takes a non-empty list of values, got {values!r}")
        items = list(values)
        return cls._on(
            column, "known", lambda: F.col(column).isNull() | F.col(column).isin(*items),
            f"{column} is one of {', '.join(map(str, items))}", **options,
        )  # fmt: skip

    @classmethod
    def matches(cls, column: str, pattern: str, **options: Any) -> Rule:
        """The column's text matches the regular expression; nulls pass."""
        if not isinstance(pattern, str):
            raise RuleDefinitionError(f"matches takes a pattern string, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RuleDefinitionError(f"pattern {pattern!r} does not compile: {exc}") from None
        return cls._on(
            column, "matches_pattern", lambda: F.col(column).isNull() | F.col(column).cast("string").rlike(pattern),
            f"{column} matches {pattern}", **options,
        )  # fmt: skip

    @classmethod
    def max_length(cls, column: str, n: int, **options: Any) -> Rule:
        """The column's text is at most ``n`` characters; nulls pass."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise RuleDefinitionError(f"max_length takes a non-negative integer, got {n!r}")
        return cls._on(
            column, f"max_length_{n}", lambda: F.col(column).isNull() | (F.length(F.col(column).cast("string")) <= n),
            f"{column} has at most {n} characters", **options,
        )  # fmt: skip

    @classmethod
    def unique(cls, column: str, **options: Any) -> Rule:
        """No other row of the same partition has this value; nulls pass (the set supplies the partition)."""
        return replace(
            cls._on(column, "unique", lambda: F.lit(True), f"{column} is unique within a partition", **options),
            needs_partition=True,
        )

    @classmethod
    def sql(cls, name: str, expression: str, *, action: Action = "drop", description: str = "") -> Rule:
        """A SQL boolean expression over the row's columns."""
        if not isinstance(expression, str) or not expression.strip():
            raise RuleDefinitionError(f"rule {name!r}: SQL expression must be a non-empty string")
        return cls(name, lambda: F.expr(expression), action, description or expression)

    @classmethod
    def expr(
        cls,
        name: str,
        condition: Callable[[], Column],
        *,
        action: Action = "drop",
        description: str = "",
        columns: Iterable[str] = (),
    ) -> Rule:
        """A PySpark Column expression, built lazily (``columns``: those it reads, checked against the table)."""
        return cls(name, condition, action, description, tuple(columns))

    @classmethod
    def _on(
        cls,
        column: str,
        suffix: str,
        condition: Callable[[], Column],
        default_description: str,
        *,
        name: str | None = None,
        action: Action = "drop",
        description: str | None = None,
    ) -> Rule:
        return cls(name or f"{column}_{suffix}", condition, action, description or default_description, (column,))

    # -- refinements ---------------------------------------------------------------------------------------
    def only_when(self, guard: Callable[[], Column], *, columns: Iterable[str] = ()) -> Rule:
        """The rule applies only to rows where ``guard()`` is true; other rows pass."""
        inner = self.condition
        return replace(
            self, condition=lambda: ~F.coalesce(guard(), F.lit(False)) | inner(), columns=(*self.columns, *columns)
        )

    def when_present(self, column: str) -> Rule:
        """The rule applies only when ``column`` holds a non-blank value (a missing value is another rule's job)."""
        return self.only_when(lambda: present(column), columns=(column,))

    def failed(self) -> Column:
        """True when the row fails this rule."""
        return ~F.coalesce(self.condition(), F.lit(False))


@dataclass(frozen=True)
class RuleSet:
    """The rules of one table, checked against its columns when built."""

    table: str
    columns: tuple[str, ...]
    rules: tuple[Rule, ...]
    partition_column: str | None = None

    def __init__(
        self, table: str, *, columns: Iterable[str], rules: Iterable[Rule], partition_column: str | None = None
    ) -> None:
        known = tuple(columns)
        built = tuple(_with_partition(r, partition_column, table) for r in rules)
        for rule in built:
            for column in rule.columns:
                if column not in known:
                    near = difflib.get_close_matches(column, known, n=1)
                    hint = f"; did you mean {near[0]!r}?" if near else ""
                    raise RuleDefinitionError(f"{table}: rule {rule.name!r} reads unknown column {column!r}{hint}")
        names = [r.name for r in built]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RuleDefinitionError(f"{table}: duplicate rule names {dupes}; give them explicit names")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "columns", known)
        object.__setattr__(self, "rules", built)
        object.__setattr__(self, "partition_column", partition_column)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def of(self, action: Action) -> list[Rule]:
        return [r for r in self.rules if r.action == action]


def _with_partition(rule: Rule, partition_column: str | None, table: str) -> Rule:
    if not rule.needs_partition:
        return rule
    if partition_column is None:
        raise RuleDefinitionError(f"{table}: rule {rule.name!r} (unique) needs the table's partition column")
    (column,) = rule.columns

    def condition() -> Column:
        window = Window.partitionBy(F.col(partition_column), F.col(column))
        return F.col(column).isNull() | (F.count(F.lit(1)).over(window) == 1)

    return replace(rule, condition=condition)


def _failed_names(rules: Sequence[Rule]) -> Column:
    if not rules:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*(F.when(r.failed(), F.lit(r.name)) for r in rules)))


def evaluate(df: DataFrame, rules: RuleSet) -> DataFrame:
    """Add ``_quarantine_reasons`` (failed drop/fail rules), ``_failures`` (failed fail rules), ``_warnings``."""
    blocking = [r for r in rules.rules if r.action != "warn"]
    return df.select(
        "*",
        _failed_names(blocking).alias(REASONS),
        _failed_names(rules.of("fail")).alias(FAILURES),
        _failed_names(rules.of("warn")).alias(WARNINGS),
    )


def is_valid() -> Column:
    """True for rows that failed no drop/fail rule (after ``evaluate``)."""
    return _empty(REASONS)


def _empty(column: str) -> Column:
    """True where the (never null) array ``column`` is empty. Not ``F.size``: Sail 0.7.2's cluster mode cannot ship
    ``size`` (``array_length``) to its workers (``ExtendedScalarUdf: no UDF found for array_length``)."""
    return F.col(column) == F.array().cast("array<string>")


def rule_counts(validated: DataFrame, day_column: str, rules: RuleSet, kept: Column | None = None) -> DataFrame:
    """Per day: rows_in, valid, kept, warned, fail_violations and one count per rule (``n0``, ``n1``, … in the
    order of ``rules.rules``: failures of drop/fail rules, hits of warn rules)."""
    counts = [
        F.sum(F.array_contains(F.col(WARNINGS if r.action == "warn" else REASONS), r.name).cast("long")).alias(f"n{i}")
        for i, r in enumerate(rules.rules)
    ]
    return validated.groupBy(day_column).agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(is_valid().cast("long")).alias("valid"),
        F.sum((kept if kept is not None else is_valid()).cast("long")).alias("kept"),
        F.sum((~_empty(WARNINGS)).cast("long")).alias("warned"),
        F.sum((~_empty(FAILURES)).cast("long")).alias("fail_violations"),
        *counts,
    )

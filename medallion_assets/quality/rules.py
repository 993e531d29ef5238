"""Row-level quality rules: declared next to their table, validated when declared, evaluated in one pass.

Three ways to declare a rule, mixable in one ``RuleSet``:

* string rules per column, like Pipeline Builder's: ``{"amount": ["not_null", ["gt", 0], ["lt", 1_000_000]]}``
  (kinds: not_null, gt, gte, lt, lte, eq, in, not_in, between, regex, max_length, unique);
* SQL boolean expressions: ``sql("amount_rounds", "amount = round(amount, 2)")``;
* PySpark Column expressions, built lazily: ``Rule("paid_has_amount", lambda: ~(F.col("status") == "paid") | ...)``.

Every rule has a name and an action: ``warn`` keeps the row and counts it, ``drop`` sends it to quarantine,
``fail`` refuses the whole partition if any row violates it. Comparison rules pass on nulls (declare
``not_null`` to require a value). A misspelt kind, a bad argument or an unknown column raises
``RuleDefinitionError`` when the rule set is built, before any data is read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from resources.errors import MedallionError

Action = Literal["warn", "drop", "fail"]
ACTIONS: tuple[str, ...] = ("warn", "drop", "fail")
REASONS = "_quarantine_reasons"
WARNINGS = "_warnings"
FAILURES = "_failures"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class RuleDefinitionError(MedallionError, ValueError):
    """A rule is misspelt, has bad arguments or names a column the table does not have."""


@dataclass(frozen=True)
class Rule:
    """A row passes when ``condition()`` is true; null counts as a failure."""

    name: str
    condition: Callable[[], Column]
    action: Action = "drop"
    description: str = ""
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise RuleDefinitionError(f"rule name {self.name!r} must be snake_case")
        if self.action not in ACTIONS:
            raise RuleDefinitionError(f"rule {self.name!r}: action must be one of {ACTIONS}, not {self.action!r}")
        if not callable(self.condition):
            raise RuleDefinitionError(f"rule {self.name!r}: condition must be a callable returning a Column")

    def failed(self) -> Column:
        """True when the row fails this rule."""
        return ~F.coalesce(self.condition(), F.lit(False))


def sql(name: str, expression: str, *, action: Action = "drop", description: str = "") -> Rule:
    """A rule from a SQL boolean expression over the row's columns."""
    if not isinstance(expression, str) or not expression.strip():
        raise RuleDefinitionError(f"rule {name!r}: SQL expression must be a non-empty string")
    return Rule(name, lambda: F.expr(expression), action, description or expression)


# -- string rules ------------------------------------------------------------------------------------------
def _num(kind: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RuleDefinitionError(f"{kind} takes a number or string, got {value!r}")
    return value


def _label(value: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(value).lower()).strip("_") or "x"


def _comparison(op: Callable[[Column, Any], Column]) -> Callable[..., Callable[[str], Column]]:
    def make(kind: str, value: Any) -> Callable[[str], Column]:
        value = _num(kind, value)
        return lambda c: F.col(c).isNull() | op(F.col(c), F.lit(value))

    return make


def _membership(negate: bool) -> Callable[..., Callable[[str], Column]]:
    def make(kind: str, values: Any) -> Callable[[str], Column]:
        if not isinstance(values, (list, tuple)) or not values:
            raise RuleDefinitionError(f"{kind} takes a non-empty list of values, got {values!r}")
        items = list(values)
        return lambda c: F.col(c).isNull() | (~F.col(c).isin(*items) if negate else F.col(c).isin(*items))

    return make


def _between(kind: str, low: Any, high: Any) -> Callable[[str], Column]:
    low, high = _num(kind, low), _num(kind, high)
    if not isinstance(low, str) and not isinstance(high, str) and low > high:
        raise RuleDefinitionError(f"between: low {low!r} is above high {high!r}")
    return lambda c: F.col(c).isNull() | F.col(c).between(F.lit(low), F.lit(high))


def _regex(kind: str, pattern: Any) -> Callable[[str], Column]:
    if not isinstance(pattern, str):
        raise RuleDefinitionError(f"regex takes a pattern string, got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise RuleDefinitionError(f"regex {pattern!r} does not compile: {exc}") from None
    return lambda c: F.col(c).isNull() | F.col(c).cast("string").rlike(pattern)


def _max_length(kind: str, n: Any) -> Callable[[str], Column]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RuleDefinitionError(f"max_length takes a non-negative integer, got {n!r}")
    return lambda c: F.col(c).isNull() | (F.length(F.col(c).cast("string")) <= n)


#: kind → (number of arguments, builder of a per-column condition, name suffix from arguments)
KINDS: dict[str, tuple[int, Callable[..., Callable[[str], Column]] | None, Callable[..., str]]] = {
    "not_null": (0, lambda kind: lambda c: F.col(c).isNotNull(), lambda: "not_null"),
    "gt": (1, _comparison(lambda c, v: c > v), lambda v: f"gt_{_label(v)}"),
    "gte": (1, _comparison(lambda c, v: c >= v), lambda v: f"gte_{_label(v)}"),
    "lt": (1, _comparison(lambda c, v: c < v), lambda v: f"lt_{_label(v)}"),
    "lte": (1, _comparison(lambda c, v: c <= v), lambda v: f"lte_{_label(v)}"),
    "eq": (1, _comparison(lambda c, v: c == v), lambda v: f"eq_{_label(v)}"),
    "in": (1, _membership(False), lambda v: "in_set"),
    "not_in": (1, _membership(True), lambda v: "not_in_set"),
    "between": (2, _between, lambda lo, hi: f"between_{_label(lo)}_{_label(hi)}"),
    "regex": (1, _regex, lambda p: "matches_pattern"),
    "max_length": (1, _max_length, lambda n: f"max_length_{n}"),
    "unique": (0, None, lambda: "unique"),  # needs the partition column: built by RuleSet
}


def _entry(entry: Any) -> tuple[str, list[Any], str | None, Action | None]:
    """``"not_null"`` | ``["gt", 0]`` | ``{"rule": ["gt", 0], "name": ..., "action": ...}``."""
    name = action = None
    if isinstance(entry, Mapping):
        unknown = set(entry) - {"rule", "name", "action"}
        if unknown or "rule" not in entry:
            raise RuleDefinitionError(f"rule entry {entry!r} must have 'rule' and optionally 'name', 'action'")
        name, action, entry = entry.get("name"), entry.get("action"), entry["rule"]
    if isinstance(entry, str):
        kind, args = entry, []
    elif isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
        kind, args = entry[0], list(entry[1:])
    else:
        raise RuleDefinitionError(f"rule {entry!r} must be a kind name or [kind, *arguments]")
    if kind not in KINDS:
        near = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known kinds: {', '.join(KINDS)}"
        raise RuleDefinitionError(f"unknown rule kind {kind!r}{hint}")
    arity = KINDS[kind][0]
    if len(args) != arity:
        raise RuleDefinitionError(f"rule {kind!r} takes {arity} argument(s), got {len(args)}: {entry!r}")
    return kind, args, name, action


@dataclass(frozen=True)
class RuleSet:
    """The rules of one table, checked against its columns when built."""

    table: str
    columns: tuple[str, ...]
    rules: tuple[Rule, ...]
    partition_column: str | None = None

    @classmethod
    def build(
        cls,
        table: str,
        *,
        columns: Iterable[str],
        column_rules: Mapping[str, Sequence[Any]] | None = None,
        rules: Iterable[Rule] = (),
        partition_column: str | None = None,
        action: Action = "drop",
    ) -> RuleSet:
        """Parse string rules per column plus explicit ``Rule``s; every error names the table and column."""
        known = tuple(columns)
        built: list[Rule] = []
        for column, entries in (column_rules or {}).items():
            if column not in known:
                near = difflib.get_close_matches(column, known, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise RuleDefinitionError(f"{table}: rule on unknown column {column!r}{hint}")
            if isinstance(entries, (str, Mapping)):
                entries = [entries]
            for entry in entries:
                try:
                    kind, args, name, rule_action = _entry(entry)
                    builder = KINDS[kind][1]
                    if kind == "unique":
                        if partition_column is None:
                            raise RuleDefinitionError("unique needs the table's partition column")
                        condition = _unique(partition_column)
                    else:
                        condition = builder(kind, *args) if builder else None
                except RuleDefinitionError as exc:
                    raise RuleDefinitionError(f"{table}.{column}: {exc}") from None
                rule_name = name or f"{column}_{KINDS[kind][2](*args)}"
                built.append(
                    Rule(
                        rule_name,
                        (lambda cond=condition, c=column: cond(c)),
                        rule_action or action,
                        f"{column} {kind} {', '.join(map(repr, args))}".strip(),
                        (column,),
                    )
                )
        built.extend(rules)
        names = [r.name for r in built]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RuleDefinitionError(f"{table}: duplicate rule names {dupes}; give them explicit names")
        return cls(table, known, tuple(built), partition_column)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]


def _unique(partition_column: str) -> Callable[[str], Column]:
    return lambda c: (
        F.col(c).isNull() | (F.count(F.lit(1)).over(Window.partitionBy(F.col(partition_column), F.col(c))) == 1)
    )


def _failed_names(rules: Sequence[Rule]) -> Column:
    if not rules:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*(F.when(r.failed(), F.lit(r.name)) for r in rules)))


def evaluate(df: DataFrame, rules: RuleSet | Sequence[Rule]) -> DataFrame:
    """Add ``_quarantine_reasons`` (failed drop/fail rules), ``_failures`` (failed fail rules), ``_warnings``."""
    items = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
    blocking = [r for r in items if r.action != "warn"]
    return (
        df.withColumn(REASONS, _failed_names(blocking))
        .withColumn(FAILURES, _failed_names([r for r in items if r.action == "fail"]))
        .withColumn(WARNINGS, _failed_names([r for r in items if r.action == "warn"]))
    )


def is_valid() -> Column:
    """True for rows that failed no drop/fail rule (after ``evaluate``)."""
    return F.size(F.col(REASONS)) == 0


def rule_stats(validated: DataFrame, partition_column: str, rules: RuleSet, kept: Column | None = None) -> DataFrame:
    """Per partition: rows_in, valid, kept, warned, fail_violations, ``rule:<name>`` failures of drop/fail
    rules and ``warn:<name>`` counts of warn rules."""
    valid = is_valid()
    counts = [
        F.sum(F.array_contains(F.col(WARNINGS if r.action == "warn" else REASONS), r.name).cast("long")).alias(
            f"{'warn' if r.action == 'warn' else 'rule'}:{r.name}"
        )
        for r in rules.rules
    ]
    return validated.groupBy(partition_column).agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(valid.cast("long")).alias("valid"),
        F.sum((kept if kept is not None else valid).cast("long")).alias("kept"),
        F.sum((F.size(F.col(WARNINGS)) > 0).cast("long")).alias("warned"),
        F.sum((F.size(F.col(FAILURES)) > 0).cast("long")).alias("fail_violations"),
        *counts,
    )

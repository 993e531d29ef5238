"""Rule declarations: every constructor passes and fails where it should, guards, actions, and definition-time
errors."""

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets.quality.rules import FAILURES, REASONS, WARNINGS, Rule, RuleDefinitionError, RuleSet, evaluate

COLUMNS = ("d", "id", "amount", "status", "code", "score")
ROWS = [
    # d, id, amount, status, code, score
    ("2024-01-01", "a", 10.0, "paid", "AB1", 50),
    ("2024-01-01", "b", -1.0, "lost", "toolong", 150),
    ("2024-01-01", "b", None, None, None, None),
    ("2024-01-02", "a", 0.0, "paid", "x", 0),
]


def frame(spark: SparkSession):
    return spark.createDataFrame(ROWS, "d string, id string, amount double, status string, code string, score int")


def failures(spark: SparkSession, *rules: Rule) -> dict[int, list[str]]:
    rule_set = RuleSet("silver/t", columns=COLUMNS, rules=rules, partition_column="d")
    out = {}
    for r in evaluate(frame(spark), rule_set).collect():
        key = next(i for i, row in enumerate(ROWS) if row == tuple(r[c] for c in COLUMNS))
        out[key] = sorted(r[REASONS] + r[WARNINGS])
    return out


@pytest.mark.parametrize(
    ("rule", "failing"),
    [
        (Rule.not_null("amount"), {2}),
        (Rule.present("status"), {2}),
        (Rule.compare("amount", "gt", 0), {1, 3}),
        (Rule.compare("amount", "gte", 0), {1}),
        (Rule.compare("amount", "lt", 10), {0}),
        (Rule.compare("amount", "lte", 10), set()),
        (Rule.compare("status", "eq", "paid"), {1}),
        (Rule.isin("status", ["paid", "shipped"]), {1}),
        (Rule.between("score", 0, 100), {1}),
        (Rule.between("score", 0, 100, inclusive="right"), {1, 3}),
        (Rule.between("score", 0, 100, inclusive=False), {1, 3}),
        (Rule.matches("code", "^[A-Z]{2}[0-9]$"), {1, 3}),
        (Rule.max_length("code", 3), {1}),
        (Rule.unique("id"), {1, 2}),
        (Rule.sql("score_covers_amount", "score >= amount"), {2}),  # nulls fail a rule unless it says otherwise
        (Rule.expr("paid_is_positive", lambda: (F.col("status") != "paid") | (F.col("amount") > 0)), {2, 3}),
    ],
    ids=lambda v: v.name if isinstance(v, Rule) else None,
)
def test_each_constructor_passes_and_fails(spark: SparkSession, rule: Rule, failing: set[int]) -> None:
    got = failures(spark, rule)
    assert {i for i, reasons in got.items() if reasons} == failing
    assert set(got) == {0, 1, 2, 3}


def test_a_value_of_nothing_but_white_space_is_not_present(spark: SparkSession) -> None:
    """A key of a tab or a no-break space passed ``present`` (only spaces counted as blank), and silver, which trims
    every white space from keys, then published an order with the empty id ``""``."""
    values = [" ", "\t", "\u00a0", "\u3000\r\n", "", None, "x", "\u200b", " x\t"]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    rule_set = RuleSet("silver/t", columns=("v",), rules=[Rule.present("v")])
    got = [(r["v"], bool(r[REASONS])) for r in evaluate(df, rule_set).collect()]
    assert got == [(v, v is None or not v.strip()) for v in values]


def test_guards_restrict_a_rule_to_some_rows(spark: SparkSession) -> None:
    positive_when_paid = Rule.compare("amount", "gt", 0, name="paid_amount_positive").only_when(
        lambda: F.col("status") == "paid", columns=("status",)
    )
    assert {i for i, r in failures(spark, positive_when_paid).items() if r} == {3}
    short_code = Rule.max_length("code", 1).when_present("status")
    assert {i for i, r in failures(spark, short_code).items() if r} == {0, 1}  # row 2 has no status: not judged


def test_rules_name_themselves(spark: SparkSession) -> None:
    rules = RuleSet(
        "silver/t",
        columns=COLUMNS,
        rules=[
            Rule.not_null("amount"), Rule.compare("amount", "gt", 0), Rule.compare("amount", "lt", 1_000_000),
            Rule.between("score", 0, 100), Rule.isin("status", ["paid"]), Rule.present("status"),
        ],
    )  # fmt: skip
    assert rules.names == [
        "amount_not_null", "amount_gt_0", "amount_lt_1000000", "score_between_0_100", "status_known",
        "status_present",
    ]  # fmt: skip


def test_actions_warn_drop_fail(spark: SparkSession) -> None:
    rules = RuleSet(
        "silver/t",
        columns=COLUMNS,
        rules=[
            Rule.compare("amount", "gt", 0, action="warn", name="amount_positive"),
            Rule.isin("status", ["paid"], action="drop"),
            Rule.compare("score", "lte", 100, action="fail"),
        ],
    )
    rows = {(r.id, r.d): r for r in evaluate(frame(spark), rules).collect() if r.amount is not None}
    warned, dropped = rows[("a", "2024-01-02")], rows[("b", "2024-01-01")]
    assert warned[WARNINGS] == ["amount_positive"] and warned[REASONS] == [] and warned[FAILURES] == []
    assert dropped[REASONS] == ["status_known", "score_lte_100"] and dropped[FAILURES] == ["score_lte_100"]
    assert dropped[WARNINGS] == ["amount_positive"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RuleSet("silver/t", columns=COLUMNS, rules=[Rule.not_null("amonut")]),
         "reads unknown column 'amonut'; did you mean 'amount'"),
        (lambda: Rule.between("amount", 5, 1), "low 5 is above high 1"),
        (lambda: Rule.between("amount", 1, 5, inclusive="sometimes"), "inclusive must be"),
        (lambda: Rule.matches("code", "([a-z"), "does not compile"),
        (lambda: Rule.isin("status", "paid"), "non-empty list"),
        (lambda: Rule.compare("amount", "gt", True), "number or string"),
        (lambda: Rule.compare("amount", "bigger", 1), "op must be one of"),
        (lambda: Rule.not_null("amount", action="explode"), "action must be one of"),
        (lambda: Rule.max_length("code", -1), "non-negative integer"),
        (lambda: Rule.sql("empty", "  "), "non-empty"),
        (lambda: Rule.not_null("amount", name="Not Snake"), "snake_case"),
        (lambda: RuleSet("silver/t", columns=COLUMNS, rules=[Rule.not_null("amount")] * 2), "duplicate rule names"),
        (lambda: RuleSet("silver/t", columns=COLUMNS, rules=[Rule.unique("id")]), "partition column"),
    ],
)  # fmt: skip
def test_bad_rules_fail_at_definition_time(make, message: str) -> None:
    with pytest.raises(RuleDefinitionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        make()


def test_the_readme_rule_example_builds(spark: SparkSession) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(block, namespace)
    rules = namespace["RULES"]
    assert "revenue_between_0_1000000000000" in rules.names and "customers_never_negative" in rules.names
    assert {r.name: r.action for r in rules.rules}["big_day"] == "warn"

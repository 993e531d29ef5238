"""Rule declarations: every kind passes and fails where it should, actions, and definition-time errors."""

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets.quality.rules import (
    FAILURES,
    REASONS,
    WARNINGS,
    Rule,
    RuleDefinitionError,
    RuleSet,
    evaluate,
    sql,
)

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


def failures(spark: SparkSession, column_rules: dict, **kwargs) -> dict[int, list[str]]:
    rules = RuleSet.build("silver/t", columns=COLUMNS, column_rules=column_rules, partition_column="d", **kwargs)
    rows = evaluate(frame(spark).withColumn("n", F.monotonically_increasing_id()), rules).orderBy("d", "id", "amount")
    out = {}
    for r in rows.collect():
        key = next(i for i, row in enumerate(ROWS) if row == tuple(r[c] for c in COLUMNS))
        out[key] = sorted(r[REASONS] + r[WARNINGS])
    return out


@pytest.mark.parametrize(
    ("column", "rule", "failing"),
    [
        ("amount", "not_null", {2}),
        ("amount", ["gt", 0], {1, 3}),
        ("amount", ["gte", 0], {1}),
        ("amount", ["lt", 10], {0}),
        ("amount", ["lte", 10], set()),
        ("status", ["eq", "paid"], {1}),
        ("status", ["in", ["paid", "shipped"]], {1}),
        ("status", ["not_in", ["lost"]], {1}),
        ("score", ["between", 0, 100], {1}),
        ("code", ["regex", "^[A-Z]{2}[0-9]$"], {1, 3}),
        ("code", ["max_length", 3], {1}),
        ("id", "unique", {1, 2}),
    ],
)
def test_each_rule_kind_passes_and_fails(spark: SparkSession, column: str, rule, failing: set[int]) -> None:
    got = failures(spark, {column: [rule]})
    assert {i for i, reasons in got.items() if reasons} == failing
    assert set(got) == {0, 1, 2, 3}


def test_rule_names_label_themselves(spark: SparkSession) -> None:
    rules = RuleSet.build(
        "silver/t",
        columns=COLUMNS,
        column_rules={"amount": ["not_null", ["gt", 0], ["lt", 1_000_000]], "score": [["between", 0, 100]]},
    )
    assert rules.names == ["amount_not_null", "amount_gt_0", "amount_lt_1000000", "score_between_0_100"]


def test_actions_warn_drop_fail(spark: SparkSession) -> None:
    rules = RuleSet.build(
        "silver/t",
        columns=COLUMNS,
        column_rules={
            "amount": [{"rule": ["gt", 0], "action": "warn", "name": "amount_positive"}],
            "status": [{"rule": ["in", ["paid"]], "action": "drop"}],
            "score": [{"rule": ["lte", 100], "action": "fail"}],
        },
    )
    rows = {(r.id, r.d): r for r in evaluate(frame(spark), rules).collect() if r.amount is not None}
    warned, dropped = rows[("a", "2024-01-02")], rows[("b", "2024-01-01")]
    assert warned[WARNINGS] == ["amount_positive"] and warned[REASONS] == [] and warned[FAILURES] == []
    assert dropped[REASONS] == ["status_in_set", "score_lte_100"] and dropped[FAILURES] == ["score_lte_100"]
    assert dropped[WARNINGS] == ["amount_positive"]


def test_sql_and_column_rules(spark: SparkSession) -> None:
    got = failures(
        spark,
        {},
        rules=[
            sql("score_covers_amount", "score >= amount"),
            Rule("paid_is_positive", lambda: (F.col("status") != "paid") | (F.col("amount") > 0)),
        ],
    )
    assert got == {
        0: [],
        1: [],  # 150 >= -1, and not paid
        2: ["paid_is_positive", "score_covers_amount"],  # nulls fail a rule unless it says otherwise
        3: ["paid_is_positive"],
    }


@pytest.mark.parametrize(
    ("column_rules", "message"),
    [
        ({"amount": ["not_nul"]}, "unknown rule kind 'not_nul'; did you mean 'not_null'"),
        ({"amonut": ["not_null"]}, "unknown column 'amonut'; did you mean 'amount'"),
        ({"amount": [["gt"]]}, "takes 1 argument"),
        ({"amount": [["between", 5, 1]]}, "low 5 is above high 1"),
        ({"code": [["regex", "([a-z"]]}, "does not compile"),
        ({"status": [["in", "paid"]]}, "non-empty list"),
        ({"amount": [{"rule": ["gt", 0], "action": "explode"}]}, "action must be one of"),
        ({"amount": [["gt", 0], ["gt", 0]]}, "duplicate rule names"),
        ({"amount": [42]}, "must be a kind name"),
    ],
)
def test_bad_rules_fail_at_definition_time(column_rules: dict, message: str) -> None:
    with pytest.raises(RuleDefinitionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        RuleSet.build("silver/t", columns=COLUMNS, column_rules=column_rules)


def test_unique_needs_a_partition_column() -> None:
    with pytest.raises(RuleDefinitionError, match="partition column"):
        RuleSet.build("silver/t", columns=COLUMNS, column_rules={"id": ["unique"]})


def test_sql_rule_must_have_an_expression() -> None:
    with pytest.raises(RuleDefinitionError, match="non-empty"):
        sql("empty", "  ")


def test_the_readme_rule_example_builds(spark: SparkSession) -> None:
    readme = (__import__("pathlib").Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(block, namespace)
    rules = namespace["RULES"]
    assert "revenue_gte_0" in rules.names and "customers_never_negative" in rules.names
    assert {r.name: r.action for r in rules.rules}["big_day"] == "warn"

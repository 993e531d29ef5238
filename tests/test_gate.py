"""Gate decisions: thresholds per layer and table, the boundary, fail rules, upstream refusals, the publish
guard, and counts that add up."""

import pytest

from medallion_assets.quality.gate import (
    AccountingError,
    DayStats,
    PublishGuard,
    decide,
    failure_message,
    forced_days,
    passes,
)
from resources.settings import LAYER_DEFAULTS, Settings, SettingsError


def test_layer_defaults() -> None:
    settings = Settings.from_env({})
    assert LAYER_DEFAULTS == {"bronze": 0.90, "silver": 0.95, "gold": 0.98}
    assert settings.threshold("silver/orders") == 0.95 and settings.threshold("gold/daily_sales") == 0.98


def test_deployment_and_table_overrides() -> None:
    settings = Settings.from_env({"MEDALLION_THRESHOLD_SILVER": "0.97"})
    assert settings.threshold("silver/orders") == 0.97 and settings.threshold("silver/other") == 0.97
    settings = Settings.from_env({"MEDALLION_THRESHOLD_SILVER": "0.97", "MEDALLION_THRESHOLD_SILVER_ORDERS": "0.5"})
    assert settings.threshold("silver/orders") == 0.5 and settings.threshold("silver/other") == 0.97
    with pytest.raises(SettingsError, match=r"MEDALLION_THRESHOLD_GOLD='1\.5' is not a number between 0 and 1"):
        Settings.from_env({"MEDALLION_THRESHOLD_GOLD": "1.5"})
    with pytest.raises(SettingsError, match="unknown layer 'platinum'"):
        Settings.from_env({"MEDALLION_THRESHOLD_PLATINUM": "0.5"})


def test_a_threshold_for_a_table_that_does_not_exist_is_refused_naming_the_variable() -> None:
    """A mistyped table (``…_SILVER_ODERS``) used to leave the run green under the layer's threshold."""
    tables = ["bronze/orders", "silver/orders", "silver/dim_customer"]
    Settings.from_env({"MEDALLION_THRESHOLD_SILVER_ORDERS": "0.99", "MEDALLION_THRESHOLD_GOLD": "1"}).check_thresholds(
        tables
    )
    mistyped = Settings.from_env({"MEDALLION_THRESHOLD_SILVER_ODERS": "0.999"})
    with pytest.raises(SettingsError, match=r"MEDALLION_THRESHOLD_SILVER_ODERS.*silver/orders, silver/dim_customer"):
        mistyped.check_thresholds(tables)


def test_a_refusal_states_the_threshold_as_set() -> None:
    """0.999 was shown as "threshold 100%"; 0.5 shares in the shrink refusal likewise."""
    [out] = decide(["2024-01-02"], {"2024-01-02": DayStats(1000, 998, 998, 2, 0, failures={"x": 2})}, 0.999, {})
    assert "99.80% of 1000 rows is under the threshold 99.9%" in out.reason
    guard = PublishGuard(min_share=0.555, published_rows={"2024-01-02": 1000}, no_input={}, forced=frozenset())
    [shrunk] = decide(["2024-01-02"], {"2024-01-02": DayStats(554, 554, 554, 0, 0)}, 0.95, {}, guard)
    assert "(55.4% < 55.5%, MEDALLION_MIN_VOLUME_SHARE)" in shrunk.reason


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MEDALLION_SETTLE_SECONDS", "soon"), ("MEDALLION_SETTLE_SECONDS", "-1"), ("MEDALLION_MIN_VOLUME_SHARE", "2"),
     ("MEDALLION_GATE_EVENTS_MAX_DAYS", "0"), ("MEDALLION_START_DATE", "2024-1-2"), ("MEDALLION_AUTOMATION", "maybe"),
     ("MEDALLION_MAX_PARTITIONS_PER_RUN", "x"), ("MEDALLION_LANDING_ROOT", " "), ("MEDALLION_BLOCK_ROWS", "0")],
)  # fmt: skip
def test_every_setting_names_itself_when_invalid(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_exactly_at_the_threshold_passes() -> None:
    assert passes(95, 100, 0.95) and passes(19, 20, 0.95) and passes(98, 100, 0.98)
    assert not passes(94, 100, 0.95) and not passes(18, 20, 0.95)
    assert passes(0, 0, 0.95)  # an empty day has nothing that failed


def test_decide_per_day() -> None:
    stats = {
        "2024-01-01": DayStats(100, 95, 90, 5, 5, failures={"amount_in_range": 5}),
        "2024-01-02": DayStats(100, 94, 94, 6, 0, failures={"status_known": 4, "amount_in_range": 2}),
        "2024-01-03": DayStats(10, 10, 10, 0, 0, fail_violations=1, failures={"x": 1}),
    }
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    out = {o.day: o for o in decide(days, stats, 0.95, {"2024-01-05": "bronze refused"})}
    assert out["2024-01-01"].passed and out["2024-01-01"].stats.superseded == 5
    assert not out["2024-01-02"].passed
    assert "94.00% of 100 rows is under the threshold 95%" in out["2024-01-02"].reason
    assert out["2024-01-02"].top_failures() == [("status_known", 4), ("amount_in_range", 2)]
    assert not out["2024-01-03"].passed and "fail rule" in out["2024-01-03"].reason
    assert out["2024-01-04"].passed and out["2024-01-04"].stats.rows_in == 0
    assert not out["2024-01-05"].passed and out["2024-01-05"].reason == "bronze refused"
    message = failure_message("silver/orders", [out["2024-01-02"]], [{"order_id": "o1", "amount": "-3"}])
    assert "status_known (4)" in message and '"order_id": "o1"' in message


def test_a_long_raw_value_never_hides_where_the_rejected_row_came_from() -> None:
    stats = {"2024-01-02": DayStats(10, 1, 10, 0, 0, failures={"utf8_valid": 9})}
    (refused,) = decide(["2024-01-02"], stats, 0.9, {})
    sample = {"_corrupt_record": None, "_invalid_utf8": "x" * 5_000, "_source_file": "orders/blob.jsonl",
              "_line_number": 7, "_reasons": ["utf8_valid"]}  # fmt: skip
    message = failure_message("bronze/orders", [refused], [sample])
    row = message.splitlines()[-1]
    assert row.startswith("  orders/blob.jsonl:7 ") and "utf8_valid" in row
    assert "(5000 chars)" in row and len(row) < 400


@pytest.mark.parametrize(
    "counts",
    [dict(rows_in=98, valid=94, published=98, quarantined=0, superseded=-4),  # bronze's old bug
     dict(rows_in=10, valid=10, published=5, quarantined=0, superseded=0),  # 5 rows unaccounted for
     dict(rows_in=10, valid=11, published=10, quarantined=0, superseded=0)],
)  # fmt: skip
def test_counts_that_do_not_add_up_are_a_bug_never_data(counts: dict) -> None:
    with pytest.raises(AccountingError):
        DayStats(**counts)


def test_the_publish_guard_refuses_empty_and_shrinking_days_unless_forced() -> None:
    guard = PublishGuard(
        min_share=0.5,
        published_rows={"2024-01-01": 1000, "2024-01-02": 1000},
        no_input={"2024-01-03": "no landing files in orders/date=2024-01-03"},
    )
    assert guard.refusal("2024-01-01", 600) is None
    shrink = guard.refusal("2024-01-02", 400)
    assert "from 1000 to 400 rows (40% < 50%, MEDALLION_MIN_VOLUME_SHARE)" in shrink and "is kept" in shrink
    empty = guard.refusal("2024-01-03", 0)
    assert empty.startswith("no landing files in orders/date=2024-01-03") and "nothing was written" in empty
    forced = PublishGuard(min_share=0.5, published_rows={"2024-01-02": 1000}, forced=frozenset({"2024-01-02"}))
    assert forced.refusal("2024-01-02", 0) is None


def test_forced_days_come_from_the_run_tag() -> None:
    days = ["2024-01-01", "2024-01-02"]
    assert forced_days({"medallion/allow_shrink": "true"}, days) == set(days)
    assert forced_days({"medallion/allow_shrink": "2024-01-02, 2024-03-01"}, days) == {"2024-01-02"}
    assert forced_days({}, days) == set()

"""Gate decisions: thresholds per layer and table, the boundary, fail rules and upstream refusals."""

import pytest

from medallion_assets.quality.gate import decide, failure_message
from medallion_assets.quality.thresholds import LAYER_DEFAULTS, passes, threshold


def test_layer_defaults() -> None:
    assert LAYER_DEFAULTS == {"bronze": 0.90, "silver": 0.95, "gold": 0.98}
    assert threshold("silver/orders") == 0.95 and threshold("gold/daily_sales") == 0.98


def test_deployment_and_table_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER", "0.97")
    assert threshold("silver/orders") == 0.97 and threshold("silver/other") == 0.97
    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER_ORDERS", "0.5")
    assert threshold("silver/orders") == 0.5 and threshold("silver/other") == 0.97
    monkeypatch.setenv("MEDALLION_THRESHOLD_GOLD", "1.5")
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold("gold/daily_sales")


def test_exactly_at_the_threshold_passes() -> None:
    assert passes(95, 100, 0.95) and passes(19, 20, 0.95) and passes(98, 100, 0.98)
    assert not passes(94, 100, 0.95) and not passes(18, 20, 0.95)
    assert passes(0, 0, 0.95)  # an empty day has nothing that failed


def test_decide_per_day() -> None:
    stats = {
        "2024-01-01": {"rows_in": 100, "valid": 95, "kept": 90, "rule:amount_in_range": 5},
        "2024-01-02": {"rows_in": 100, "valid": 94, "kept": 94, "rule:status_known": 4, "rule:amount_in_range": 2},
        "2024-01-03": {"rows_in": 10, "valid": 10, "kept": 10, "fail_violations": 1, "rule:x": 1},
    }
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    out = {o.day: o for o in decide(days, stats, 0.95, {"2024-01-05": "bronze refused"})}
    assert out["2024-01-01"].passed and out["2024-01-01"].superseded == 5 and out["2024-01-01"].quarantined == 5
    assert not out["2024-01-02"].passed
    assert "94.00% of 100 rows is under the threshold 95%" in out["2024-01-02"].reason
    assert out["2024-01-02"].top_failures() == [("status_known", 4), ("amount_in_range", 2)]
    assert not out["2024-01-03"].passed and "fail rule" in out["2024-01-03"].reason
    assert out["2024-01-04"].passed and out["2024-01-04"].rows_in == 0
    assert not out["2024-01-05"].passed and out["2024-01-05"].reason == "bronze refused"
    message = failure_message("silver/orders", [out["2024-01-02"]], [{"order_id": "o1", "amount": "-3"}])
    assert "status_known (4)" in message and '"order_id": "o1"' in message

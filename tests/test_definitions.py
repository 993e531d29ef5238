"""The code location loads, and its assets, checks, jobs, sensors and schedules are what users see in the UI."""

import dagster as dg

from medallion_assets.definitions import defs
from medallion_assets.partitions import DAILY

PARTITIONED = {"bronze/orders", "silver/orders", "gold/daily_sales", "gold/fact_orders", "bronze/customers"}
UNPARTITIONED = {"silver/dim_customer", "gold/dim_date", "gold/customer_ltv"}
UPSTREAM = {
    "bronze/orders": set(),
    "silver/orders": {"bronze/orders"},
    "gold/daily_sales": {"silver/orders"},
    "bronze/customers": set(),
    "silver/dim_customer": {"bronze/customers"},
    "gold/fact_orders": {"silver/orders", "silver/dim_customer"},
    "gold/customer_ltv": {"silver/orders", "silver/dim_customer"},
    "gold/dim_date": set(),
}


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_assets_partitions_and_lineage() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == PARTITIONED | UNPARTITIONED
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.to_user_string() in PARTITIONED:
            assert node.partitions_def == DAILY and DAILY.timezone == "UTC"
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
        else:
            assert node.partitions_def is None
        assert node.pools == {"delta_" + key.to_user_string().replace("/", "_")}
    upstream = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert upstream == UPSTREAM


def test_checks_on_every_table() -> None:
    checks = {(c.asset_key.to_user_string(), c.name) for c in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        ("bronze/orders", "quality_gate"),
        ("silver/orders", "quality_gate"),
        ("silver/orders", "row_accounting"),
        ("silver/orders", "order_id_unique"),
        ("silver/orders", "pandera_schema"),
        ("gold/daily_sales", "quality_gate"),
        ("gold/daily_sales", "totals_reconcile"),
        ("gold/daily_sales", "pandera_schema"),
        ("bronze/customers", "quality_gate"),
        ("silver/dim_customer", "quality_gate"),
        ("silver/dim_customer", "one_current_version"),
        ("gold/fact_orders", "quality_gate"),
        ("gold/fact_orders", "customer_known_at_order_time"),
    }


def test_freshness_policies_use_the_current_api() -> None:
    graph = defs.resolve_asset_graph()
    for key in ("gold/daily_sales", "gold/fact_orders"):
        policy = graph.get(dg.AssetKey(key.split("/"))).freshness_policy
        assert policy.deadline_cron == "0 6 * * *" and policy.timezone == "UTC"
    silver = graph.get(dg.AssetKey(["silver", "orders"])).freshness_policy
    assert silver.warn_window.to_timedelta().total_seconds() == 3 * 3600


def test_automation_is_wired() -> None:
    assert {s.name for s in defs.sensors} == {
        "orders_landing_sensor",
        "customers_landing_sensor",
        "run_failure_alert",
        "quality_gate_alert",
        "medallion_automation",
    }
    assert {s.name for s in defs.schedules} == {"orders_daily_schedule", "lakehouse_maintenance_weekly"}
    assert {j.name for j in defs.jobs} >= {"orders_daily", "customers_daily", "maintenance_job"}

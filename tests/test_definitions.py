"""The code location loads, and its assets, checks, jobs, sensors and schedules are what users see in the UI:
one gated asset per spec, layers as groups with medal kinds, quarantine and run-log tables as assets."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from medallion_assets.definitions import SPECS, TABLES, defs
from medallion_assets.jobs import SOURCE_TABLES, source_keys
from medallion_assets.partitions import DAILY

PARTITIONED = {
    "bronze/orders", "silver/orders", "gold/daily_sales", "gold/fact_orders", "bronze/customers", "bronze/payments",
    "silver/payments", "gold/payment_reconciliation",
}  # fmt: skip
UNPARTITIONED = {"silver/dim_customer", "gold/dim_date", "gold/customer_ltv"}
QUARANTINE = {
    "quarantine/orders": "silver/orders", "quarantine/daily_sales": "gold/daily_sales",
    "quarantine/customers": "silver/dim_customer", "quarantine/fact_orders": "gold/fact_orders",
    "quarantine/payments": "silver/payments", "quarantine/payment_reconciliation": "gold/payment_reconciliation",
}  # fmt: skip
UPSTREAM = {
    "bronze/orders": set(),
    "silver/orders": {"bronze/orders"},
    "gold/daily_sales": {"silver/orders"},
    "bronze/customers": set(),
    "silver/dim_customer": {"bronze/customers"},
    "gold/fact_orders": {"silver/orders", "silver/dim_customer"},
    "gold/customer_ltv": {"silver/orders", "silver/dim_customer"},
    "gold/dim_date": set(),
    "bronze/payments": set(),
    "silver/payments": {"bronze/payments"},
    "gold/payment_reconciliation": {"silver/payments", "gold/daily_sales", "silver/orders"},
}


def keys(graph) -> set[str]:
    return {k.to_user_string() for k in graph.get_all_asset_keys()}


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_one_gated_asset_per_spec() -> None:
    assert [s.table for s in SPECS] == list(TABLES) and set(TABLES) == PARTITIONED | UNPARTITIONED


def test_assets_partitions_layers_and_lineage() -> None:
    graph = defs.resolve_asset_graph()
    assert keys(graph) == PARTITIONED | UNPARTITIONED | set(QUARANTINE) | {"monitoring/pipeline_runs"}
    for name in PARTITIONED | UNPARTITIONED:
        node = graph.get(dg.AssetKey(name.split("/")))
        layer = name.split("/")[0]
        if name in PARTITIONED:
            assert node.partitions_def == DAILY and DAILY.timezone == "UTC"
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
        else:
            assert node.partitions_def is None
        assert node.pools == {"delta_" + name.replace("/", "_")}
        assert node.group_name == layer and {"spark", "delta", layer} <= set(node.kinds)
        assert node.description and not node.description.startswith("Rows built")
        assert {p.to_user_string() for p in node.parent_keys} == UPSTREAM[name], name
    for quarantine, table in QUARANTINE.items():
        node = graph.get(dg.AssetKey(quarantine.split("/")))
        assert node.group_name == "quarantine" and table in node.description
        assert {p.to_user_string() for p in node.parent_keys} == UPSTREAM[table]
    run_log = graph.get(dg.AssetKey(["monitoring", "pipeline_runs"]))
    assert run_log.group_name == "monitoring" and {p.to_user_string() for p in run_log.parent_keys} == set(TABLES)


def test_checks_on_every_table() -> None:
    checks = {(c.asset_key.to_user_string(), c.name) for c in defs.resolve_asset_graph().asset_check_keys}
    expected = {
        ("bronze/orders", "line_accounting"), ("bronze/customers", "line_accounting"),
        ("bronze/payments", "line_accounting"), ("silver/orders", "row_accounting"),
        ("silver/orders", "order_id_unique"), ("silver/orders", "pandera_schema"),
        ("silver/payments", "row_accounting"), ("silver/payments", "payment_id_unique"),
        ("gold/daily_sales", "totals_reconcile"), ("gold/daily_sales", "pandera_schema"),
        ("silver/dim_customer", "one_current_version"), ("silver/dim_customer", "fact_orders_keys_current"),
        ("gold/fact_orders", "customer_known_at_order_time"), ("gold/fact_orders", "fact_orders_keys_current"),
        ("gold/payment_reconciliation", "reconciliation_within_tolerance"),
        *((t, "quality_gate") for t in TABLES),
        *((t, "column_schema_change") for t in TABLES),
    }  # fmt: skip
    assert checks == expected


def test_freshness_policies_use_the_current_api() -> None:
    graph = defs.resolve_asset_graph()
    for key in ("gold/daily_sales", "gold/fact_orders", "gold/payment_reconciliation"):
        policy = graph.get(dg.AssetKey(key.split("/"))).freshness_policy
        assert policy.deadline_cron == "0 6 * * *" and policy.timezone == "UTC"
    for key in ("silver/orders", "silver/payments"):
        silver = graph.get(dg.AssetKey(key.split("/"))).freshness_policy
        assert silver.warn_window.to_timedelta().total_seconds() == 3 * 3600


def test_automation_is_wired() -> None:
    assert {s.name for s in defs.sensors} == {
        "landing_sensor",
        "run_failure_alert",
        "quality_gate_alert",
        "run_guard_sensor",
        "fact_rekey_after_success",
        "fact_rekey_after_failure",
        "medallion_automation",
    }
    assert {s.name for s in defs.schedules} == {"orders_daily_schedule", "lakehouse_maintenance_weekly"}
    jobs = {
        "orders_daily",
        "customers_daily",
        "payments_daily",
        "landing_daily",
        "fact_orders_rekey",
        "maintenance_job",
    }
    assert {j.name for j in defs.jobs} >= jobs


def test_settings_show_as_a_resource() -> None:
    settings = defs.resources["settings"]
    assert settings.threshold("silver/orders") == 0.95 and settings.min_volume_share == 0.5


def test_a_run_of_several_sources_takes_each_source_on_to_gold_before_the_next_bronze() -> None:
    """Step priority by layer: the in-process executor starts the highest-priority ready step first."""
    priority = {
        key.to_user_string(): int(defs.resolve_assets_def(key).op.tags["dagster/priority"])
        for key in source_keys(*SOURCE_TABLES)
        if not key.to_user_string().startswith("quarantine/")
    }
    assert priority["gold/daily_sales"] > priority["silver/orders"] > priority["bronze/customers"]
    assert priority["silver/dim_customer"] > priority["bronze/orders"] == priority["bronze/payments"]


def test_a_threshold_naming_no_table_fails_the_load_naming_the_variable() -> None:
    """``MEDALLION_THRESHOLD_SILVER_ODERS`` (mistyped) used to load and leave silver/orders at the layer's 95 %."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "MEDALLION_THRESHOLD_SILVER_ODERS": "0.999", "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-c", "import medallion_assets.definitions"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "MEDALLION_THRESHOLD_SILVER_ODERS: no such gated table" in done.stderr and "silver/orders" in done.stderr

"""The code location loads, and its assets are what users see in the UI."""

import dagster as dg

from medallion_assets.definitions import defs
from medallion_assets.partitions import DAILY


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_assets_are_daily_partitioned_tables_with_checks() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"bronze/orders", "silver/orders", "gold/daily_sales"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def == DAILY and DAILY.timezone == "UTC"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    upstream = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert upstream == {
        "bronze/orders": set(),
        "silver/orders": {"bronze/orders"},
        "gold/daily_sales": {"silver/orders"},
    }
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert checks == {
        ("bronze/orders", "quality_gate"),
        ("silver/orders", "quality_gate"),
        ("silver/orders", "row_accounting"),
        ("silver/orders", "order_id_unique"),
        ("gold/daily_sales", "quality_gate"),
        ("gold/daily_sales", "totals_reconcile"),
        ("silver/orders", "pandera_schema"),
        ("gold/daily_sales", "pandera_schema"),
    }

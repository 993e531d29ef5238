"""Automation a new user meets: sensors skip what was already built from the same files; whole tables and
cross-source tables follow their upstream days."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from medallion_assets.definitions import defs
from medallion_assets.sample_data import generate
from resources.landing import LandingZone

from .conftest import materialize_days

SENSOR = defs.resolve_sensor_def("landing_sensor")


def tick(instance: dg.DagsterInstance, landing: Path, cursor: str | None) -> tuple[list[str], str | None]:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": LandingZone(root=str(landing))},
    )
    result = SENSOR(context)
    return sorted(r.partition_key for r in result.run_requests or []), result.cursor


def test_a_day_built_from_the_same_files_is_not_run_again(resources, landing_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDALLION_SETTLE_SECONDS", "0")
    generate(landing_root, days=2, orders_per_day=100, seed=1)
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        assert materialize_days(resources, "2024-01-01", instance=instance, selection="bronze/orders").success
        due, cursor = tick(instance, landing_root, None)
        assert due == ["2024-01-02"]  # 01-01 was built from exactly these files (make dev's first build)
        late = landing_root / "orders" / "date=2024-01-01" / "part-009.jsonl"
        late.write_text(next(iter((landing_root / "orders" / "date=2024-01-01" / "part-001.jsonl").open())))
        old = time.time() - 3600
        os.utime(late, (old, old))  # copied with its old mtime (cp -p)
        due, _ = tick(instance, landing_root, cursor)
        assert due == ["2024-01-01"]


def requested(result) -> dict[str, list[str | None]]:
    return {
        key.to_user_string(): sorted(result.get_requested_partitions(key), key=str)
        for key in (r.key for r in result.results)
        if result.get_num_requested(key)
    }


def test_cross_source_and_whole_tables_follow_their_upstream_days() -> None:
    day = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    with dg.DagsterInstance.ephemeral() as instance:

        def landed(*tables: str, partition: str | None = day) -> None:
            for table in tables:
                instance.report_runless_asset_event(dg.AssetMaterialization(table.split("/"), partition=partition))

        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        landed("bronze/customers")  # one customers day among many never built
        second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert requested(second) == {"silver/dim_customer": [None]}
        landed("bronze/orders", "silver/orders", "gold/daily_sales", "gold/fact_orders")  # the orders run
        third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert "gold/customer_ltv" not in requested(third)  # the dimension does not exist yet
        landed("silver/dim_customer", partition=None)  # the day's customers arrive after its orders
        fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
        got = requested(fourth)
        assert got["gold/customer_ltv"] == [None]  # the whole-table gold follows
        assert "gold/fact_orders" not in got  # re-keyed by day by the rekey sensors, not every recent day
        assert "gold/payment_reconciliation" not in got  # the day's payments are not in yet
        landed("gold/customer_ltv", partition=None)
        landed("bronze/payments", "silver/payments")
        fifth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=fourth.cursor)
        assert requested(fifth).get("gold/payment_reconciliation") == [day]  # payments landed last

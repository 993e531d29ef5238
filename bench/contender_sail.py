"""The same reads and writes as the orders graph on Sail, with no Dagster, no gates and no checks.

Reuses the product's landing reader, pure transforms, rule evaluation and the Delta table store directly:
bronze, quarantine/orders, silver/orders and gold/daily_sales are written exactly as the assets write them (the
landing lines staged as Parquet, the parse staged once, silver's evaluated rows staged once); the gate
statistics, run log, read-back checks and pandera checks are left out.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medallion_assets import orders, transforms
from medallion_assets.factory import checked_rows, published_rows, quarantine_rows
from medallion_assets.json_source import bronze_frame
from medallion_assets.orders_contract import CONTRACT
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.landing_files import read_json_lines
from resources.partition_keys import day_range

PART = CONTRACT.partition_column


def landing_lines(zone: LandingZone, days: list[str], folder: str) -> int:
    """Every ready file's lines, numbered, as one Parquet file each (what the bronze read hook stages)."""
    n = 0
    for day in days:
        for file in zone.listing("orders", day).files:
            batches, _ = read_json_lines(file)
            if not batches:
                continue
            table = pa.Table.from_batches(batches)
            rows = len(table)
            table = table.add_column(0, PART, pa.array([date.fromisoformat(day)] * rows, pa.date32()))
            table = table.add_column(1, "_source_file", pa.array([file.relative] * rows, pa.string()))
            pq.write_table(table, f"{folder}/part-{n:05d}.parquet", compression="none")
            n += 1
    return n


def run(landing: str, lakehouse: str, first: str, last: str) -> dict[str, Any]:
    """Build the four tables for ``first``..``last`` in one engine pass; time each stage."""
    stages: dict[str, float] = {}
    clock = time.perf_counter()
    started = clock

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    days = [d.isoformat() for d in day_range(first, last)]
    engine = SparkEngine(mode="sail")  # holds the embedded server until stop()
    store, zone = DeltaTableStore(root=lakehouse), LandingZone(root=landing)
    spark = engine.get_session()
    lap("engine_start")
    now = datetime.now(timezone.utc)
    with store.scratch("landing_orders") as folder:
        Path(folder).mkdir(parents=True)
        landing_lines(zone, days, folder)
        with store.staged(
            transforms.parse_lines(spark.read.parquet(folder), CONTRACT.fields), name="orders_parsed"
        ) as parsed:
            bronze, _ = bronze_frame(CONTRACT, parsed, ingested_at=now)
            store.replace_partitions("bronze/orders", bronze, partition_column=PART, days=days)
    lap("bronze")
    bronze = store.read(spark, "bronze/orders", partition_column=PART, days=days)
    checked = checked_rows(orders.SILVER_SPEC, transforms.typed_rows(bronze, CONTRACT.typed()))
    with store.staged(checked, name="silver_orders") as validated:
        quarantine = quarantine_rows(validated, quarantined_at=now, run_id="bench")
        store.replace_partitions("quarantine/orders", quarantine, partition_column=PART, days=days)
        store.replace_partitions(
            "silver/orders", published_rows(orders.SILVER_SPEC, validated), partition_column=PART, days=days
        )
    lap("silver")
    silver = store.read(spark, "silver/orders", partition_column=PART, days=days)
    gold = orders.daily_sales(None, {orders.SILVER: silver})
    store.replace_partitions("gold/daily_sales", gold, partition_column=PART, days=days)
    lap("gold")
    seconds = time.perf_counter() - started
    engine.stop()
    return {"success": True, "first": first, "last": last, "seconds": round(seconds, 3), "stage_seconds": stages}

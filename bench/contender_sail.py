"""The same reads and writes as the orders graph on Sail, with no Dagster, no gates and no checks.

Reuses the product's pure transforms, its bronze file reader and the Delta table store directly: bronze,
quarantine/orders, silver/orders and gold/daily_sales are written exactly as the assets write them (silver's
validated rows staged once, as the asset does); the gate statistics, run log, read-back checks and pandera
checks are left out. Key discovery is its own pass here (the asset reads keys off its gate statistics pass).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.bronze import read_lines
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.partition_keys import day_range

PART = contract.PARTITION_COLUMN


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
    lines, _ = read_lines(spark, zone, days)
    parsed = transforms.parsed_lines(lines)
    extras = transforms.extra_columns(r.key for r in transforms.json_keys(parsed).collect())
    bronze = transforms.bronze_orders(lines, extras=extras, ingested_at=now)
    store.replace_partitions("bronze/orders", bronze, partition_column=PART, days=days)
    lap("bronze")
    bronze = store.read(spark, "bronze/orders", partition_column=PART, days=days)
    # Like the asset: quarantine and silver both read the validated rows, so they are staged once (on Sail,
    # two writes from the unstaged frame compute it, window sort included, twice: slower, see BENCHMARKS.md).
    with store.staged(transforms.validated_orders(bronze), name="silver_orders") as validated:
        quarantine = transforms.quarantined_orders(validated, bronze.columns, quarantined_at=now)
        store.replace_partitions("quarantine/orders", quarantine, partition_column=PART, days=days)
        silver = transforms.silver_orders(validated)
        store.replace_partitions("silver/orders", silver, partition_column=PART, days=days)
    lap("silver")
    silver = store.read(spark, "silver/orders", partition_column=PART, days=days)
    store.replace_partitions("gold/daily_sales", transforms.daily_sales(silver), partition_column=PART, days=days)
    lap("gold")
    seconds = time.perf_counter() - started
    engine.stop()
    return {"success": True, "first": first, "last": last, "seconds": round(seconds, 3), "stage_seconds": stages}

"""``gold/daily_sales``: sales per day and region over ``silver/orders``."""

import time

import dagster as dg
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.partitions import DAILY, RANGE_POLICY, run_days
from medallion_assets.reporting import write_metadata
from medallion_assets.silver import silver_orders
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine

TABLE = "gold/daily_sales"
KEY = ["gold", "daily_sales"]
PART = contract.PARTITION_COLUMN


def revenue_check(store: DeltaTableStore, spark, days: list[str]) -> dg.AssetCheckResult:
    """Gold revenue per day equals the sum of silver amounts of sale orders, read back from both tables."""
    gold = store.read(spark, TABLE, partition_column=PART, days=days).groupBy(PART).agg(F.sum("revenue").alias("r"))
    silver = (
        store.read(spark, "silver/orders", partition_column=PART, days=days)
        .filter(F.col("status").isin(*contract.SALE_STATUSES))
        .groupBy(PART)
        .agg(F.sum("amount").alias("r"))
    )
    g = {r[PART].isoformat(): r["r"] for r in gold.collect()}
    s = {r[PART].isoformat(): r["r"] for r in silver.collect()}
    off = {
        d: {"gold": str(g.get(d) or 0), "silver": str(s.get(d) or 0)}
        for d in days
        if (g.get(d) or 0) != (s.get(d) or 0)
    }
    return dg.AssetCheckResult(
        check_name="revenue_reconciles",
        passed=not off,
        metadata={"days_checked": len(days), "mismatches": dg.MetadataValue.json(off)},
        description="sum(gold.revenue) = sum(silver.amount of paid/shipped/delivered orders), per day",
    )


@dg.asset(
    key=KEY,
    deps=[silver_orders],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    kinds={"spark", "delta"},
    check_specs=[dg.AssetCheckSpec("revenue_reconciles", asset=KEY, blocking=True)],
    description="Per order_date and region: sale orders (paid/shipped/delivered), revenue, average order value, "
    "distinct customers, cancelled and returned counts.",
)
def gold_daily_sales(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    started = time.monotonic()
    days = run_days(context)
    spark = engine.get_session()
    silver = store.read(spark, "silver/orders", partition_column=PART, days=days)
    write = store.replace_partitions(TABLE, transforms.daily_sales(silver), partition_column=PART, days=days)
    rows = store.read(spark, TABLE, partition_column=PART, days=days).count()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            "rows_out": rows,
            "partitions": dg.MetadataValue.json(days),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
            **write_metadata(write),
        },
        check_results=[revenue_check(store, spark, days)],
    )

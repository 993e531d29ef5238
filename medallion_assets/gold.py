"""``gold/daily_sales``: sales per day and region over the published ``silver/orders``.

Gold rules are declared below in the string syntax; rows failing them go to ``quarantine/daily_sales`` and a
day under the gold threshold (98 %) — or whose silver gate did not pass — is not published.
"""

from datetime import datetime, timezone

import dagster as dg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import run_log, transforms
from medallion_assets.partitions import DAILY, GOLD_FRESHNESS, RANGE_POLICY, run_days, table_pool
from medallion_assets.quality.gate import GATE_CHECK, GateContext, decide, finish
from medallion_assets.quality.rules import REASONS, RuleSet, evaluate, is_valid, rule_stats, sql
from medallion_assets.quality.thresholds import threshold
from medallion_assets.reporting import write_metadata
from medallion_assets.silver import silver_orders
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine

TABLE = "gold/daily_sales"
QUARANTINE = "quarantine/daily_sales"
UPSTREAM = "silver/orders"
KEY = ["gold", "daily_sales"]
PART = contract.PARTITION_COLUMN
COLUMNS = (PART, "region", "orders", "revenue", "avg_order_value", "customers", "cancelled", "returned")

RULES = RuleSet.build(
    TABLE,
    columns=COLUMNS,
    partition_column=PART,
    column_rules={
        "region": ["not_null", ["max_length", 64], "unique"],
        "orders": ["not_null", ["gte", 0]],
        "revenue": ["not_null", ["gte", 0], ["lt", 1_000_000_000_000]],
        "customers": [["gte", 0]],
        "avg_order_value": [["between", 0, contract.MAX_AMOUNT]],
    },
    rules=[
        sql("customers_within_orders", "customers <= orders"),
        sql("aov_matches_revenue", "orders = 0 OR abs(avg_order_value * orders - revenue) <= orders * 0.005"),
    ],
)


def reconcile_check(store: DeltaTableStore, spark: SparkSession, days: list[str]) -> dg.AssetCheckResult:
    """Per published day, gold's total orders and revenue equal silver's sale orders and amounts, read back."""
    if not days:
        return dg.AssetCheckResult(check_name="totals_reconcile", passed=True, metadata={"days_checked": 0})
    gold = (
        store.read(spark, TABLE, partition_column=PART, days=days)
        .groupBy(PART)
        .agg(F.sum("orders").alias("orders"), F.sum("revenue").alias("revenue"))
    )
    silver = (
        store.read(spark, UPSTREAM, partition_column=PART, days=days)
        .filter(F.col("status").isin(*contract.SALE_STATUSES))
        .groupBy(PART)
        .agg(F.count(F.lit(1)).alias("orders"), F.sum("amount").alias("revenue"))
    )
    g = {r[PART].isoformat(): (r["orders"] or 0, r["revenue"] or 0) for r in gold.collect()}
    s = {r[PART].isoformat(): (r["orders"] or 0, r["revenue"] or 0) for r in silver.collect()}
    off = {
        d: {"gold": str(g.get(d, (0, 0))), "silver": str(s.get(d, (0, 0)))}
        for d in days
        if g.get(d, (0, 0)) != s.get(d, (0, 0))
    }
    return dg.AssetCheckResult(
        check_name="totals_reconcile",
        passed=not off,
        metadata={"days_checked": len(days), "mismatches": dg.MetadataValue.json(off)},
        description="sum(gold.orders, gold.revenue) = count and sum(amount) of silver sale orders, per day",
    )


@dg.asset(
    key=KEY,
    deps=[silver_orders],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    pool=table_pool(TABLE),
    freshness_policy=GOLD_FRESHNESS,
    kinds={"spark", "delta"},
    check_specs=[
        dg.AssetCheckSpec(GATE_CHECK, asset=KEY, partitions_def=DAILY),
        dg.AssetCheckSpec("totals_reconcile", asset=KEY, partitions_def=DAILY, blocking=True),
    ],
    description="Per order_date and region: sale orders (paid/shipped/delivered), revenue, average order value, "
    "distinct customers, cancelled and returned counts.",
)
def gold_daily_sales(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    days = run_days(context)
    spark = engine.get_session()
    refusals = run_log.upstream_refusals(store, UPSTREAM, days)
    todo = [d for d in days if d not in refusals]
    stats: dict[str, dict] = {}
    write = q_write = None
    if todo:
        silver = store.read(spark, UPSTREAM, partition_column=PART, days=todo)
        checked = evaluate(transforms.daily_sales(silver), RULES)
        stats = {r[PART].isoformat(): r.asDict() for r in rule_stats(checked, PART, RULES).collect()}
        quarantine = checked.filter(~is_valid()).select(
            *COLUMNS,
            REASONS,
            F.lit(started).cast("timestamp").alias("_quarantined_at"),
            F.lit(context.run_id).alias("_run_id"),
        )
        q_write = store.replace_partitions(QUARANTINE, quarantine, partition_column=PART, days=todo)
    outcomes = decide(days, stats, threshold(TABLE), refusals)
    published = [o.day for o in outcomes if o.passed]
    if published:
        write = store.replace_partitions(
            TABLE, checked.filter(is_valid()).select(*COLUMNS), partition_column=PART, days=published
        )
    return finish(
        GateContext(context, store, spark, TABLE, engine.resolved_mode, started),
        outcomes,
        version=write.version if write else None,
        metadata={
            **(
                {"quarantine_path": dg.MetadataValue.path(q_write.uri), "quarantine_version": q_write.version}
                if q_write
                else {}
            ),
            **write_metadata(write),
        },
        check_results=[reconcile_check(store, spark, published)],
    )

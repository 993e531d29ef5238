"""The orders tables: ``bronze/orders`` and ``silver/orders`` from the orders contract, ``gold/daily_sales``."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.factory import ReadBackCheck, Run, TableSpec, Verdict
from medallion_assets.json_source import bronze_spec, silver_spec
from medallion_assets.partitions import GOLD_FRESHNESS
from medallion_assets.quality.gate import DayOutcome
from medallion_assets.quality.rules import Rule, RuleSet

GOLD = "gold/daily_sales"
SILVER = contract.CONTRACT.silver
PART = contract.PARTITION_COLUMN
COLUMNS = (PART, "region", "orders", "revenue", "avg_order_value", "customers", "cancelled", "returned")

RULES = RuleSet(
    GOLD,
    columns=COLUMNS,
    partition_column=PART,
    rules=[
        Rule.not_null("region"),
        contract.region_fits("region"),
        Rule.unique("region"),
        Rule.not_null("orders"),
        Rule.compare("orders", "gte", 0),
        Rule.not_null("revenue"),
        Rule.compare("revenue", "gte", 0),
        Rule.compare("revenue", "lt", 1_000_000_000_000),
        Rule.compare("customers", "gte", 0),
        Rule.between("avg_order_value", 0, contract.MAX_AMOUNT),
        Rule.sql("customers_within_orders", "customers <= orders"),
        Rule.sql("aov_matches_revenue", "orders = 0 OR abs(avg_order_value * orders - revenue) <= orders * 0.005"),
    ],
)


def daily_sales(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Per order_date and region: sale orders (paid/shipped/delivered), revenue, average order value, distinct
    customers, cancelled and returned counts."""
    return transforms.daily_sales(
        upstream[SILVER], sale_statuses=contract.SALE_STATUSES, amount_type=contract.AMOUNT_TYPE
    )


def totals_reconcile(run: Run, published: list[DayOutcome]) -> Verdict:
    """Per published day, gold's total orders and revenue equal silver's sale orders and amounts, read back."""
    days = [o.day for o in published]
    gold = (
        run.store.read(run.spark, GOLD, partition_column=PART, days=days)
        .groupBy(PART)
        .agg(F.sum("orders").alias("orders"), F.sum("revenue").alias("revenue"))
    )
    silver = (
        run.store.read(run.spark, SILVER, partition_column=PART, days=days)
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
    return Verdict(off, {"days_checked": len(days)})


BRONZE_SPEC = bronze_spec(contract.CONTRACT)
SILVER_SPEC = silver_spec(contract.CONTRACT)
GOLD_SPEC = TableSpec(
    table=GOLD,
    build=daily_sales,
    rules=RULES,
    upstream=(SILVER,),
    partition_column=PART,
    quarantine="quarantine/daily_sales",
    checks=(ReadBackCheck("totals_reconcile", totals_reconcile, totals_reconcile.__doc__),),
    freshness=GOLD_FRESHNESS,
    sample_columns=("region", "orders", "revenue"),
)

"""The payments tables: ``bronze/payments`` and ``silver/payments`` from the payments contract, and
``gold/payment_reconciliation`` — per payment day and region, captured minus refunded against sales revenue."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medallion_assets import orders_contract, payments_contract
from medallion_assets.factory import ReadBackCheck, Run, TableSpec, Verdict
from medallion_assets.json_source import bronze_spec, silver_spec
from medallion_assets.partitions import GOLD_FRESHNESS, follows_upstream_days
from medallion_assets.quality.gate import DayOutcome
from medallion_assets.quality.rules import Rule, RuleSet

PAYMENTS = payments_contract.CONTRACT.silver
ORDERS = orders_contract.CONTRACT.silver
SALES = "gold/daily_sales"
RECONCILIATION = "gold/payment_reconciliation"
DAY = "day"
UNKNOWN_REGION = "unknown"
AMOUNT = orders_contract.AMOUNT_TYPE
COLUMNS = (
    DAY, "region", "payments", "captured_amount", "refunded_amount", "net_captured", "sales_revenue", "difference",
    "orders_paid_not_captured", "unknown_order_payments",
)  # fmt: skip


def reconcile(payments: DataFrame, all_payments: DataFrame, orders: DataFrame, sales: DataFrame) -> DataFrame:
    """Per day and region: payments (their latest event that day), captured and refunded amounts, net captured,
    the day's sales revenue (``gold/daily_sales``) and the difference; sale orders of the day with no captured
    payment; payments whose order is unknown (region ``unknown``)."""
    latest_order = Window.partitionBy("order_id").orderBy(F.col("order_date").desc())
    regions = (
        orders.select("order_id", "region", "order_date", F.row_number().over(latest_order).alias("_n"))
        .filter("_n = 1")
        .select("order_id", F.col("region").alias("order_region"))
    )
    paid = payments.join(regions, "order_id", "left").select(
        F.col(payments_contract.PARTITION_COLUMN).alias(DAY),
        F.coalesce("order_region", F.lit(UNKNOWN_REGION)).alias("region"),
        "status",
        "amount",
        F.col("order_region").isNull().alias("_unknown"),
    )
    money = paid.groupBy(DAY, "region").agg(
        F.count(F.lit(1)).alias("payments"),
        F.sum(F.when(F.col("status") == "captured", F.col("amount")).otherwise(0)).cast(AMOUNT).alias("captured"),
        F.sum(F.when(F.col("status") == "refunded", F.col("amount")).otherwise(0)).cast(AMOUNT).alias("refunded"),
        F.sum(F.col("_unknown").cast("long")).alias("unknown_order_payments"),
    )
    captured_orders = all_payments.filter(F.col("status") == "captured").select("order_id").distinct()
    sale_orders = orders.filter(F.col("status").isin(*orders_contract.SALE_STATUSES))
    not_captured = (
        sale_orders.join(captured_orders, "order_id", "left_anti")
        .groupBy(F.col("order_date").alias(DAY), "region")
        .agg(F.count(F.lit(1)).alias("orders_paid_not_captured"))
    )
    revenue = sales.select(F.col("order_date").alias(DAY), "region", F.col("revenue").alias("sales_revenue"))
    days = payments.select(F.col(payments_contract.PARTITION_COLUMN).alias(DAY)).distinct()
    keys = (
        money.select(DAY, "region").unionByName(revenue.select(DAY, "region")).distinct().join(days, DAY, "left_semi")
    )
    zero = F.lit(0).cast(AMOUNT)
    rows = keys.join(money, [DAY, "region"], "left").join(revenue, [DAY, "region"], "left")
    rows = rows.join(not_captured, [DAY, "region"], "left")
    net = (F.coalesce("captured", zero) - F.coalesce("refunded", zero)).cast(AMOUNT)
    return rows.select(
        DAY,
        "region",
        F.coalesce("payments", F.lit(0)).cast("long").alias("payments"),
        F.coalesce("captured", zero).alias("captured_amount"),
        F.coalesce("refunded", zero).alias("refunded_amount"),
        net.alias("net_captured"),
        F.coalesce("sales_revenue", zero).cast(AMOUNT).alias("sales_revenue"),
        (F.coalesce("sales_revenue", zero) - net).cast(AMOUNT).alias("difference"),
        F.coalesce("orders_paid_not_captured", F.lit(0)).cast("long").alias("orders_paid_not_captured"),
        F.coalesce("unknown_order_payments", F.lit(0)).cast("long").alias("unknown_order_payments"),
    )


def payment_reconciliation(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Per payment day and region: payments, captured and refunded amounts, net captured against the day's
    sales revenue (gold/daily_sales) and the difference, sale orders of the day never captured, payments whose
    order is unknown (region "unknown")."""
    return reconcile(upstream[PAYMENTS], run.read(PAYMENTS, by_day=False), upstream[ORDERS], upstream[SALES])


def within_tolerance(run: Run, published: list[DayOutcome]) -> Verdict:
    """Per published day, |revenue - net captured| stays within the tolerance share of revenue
    (MEDALLION_RECONCILIATION_TOLERANCE)."""
    tolerance = run.settings.reconciliation_tolerance
    days = [o.day for o in published]
    totals = (
        run.store.read(run.spark, RECONCILIATION, partition_column=DAY, days=days)
        .groupBy(DAY)
        .agg(F.sum("sales_revenue").alias("revenue"), F.sum("difference").alias("difference"))
        .collect()
    )
    off = {
        r[DAY].isoformat(): {"revenue": str(r["revenue"]), "difference": str(r["difference"])}
        for r in totals
        if abs(float(r["difference"] or 0)) > tolerance * abs(float(r["revenue"] or 0))
    }
    return Verdict(off, {"tolerance": tolerance, "days_checked": len(days)})


RULES = RuleSet(
    RECONCILIATION,
    columns=COLUMNS,
    partition_column=DAY,
    rules=[
        Rule.not_null("region"),
        Rule.unique("region"),
        Rule.compare("payments", "gte", 0),
        Rule.compare("captured_amount", "gte", 0),
        Rule.compare("refunded_amount", "gte", 0),
        Rule.compare("sales_revenue", "gte", 0),
    ],
)
BRONZE_SPEC = bronze_spec(payments_contract.CONTRACT)
SILVER_SPEC = silver_spec(payments_contract.CONTRACT)
RECONCILIATION_SPEC = TableSpec(
    table=RECONCILIATION,
    build=payment_reconciliation,
    rules=RULES,
    upstream=(PAYMENTS, SALES),
    lookups=(ORDERS,),
    partition_column=DAY,
    quarantine="quarantine/payment_reconciliation",
    checks=(
        ReadBackCheck(
            "reconciliation_within_tolerance",
            within_tolerance,
            within_tolerance.__doc__ or "",
            blocking=False,
            severity=dg.AssetCheckSeverity.WARN,
        ),
    ),
    freshness=GOLD_FRESHNESS,
    automation=follows_upstream_days(),  # a day's orders and payments may land in either order
    sample_columns=("region", "difference"),
)

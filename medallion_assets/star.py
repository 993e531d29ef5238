"""The star schema for BI: ``gold/fact_orders`` (daily), ``gold/dim_date`` and ``gold/customer_ltv``."""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets import orders_contract as orders
from medallion_assets import run_log
from medallion_assets.customers import DIM, dim_customer
from medallion_assets.partitions import DAILY, GOLD_FRESHNESS, RANGE_POLICY, START_DATE, run_days, table_pool
from medallion_assets.quality.gate import GATE_CHECK, GateContext, decide, finish
from medallion_assets.quality.rules import RuleSet, evaluate, is_valid, rule_stats
from medallion_assets.quality.thresholds import threshold
from medallion_assets.reporting import write_metadata
from medallion_assets.scd2 import as_of
from medallion_assets.silver import silver_orders
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine

FACT = "gold/fact_orders"
DIM_DATE = "gold/dim_date"
LTV = "gold/customer_ltv"
SILVER = "silver/orders"
PART = orders.PARTITION_COLUMN
UNKNOWN_CUSTOMER = -1
FACT_COLUMNS = (
    "order_id", "customer_sk", "customer_id", "date_key", "order_ts", "status", "region", "currency",
    "amount", "is_sale", PART,
)  # fmt: skip
FACT_RULES = RuleSet.build(
    FACT,
    columns=FACT_COLUMNS,
    partition_column=PART,
    column_rules={"order_id": ["not_null", "unique"], "amount": ["not_null", ["gt", 0]], "date_key": ["not_null"]},
)


def fact_rows(silver: DataFrame, dim: DataFrame | None) -> DataFrame:
    """One row per silver order with the customer version valid at ``order_ts`` (-1 when none)."""
    base = silver.select(
        "order_id", "customer_id", "order_ts", "status", "region", "currency", "amount", PART,
        F.date_format(F.col(PART), "yyyyMMdd").cast("int").alias("date_key"),
        F.col("status").isin(*orders.SALE_STATUSES).alias("is_sale"),
    )  # fmt: skip
    if dim is None:
        with_sk = base.withColumn("customer_sk", F.lit(UNKNOWN_CUSTOMER).cast("long"))
    else:
        with_sk = as_of(base, dim, key="customer_id", at="order_ts", sk_name="customer_sk", unknown=UNKNOWN_CUSTOMER)
    return with_sk.select(*FACT_COLUMNS)


@dg.asset(
    key=["gold", "fact_orders"],
    deps=[silver_orders, dim_customer],
    partitions_def=DAILY,
    backfill_policy=RANGE_POLICY,
    group_name="orders",
    pool=table_pool(FACT),
    freshness_policy=GOLD_FRESHNESS,
    kinds={"spark", "delta"},
    check_specs=[
        dg.AssetCheckSpec(GATE_CHECK, asset=["gold", "fact_orders"], partitions_def=DAILY),
        dg.AssetCheckSpec("customer_known_at_order_time", asset=["gold", "fact_orders"], partitions_def=DAILY),
    ],
    description="One row per silver order: customer_sk of the customer version valid at order_ts (-1 if unknown, "
    "never dropped), date_key, status, region, amount, is_sale.",
)
def fact_orders(context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore) -> dg.MaterializeResult:
    started = datetime.now(timezone.utc)
    days = run_days(context)
    spark = engine.get_session()
    refusals = run_log.upstream_refusals(store, SILVER, days)
    todo = [d for d in days if d not in refusals]
    stats: dict = {}
    write = None
    unknown = 0
    if todo:
        dim = store.read(spark, DIM) if store.exists(DIM) else None
        rows = evaluate(fact_rows(store.read(spark, SILVER, partition_column=PART, days=todo), dim), FACT_RULES)
        unknown_sk = (F.col("customer_sk") == UNKNOWN_CUSTOMER).cast("long")
        agg = rule_stats(rows, PART, FACT_RULES).join(
            rows.groupBy(PART).agg(F.sum(unknown_sk).alias("unknown_customers")), PART
        )
        stats = {r[PART].isoformat(): r.asDict() for r in agg.collect()}
        unknown = sum(s["unknown_customers"] or 0 for s in stats.values())
    outcomes = decide(days, stats, threshold(FACT), refusals)
    published = [o.day for o in outcomes if o.passed]
    if published:
        write = store.replace_partitions(
            FACT, rows.filter(is_valid()).select(*FACT_COLUMNS), partition_column=PART, days=published
        )
    total = sum(o.published for o in outcomes if o.passed)
    return finish(
        GateContext(context, store, spark, FACT, engine.resolved_mode, started),
        outcomes,
        version=write.version if write else None,
        metadata={"unknown_customer_rows": dg.MetadataValue.int(unknown), **write_metadata(write)},
        check_results=[
            dg.AssetCheckResult(
                check_name="customer_known_at_order_time",
                passed=unknown == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"unknown_customer_rows": unknown, "fact_rows": total},
                description="referential integrity: orders whose customer had no version at order time "
                "(kept with customer_sk = -1)",
            )
        ],
    )


def calendar(spark, first: date, last: date) -> DataFrame:
    days = spark.range((last - first).days + 1).select(F.date_add(F.lit(first), F.col("id").cast("int")).alias("date"))
    return days.select(
        F.date_format("date", "yyyyMMdd").cast("int").alias("date_key"),
        "date",
        F.year("date").alias("year"),
        F.quarter("date").alias("quarter"),
        F.month("date").alias("month"),
        F.date_format("date", "MMMM").alias("month_name"),
        F.dayofmonth("date").alias("day"),
        (((F.dayofweek("date") + 5) % 7) + 1).alias("day_of_week"),  # ISO: Monday = 1
        F.date_format("date", "EEEE").alias("day_name"),
        F.weekofyear("date").alias("week_of_year"),
        F.dayofweek("date").isin(1, 7).alias("is_weekend"),
    )


@dg.asset(
    key=["gold", "dim_date"],
    group_name="star",
    pool=table_pool(DIM_DATE),
    kinds={"spark", "delta"},
    automation_condition=dg.AutomationCondition.on_cron("0 1 * * *", "UTC"),
    description="Calendar dimension from the first partition day to a year ahead: date_key (yyyyMMdd), year, "
    "quarter, month, ISO day of week, week of year, weekend flag.",
)
def dim_date(context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore) -> dg.MaterializeResult:
    first = date.fromisoformat(START_DATE)
    last = datetime.now(timezone.utc).date() + timedelta(days=365)
    write = store.overwrite(DIM_DATE, calendar(engine.get_session(), first, last))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": (last - first).days + 1, "first": str(first), "last": str(last),
                  **write_metadata(write)}
    )  # fmt: skip


def lifetime_values(silver: DataFrame, dim: DataFrame | None) -> DataFrame:
    sales = silver.filter(F.col("status").isin(*orders.SALE_STATUSES))
    per_customer = sales.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("total_orders"),
        F.sum("amount").cast(orders.AMOUNT_TYPE).alias("lifetime_value"),
        F.min(PART).alias("first_order_date"),
        F.max(PART).alias("last_order_date"),
    )
    if dim is None:
        return per_customer.select("*", F.lit(None).cast("string").alias("current_segment"))
    current = dim.filter("is_current").select("customer_id", F.col("segment").alias("current_segment"))
    return per_customer.join(current, "customer_id", "left")


@dg.asset(
    key=["gold", "customer_ltv"],
    deps=[silver_orders, dim_customer],
    group_name="star",
    pool=table_pool(LTV),
    kinds={"spark", "delta"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Per customer, rebuilt from all published silver orders: total sale orders, lifetime value, "
    "first and last order date, current segment.",
)
def customer_ltv(
    context: dg.AssetExecutionContext, engine: SparkEngine, store: DeltaTableStore
) -> dg.MaterializeResult:
    spark = engine.get_session()
    dim = store.read(spark, DIM) if store.exists(DIM) else None
    write = store.overwrite(LTV, lifetime_values(store.read(spark, SILVER), dim))
    rows = store.read(spark, LTV).count()
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, **write_metadata(write)})

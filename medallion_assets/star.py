"""The star schema for BI: ``gold/fact_orders`` (daily), ``gold/dim_date`` and ``gold/customer_ltv``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets import orders_contract as orders
from medallion_assets.factory import ReadBackCheck, Run, TableSpec, Verdict
from medallion_assets.partitions import FOLLOWS_UPSTREAM, GOLD_FRESHNESS, follows_upstream_days
from medallion_assets.quality.gate import DayOutcome
from medallion_assets.quality.rules import Rule, RuleSet
from medallion_assets.scd2 import as_of

FACT = "gold/fact_orders"
DIM = "silver/dim_customer"
SILVER = "silver/orders"
PART = orders.PARTITION_COLUMN
UNKNOWN_CUSTOMER = -1
FACT_COLUMNS = (
    "order_id", "customer_sk", "customer_id", "date_key", "order_ts", "status", "region", "currency",
    "amount", "is_sale", PART,
)  # fmt: skip
FACT_RULES = RuleSet(
    FACT,
    columns=FACT_COLUMNS,
    partition_column=PART,
    rules=[
        Rule.not_null("order_id"), Rule.unique("order_id"), Rule.not_null("amount"),
        Rule.compare("amount", "gt", 0), Rule.not_null("date_key"),
    ],
)  # fmt: skip


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


def fact_orders(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """One row per silver order: customer_sk of the customer version valid at order_ts (-1 if unknown, never
    dropped), date_key, status, region, amount, is_sale."""
    # before the engine reads it (see fact_keys_at_publish); a range built in blocks keeps the first block's
    run.report.setdefault(DIM_VERSION, run.store.version(DIM))
    return fact_rows(upstream[SILVER], upstream.get(DIM))


def customer_known(run: Run, published: list[DayOutcome]) -> Verdict:
    """Referential integrity: orders whose customer had no version at order time (kept with customer_sk = -1)."""
    days = [o.day for o in published]
    rows = run.store.read(run.spark, FACT, partition_column=PART, days=days)
    per_day = rows.groupBy(PART).agg(
        F.count(F.lit(1)).alias("rows"), F.sum((F.col("customer_sk") == UNKNOWN_CUSTOMER).cast("long")).alias("unknown")
    )
    counts = {r[PART].isoformat(): (int(r["rows"]), int(r["unknown"] or 0)) for r in per_day.collect()}
    failed = {d: {"unknown_customer_rows": u, "fact_rows": n} for d, (n, u) in counts.items() if u}
    return Verdict(failed, {"unknown_customer_rows": sum(u for _, u in counts.values())})


#: The check, on the dimension and on the fact, that finds fact days keyed to other customer versions.
REKEY_CHECK = "fact_orders_keys_current"
#: The dimension's version a fact step was built on (its metadata).
DIM_VERSION = "dim_customer_version"
#: Changed customers listed in the fact's filter at most; beyond, the whole fact is compared.
MAX_LISTED_CUSTOMERS = 1_000
_KEYING = ("customer_id", "customer_sk", "valid_from", "valid_to")


def _keying(run: Run, version: int | None = None) -> set[tuple]:
    """Which version of which customer is valid when, per the dimension (at ``version``; empty before the first)."""
    if version is not None and version < 0:
        return set()
    rows = run.store.arrow_table(DIM, columns=_KEYING, version=version)
    return set(zip(*(rows.column(c).to_pylist() for c in _KEYING), strict=True))


def fact_keys_current(run: Run, published: list[DayOutcome]) -> Verdict:
    """Published fact days with an order keyed to another customer version than the one now valid at its
    order_ts: customers that landed after their orders, or earlier versions that arrived later; and the days the
    check's last evaluation named, until they are re-keyed (``named_before``)."""
    if not run.store.exists(FACT) or run.written is None:
        return Verdict()
    before = _keying(run, run.written.version_before)  # from the write: a MERGE's commit carries no note in Sail
    changed = sorted({row[0] for row in before ^ _keying(run)})
    pending = named_before(run)
    failed: dict[str, dict[str, int]] = {}
    if changed:
        fact = run.store.read(run.spark, FACT)
        if len(changed) <= MAX_LISTED_CUSTOMERS:
            fact = fact.filter(F.col("customer_id").isin(*changed))
        failed = _stale_days(run, fact)
    if pending:  # every row of those days: what the re-key would have rebuilt
        failed |= _stale_days(run, run.store.read(run.spark, FACT, partition_column=PART, days=pending))
    carried = sorted(set(pending) & set(failed))
    metadata = {
        "changed_customers": len(changed),
        "fact_days_to_rekey": len(failed),
        "carried_forward_days": len(carried),
    }
    return Verdict(failed, metadata)


def named_before(run: Run) -> list[str]:
    """The fact days the dimension's ``fact_orders_keys_current`` named in its last evaluation of another run.

    A re-key run that failed, was refused or never ran leaves them keyed to older versions, and a later write that
    changes none of their customers would not name them again: they are checked until they are current. Empty
    without a Dagster instance (a Pipes step) or history."""
    instance = getattr(run.context, "instance", None)
    if instance is None:
        return []
    key = dg.AssetCheckKey(dg.AssetKey(DIM.split("/")), REKEY_CHECK)
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=20):
        event = record.event.dagster_event if record.event is not None else None
        evaluation = event.event_specific_data if event is not None else None
        if record.run_id == run.run_id or not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue  # this run's own planned evaluation, or an older record without its event
        failed = evaluation.metadata.get("failed")
        return sorted(failed.value or {}) if not evaluation.passed and failed is not None else []
    return []


def _stale_days(run: Run, fact: DataFrame) -> dict[str, dict[str, int]]:
    """The days of ``fact`` rows keyed to another customer version than the dimension's now valid at order_ts."""
    keyed = fact.select("customer_id", "order_ts", F.col("customer_sk").alias("_keyed"), PART)
    now = as_of(keyed, run.store.read(run.spark, DIM), key="customer_id", at="order_ts", sk_name="customer_sk")
    stale = now.filter(F.col("_keyed") != F.col("customer_sk")).groupBy(PART).count().collect()
    return {r[PART].isoformat(): {"rows_to_rekey": int(r["count"])} for r in stale}


def fact_keys_at_publish(run: Run, published: list[DayOutcome]) -> Verdict:
    """The fact's side of the same check: days this step published after a customers run replaced the dimension
    version it was built on (that run's check could not see them yet)."""
    now, built_on = run.store.version(DIM), run.report.get(DIM_VERSION)
    if now is None or now == built_on:
        return Verdict()
    days = [o.day for o in published]
    failed = _stale_days(run, run.store.read(run.spark, FACT, partition_column=PART, days=days))
    return Verdict(failed, {"dimension_version_built_on": built_on, "dimension_version_now": now})


#: On the dimension (its write is what moves the keys): ``medallion run`` and the rekey sensor rebuild the days.
FACT_KEYS_CHECK = ReadBackCheck(
    REKEY_CHECK,
    fact_keys_current,
    "gold/fact_orders days this write left keyed to other customer versions (re-keyed next)",
    blocking=False,
    severity=dg.AssetCheckSeverity.WARN,
)
#: On the fact: a customers run that wrote the dimension while this step ran (re-keyed next as well).
FACT_KEYS_AT_PUBLISH = ReadBackCheck(
    REKEY_CHECK,
    fact_keys_at_publish,
    "days published after the customer dimension they were keyed with was replaced (re-keyed next)",
    blocking=False,
    severity=dg.AssetCheckSeverity.WARN,
)


FACT_SPEC = TableSpec(
    table=FACT,
    build=fact_orders,
    rules=FACT_RULES,
    upstream=(SILVER,),
    lookups=(DIM,),
    partition_column=PART,
    quarantine="quarantine/fact_orders",
    checks=(
        ReadBackCheck(
            "customer_known_at_order_time",
            customer_known,
            customer_known.__doc__ or "",
            blocking=False,
            severity=dg.AssetCheckSeverity.WARN,
        ),
        FACT_KEYS_AT_PUBLISH,
    ),
    freshness=GOLD_FRESHNESS,
    # follows silver's days; days the dimension's changes re-key come from the dimension's check (rekey.py)
    automation=follows_upstream_days(ignoring=DIM),
    sample_columns=("order_id", "customer_id", "amount"),
)


def calendar(spark: SparkSession, first: date, last: date) -> DataFrame:
    """One row per day from ``first`` to ``last``."""
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


def dim_date(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Calendar dimension from the first partition day (or the fact's first day, if earlier) to a year ahead:
    date_key (yyyyMMdd), year, quarter, month, ISO day of week, week of year, weekend flag."""
    first = date.fromisoformat(run.settings.start_date)
    # MEDALLION_START_DATE moved forward leaves the fact's earlier days: their date_keys keep their calendar rows
    first = min(first, run.store.first_day(FACT, partition_column=PART) or first)
    last = datetime.now(timezone.utc).date() + timedelta(days=365)
    run.report.update(first=str(first), last=str(last))
    return calendar(run.spark, first, last)


DIM_DATE_SPEC = TableSpec(
    table="gold/dim_date", build=dim_date, automation=dg.AutomationCondition.on_cron("0 1 * * *", "UTC")
)


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


def customer_ltv(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
    """Per customer, rebuilt from all published silver orders: total sale orders, lifetime value, first and last
    order date, current segment."""
    if SILVER not in upstream:
        raise dg.Failure(
            description=f"gold/customer_ltv is built from every published day of {SILVER}, which does not exist yet "
            f"in {run.store.root_uri}: materialize {SILVER} first"
        )
    return lifetime_values(upstream[SILVER], upstream.get(DIM))


LTV_SPEC = TableSpec(table="gold/customer_ltv", build=customer_ltv, lookups=(SILVER, DIM), automation=FOLLOWS_UPSTREAM)

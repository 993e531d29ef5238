"""Pure DataFrame → DataFrame transforms for the orders tables.

They open no session and write nothing, so they run unchanged on Sail, any Spark Connect endpoint,
Databricks, or classic JVM Spark (the portability tests run them on both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets.quality.rules import REASONS, evaluate, is_valid, rule_stats

LINE_COLUMNS = ("order_date", "_source_file", "_line_number", "value")
_RESERVED = {*contract.FIELDS, *contract.AUDIT_COLUMNS, contract.PARTITION_COLUMN}


# -- bronze ----------------------------------------------------------------------------------------------
def with_line_numbers(rows: DataFrame, *, first: int = 1) -> DataFrame:
    """Add ``_line_number`` to the rows of ONE file read, in read order (``first`` for the first row).

    The only place that numbers lines: a single-file read keeps file order in its row ids on Sail and Spark;
    ``tests/test_transforms.py`` checks it on a large file.
    """
    in_read_order = Window.partitionBy(F.lit(0)).orderBy("_read_order")
    return (
        rows.withColumn("_read_order", F.monotonically_increasing_id())
        .withColumn("_line_number", (F.row_number().over(in_read_order) + (first - 1)).cast("long"))
        .drop("_read_order")
    )


def number_lines(text: DataFrame, *, source_file: str, order_date: str) -> DataFrame:
    """Tag the rows of one file read with ``spark.read.text`` with its name, line numbers and folder date."""
    return with_line_numbers(text).select(
        F.lit(order_date).cast("date").alias("order_date"),
        F.lit(source_file).alias("_source_file"),
        "_line_number",
        F.regexp_replace(F.col("value"), "\r$", "").alias("value"),
    )


def is_blank(value: Column) -> Column:
    return F.trim(value) == ""


def parsed_lines(lines: DataFrame) -> DataFrame:
    """Non-blank lines with ``_json``: the line as a map of field → raw text (null when not a JSON object)."""
    return lines.filter(~is_blank(F.col("value"))).withColumn("_json", F.from_json("value", "map<string,string>"))


def json_keys(parsed: DataFrame) -> DataFrame:
    """The distinct JSON keys seen across ``parsed`` lines (one column, ``key``)."""
    return parsed.select(F.explode(F.map_keys("_json")).alias("key")).distinct()


def extra_columns(keys: Iterable[str]) -> dict[str, str]:
    """Bronze column name for each JSON key outside the contract (snake_case, never clashing)."""
    columns: dict[str, str] = {}
    for key in sorted(k for k in keys if k not in contract.FIELDS):
        name = re.sub(r"[^0-9a-z_]", "_", key.lower()) or "_"
        if name[0].isdigit() or name in _RESERVED:
            name = f"x_{name}"
        while name in columns.values() or name in _RESERVED:
            name = f"{name}_"
        columns[key] = name
    return columns


def bronze_orders(lines: DataFrame, *, extras: Mapping[str, str], ingested_at: datetime) -> DataFrame:
    """Bronze rows from non-blank ``lines``: every contract and extra field as raw text, plus audit columns.

    One struct parse yields every field (a JSON value of another type keeps its JSON text) and one map parse
    tells whether the line is a JSON object at all; Sail re-parses for each reference to a ``from_json``
    expression, so per-field map lookups would parse every line once per field.
    """
    keys = [*contract.FIELDS, *extras]
    struct = ", ".join(f"`{k.replace('`', '``')}` string" for k in keys)
    staged = lines.filter(~is_blank(F.col("value"))).select(
        *LINE_COLUMNS,
        F.from_json("value", struct).alias("_fields"),
        F.from_json("value", "map<string,string>").isNull().alias("_not_object"),
    )
    fields, bad = F.col("_fields"), F.col("_not_object")
    return staged.select(
        F.col("order_date"),
        *(F.when(~bad, fields.getField(f)).alias(f) for f in contract.FIELDS),
        *(F.when(~bad, fields.getField(key)).alias(name) for key, name in extras.items()),
        F.when(bad, F.col("value")).alias("_corrupt_record"),
        F.col("_source_file"),
        F.col("_line_number"),
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
    )


def line_stats(lines: DataFrame) -> DataFrame:
    """Per day: lines read, blank lines, lines that are not JSON objects, lines missing a required field, and
    ``keys``, every key seen in the day's JSON objects (sorted), so one pass serves the gate and key discovery.

    Everything is read off ONE map parse per line. Sail does no common-subexpression elimination and inlines
    projections, so each map lookup in an expression would parse the line again; the required fields are
    therefore tested with a single ``map_filter`` (present = non-blank value), not a lookup per field.
    """
    required = F.array(*(F.lit(f) for f in contract.REQUIRED))
    staged = lines.select(
        "order_date",
        is_blank(F.col("value")).alias("_blank"),
        F.from_json("value", "map<string,string>").alias("_json"),
    )
    present = F.map_filter(
        "_json", lambda k, v: F.array_contains(required, k) & v.isNotNull() & (F.trim(v) != F.lit(""))
    )
    missing = F.size(F.array_distinct(F.map_keys(present))) < len(contract.REQUIRED)
    blank, corrupt = F.col("_blank"), F.col("_json").isNull()
    key_sets = F.collect_set(F.array_sort(F.map_keys("_json")))
    return staged.groupBy("order_date").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum(blank.cast("long")).alias("blank"),
        F.sum((~blank & corrupt).cast("long")).alias("corrupt"),
        F.sum((~blank & ~corrupt & missing).cast("long")).alias("missing_required"),
        F.array_sort(F.array_distinct(F.flatten(key_sets))).alias("keys"),
    )


# -- silver ----------------------------------------------------------------------------------------------
def validated_orders(bronze: DataFrame) -> DataFrame:
    """Bronze rows with typed ``t_*`` columns, ``_quarantine_reasons``, ``_warnings`` and ``_version_rank``.

    ``_version_rank`` is 1 for the row that wins among valid rows of the same order on the same day: the latest
    ``updated_at``, then the later file name, then the later line.
    """
    typed = bronze.select("*", *(col.alias(f"t_{name}") for name, col in contract.typed_columns().items()))
    checked = evaluate(typed, contract.RULES)
    latest_first = Window.partitionBy(contract.PARTITION_COLUMN, "t_order_id", "_valid").orderBy(
        F.col("t_updated_at").desc(), F.col("_source_file").desc(), F.col("_line_number").desc()
    )
    return checked.withColumn("_valid", is_valid()).withColumn("_version_rank", F.row_number().over(latest_first))


def silver_orders(validated: DataFrame) -> DataFrame:
    """One typed row per order and day: the latest valid version."""
    kept = validated.filter(F.col("_valid") & (F.col("_version_rank") == 1))
    return kept.select(
        *(F.col(f"t_{f}").alias(f) for f in contract.FIELDS),
        "_source_file",
        "_line_number",
        "_ingested_at",
        contract.PARTITION_COLUMN,
    )


def quarantined_orders(validated: DataFrame, bronze_columns: Iterable[str], *, quarantined_at: datetime) -> DataFrame:
    """Rows that failed a drop/fail rule, with every source column and every failed rule's name."""
    return validated.filter(~F.col("_valid")).select(
        *bronze_columns,
        F.col(REASONS),
        F.lit(quarantined_at).cast("timestamp").alias("_quarantined_at"),
    )


def silver_stats(validated: DataFrame) -> DataFrame:
    """Per day: rows in, valid, kept (latest versions), warned, fail-rule violations, failures per rule."""
    kept = F.col("_valid") & (F.col("_version_rank") == 1)
    return rule_stats(validated, contract.PARTITION_COLUMN, contract.RULES, kept=kept)


# -- gold ------------------------------------------------------------------------------------------------
def daily_sales(silver: DataFrame) -> DataFrame:
    """One row per day and region: sale orders, revenue, average order value, customers, cancels, returns."""
    sale = F.col("status").isin(*contract.SALE_STATUSES)
    revenue = F.coalesce(F.sum(F.when(sale, F.col("amount"))), F.lit(0)).cast(contract.AMOUNT_TYPE)
    grouped = silver.groupBy(contract.PARTITION_COLUMN, "region").agg(
        F.sum(sale.cast("long")).alias("orders"),
        revenue.alias("revenue"),
        F.countDistinct(F.when(sale, F.col("customer_id"))).alias("customers"),
        F.sum((F.col("status") == "cancelled").cast("long")).alias("cancelled"),
        F.sum((F.col("status") == "returned").cast("long")).alias("returned"),
    )
    aov = F.when(F.col("orders") > 0, (F.col("revenue") / F.col("orders")).cast(contract.AMOUNT_TYPE))
    return grouped.select(
        contract.PARTITION_COLUMN,
        "region",
        "orders",
        "revenue",
        aov.alias("avg_order_value"),
        "customers",
        "cancelled",
        "returned",
    )

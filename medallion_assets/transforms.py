"""Pure DataFrame → DataFrame transforms of the JSON-lines sources and the orders gold table.

They open no session and write nothing, so they run unchanged on Sail, any Spark Connect endpoint,
Databricks, or classic JVM Spark (the portability test runs them on both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medallion_assets.quality.rules import is_valid
from resources.landing_files import WORKING_PREFIX, column_name

FIELDS = f"{WORKING_PREFIX}fields"
KEYS = f"{WORKING_PREFIX}keys"
RANK = f"{WORKING_PREFIX}version_rank"


# -- bronze ---------------------------------------------------------------------------------------------------
def parse_lines(lines: DataFrame, fields: Iterable[str], *, keys_from_map: bool = False) -> DataFrame:
    """Landing lines plus ``t_fields`` (the contract fields of a JSON object line, each as its raw text) and
    ``t_keys`` (the line's top-level keys; null when the line is not a JSON object).

    Two parses per line, both needed once: a struct parse (cheap field access, unlike map lookups) and the key
    list, which tells objects from other JSON and finds fields outside the contract. ``keys_from_map`` takes the
    key list from a map parse instead of ``json_object_keys`` (about twice its cost; for engines without it, see
    ``resources.engine_features``). ``value`` stays only on lines bronze reads it again for (not a JSON object,
    or keys outside the contract): the rest need no copy of their text. Stage the result."""
    fields = list(fields)
    struct = ", ".join(f"`{f.replace('`', '``')}` string" for f in fields)
    value = F.col("value")
    parsed_fields = F.from_json(value, struct)
    if keys_from_map:
        keys = F.map_keys(F.from_json(value, "map<string,string>"))  # null unless the line is one JSON object
    else:
        keys = _keys_of_one_object(value, parsed_fields, fields)
    parsed = lines.select("*", parsed_fields.alias(FIELDS), keys.alias(KEYS))
    reread = F.col(KEYS).isNull() | outside_contract(fields)
    return parsed.withColumn("value", F.when(reread, value))


def _keys_of_one_object(value: Column, parsed_fields: Column, fields: list[str]) -> Column:
    """``json_object_keys`` of a line that is one JSON object the engine's parses read; null for any other line.

    ``json_object_keys`` reads a line's first value only (``{..}{..}``, ``{..} text`` and ``{..},`` have keys),
    and reads nesting deeper than the engine's parses do (Sail 0.7's give up from 127 levels, its key list from
    about 250). The struct parse gives every field null for such a line, so a line with keys and no contract
    field is parsed again as a map, null unless the line is one object the parses read: only those few lines
    (the inner ``CASE``)."""
    keys = F.json_object_keys(value)
    no_field = F.lit(True)
    for name in fields:
        no_field = no_field & parsed_fields.getField(name).isNull()
    readable = F.from_json(value, "map<string,string>").isNotNull()
    return F.when(keys.isNotNull() & no_field, F.when(readable, keys)).otherwise(keys)


def outside_contract(fields: Iterable[str]) -> Column:
    """The parsed line (``t_keys``) has a key that is not one of ``fields``."""
    contract = F.array(*(F.lit(f) for f in fields)).cast("array<string>")
    return F.array_except(F.col(KEYS), contract) != F.array().cast("array<string>")  # not F.size: see rules


def json_keys(parsed: DataFrame) -> set[str]:
    """Every top-level key of the ``parsed`` lines that have one outside the contract: the keys extra columns come
    from. Only those lines (and lines that are not objects) keep their text, so only they are read."""
    with_text = parsed.filter(F.col("value").isNotNull())
    return {r.key for r in with_text.select(F.explode(KEYS).alias("key")).distinct().collect()}


def extra_columns(fields: Iterable[str], reserved: Iterable[str], keys: Iterable[str]) -> dict[str, str]:
    """Bronze column name for each JSON key outside ``fields`` (``column_name``, then ``_`` until it clashes with no
    other and no ``reserved`` one). A key that is its own column name keeps it whatever other keys come (``note`` is
    ``note``, ``Note`` then ``note_``); the others take theirs in sorted order."""
    known, taken = set(fields), set(reserved)
    columns: dict[str, str] = {}
    for key in sorted((k for k in keys if k not in known), key=lambda k: (column_name(k) != k, k)):
        name = column_name(key, taken)
        while name in columns.values() or name in taken:
            name = f"{name}_"
        columns[key] = name
    return columns


def bronze_columns(
    parsed: DataFrame, *, day_column: str, fields: Iterable[str], extras: Mapping[str, str], ingested_at: datetime
) -> DataFrame:
    """Bronze rows from parsed lines: each field's raw JSON text (numbers a double would rewrite come from the
    exact reading, ``_exact``), ``_corrupt_record`` for a line that is not a JSON object, ``_json_types`` (which
    fields are objects, arrays or booleans), audit columns. Fields outside the contract are parsed only on the lines
    that have some."""
    fields = list(fields)
    exact, parsed_fields, keys = F.col("_exact"), F.col(FIELDS), F.col(KEYS)
    extra_values = _extra_values(fields, list(extras))

    def field(key: str, parsed_value: Column) -> Column:
        return F.when(exact.isNotNull(), exact.getItem(key)).otherwise(parsed_value)

    return parsed.select(
        F.col(day_column),
        *(field(f, parsed_fields.getField(f)).alias(f) for f in fields),
        *(field(key, value).alias(name) for (key, name), value in zip(extras.items(), extra_values, strict=True)),
        F.when(keys.isNull() & F.col("value").isNotNull(), F.col("value")).alias("_corrupt_record"),
        "_invalid_utf8",
        "_json_types",
        "_source_file",
        "_line_number",
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
    )


def _extra_values(fields: list[str], keys: list[str]) -> list[Column]:
    """The raw text of each of ``keys`` on the lines with keys outside the contract ``fields``.

    One struct parse, its fields then named by position (``e0``, ``e1``, …): JSON keys are case-sensitive and so
    is the parse, but the engine's field access is not (``note`` and ``Note`` are ambiguous to it)."""
    if not keys:
        return []
    struct = ", ".join(f"`{k.replace('`', '``')}` string" for k in keys)
    positional = ", ".join(f"e{i}: string" for i in range(len(keys)))
    parsed = F.when(outside_contract(fields), F.from_json("value", struct).cast(f"struct<{positional}>"))
    return [parsed.getField(f"e{i}") for i in range(len(keys))]


# -- silver ---------------------------------------------------------------------------------------------------
def typed_rows(bronze: DataFrame, typed: Mapping[str, Column]) -> DataFrame:
    """Bronze rows plus the typed ``t_<field>`` value of every contract field."""
    return bronze.select("*", *(col.alias(f"{WORKING_PREFIX}{name}") for name, col in typed.items()))


def rank_latest(checked: DataFrame, *, day_column: str | None, key: str, order: Iterable[str]) -> DataFrame:
    """``t_version_rank``: 1 for the row that wins among the valid rows of one key (and day) — the latest by
    ``order`` (descending); after rule evaluation."""
    by_day = [F.col(day_column)] if day_column else []
    latest_first = Window.partitionBy(*by_day, F.col(key), is_valid()).orderBy(*(F.col(c).desc() for c in order))
    return checked.withColumn(RANK, F.row_number().over(latest_first))


def silver_columns(kept: DataFrame, *, fields: Iterable[str], day_column: str) -> DataFrame:
    """The published silver row: each field typed, plus where the line came from."""
    return kept.select(
        *(F.col(f"{WORKING_PREFIX}{f}").alias(f) for f in fields),
        "_source_file",
        "_line_number",
        "_ingested_at",
        day_column,
    )


# -- gold -----------------------------------------------------------------------------------------------------
def daily_sales(silver: DataFrame, *, sale_statuses: Iterable[str], amount_type: str) -> DataFrame:
    """One row per day and region: sale orders, revenue, average order value, customers, cancels, returns."""
    sale = F.col("status").isin(*sale_statuses)
    revenue = F.coalesce(F.sum(F.when(sale, F.col("amount"))), F.lit(0)).cast(amount_type)
    grouped = silver.groupBy("order_date", "region").agg(
        F.sum(sale.cast("long")).alias("orders"),
        revenue.alias("revenue"),
        F.countDistinct(F.when(sale, F.col("customer_id"))).alias("customers"),
        F.sum((F.col("status") == "cancelled").cast("long")).alias("cancelled"),
        F.sum((F.col("status") == "returned").cast("long")).alias("returned"),
    )
    aov = F.when(F.col("orders") > 0, (F.col("revenue") / F.col("orders")).cast(amount_type))
    return grouped.select(
        "order_date", "region", "orders", "revenue", aov.alias("avg_order_value"), "customers", "cancelled", "returned"
    )

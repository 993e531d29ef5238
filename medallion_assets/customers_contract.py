"""The landing contract for customers (CSV) and the rules silver/dim_customer enforces."""

from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion_assets.orders_contract import iso_timestamp
from medallion_assets.quality.rules import Rule, RuleSet

SOURCE = "customers"
PARTITION_COLUMN = "ingest_date"
KEY = "customer_id"
FIELDS: tuple[str, ...] = ("customer_id", "name", "email", "segment", "region", "updated_at")
ATTRIBUTES: tuple[str, ...] = ("name", "email", "segment", "region")  # a change in any of these is a new version
SEGMENTS: tuple[str, ...] = ("consumer", "corporate", "enterprise", "public_sector", "small_business")
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
AUDIT_COLUMNS: tuple[str, ...] = ("_source_file", "_line_number", "_ingested_at")


def _present(name: str) -> Column:
    return F.col(name).isNotNull() & (F.trim(F.col(name)) != "")


def _rule(name: str, condition, description: str) -> Rule:
    return Rule(name, condition, description=description)


RULES = RuleSet.build(
    "silver/dim_customer",
    columns=(*FIELDS, *AUDIT_COLUMNS, PARTITION_COLUMN, "t_updated_at"),
    rules=[
        _rule("customer_id_present", lambda: _present("customer_id"), "customer_id is required"),
        _rule("name_present", lambda: _present("name"), "name is non-empty"),
        _rule("email_format", lambda: F.coalesce(F.col("email").rlike(EMAIL), F.lit(False)), "email looks like a@b.c"),
        _rule("segment_known", lambda: F.col("segment").isin(*SEGMENTS), f"segment is one of {', '.join(SEGMENTS)}"),
        _rule("region_present", lambda: _present("region"), "region is non-empty"),
        _rule(
            "updated_at_iso8601",
            lambda: F.col("t_updated_at").isNotNull(),
            "updated_at is ISO-8601 with an offset or Z",
        ),
    ],
)


def typed(bronze) -> Column:
    """Bronze customer rows with ``t_updated_at`` (UTC timestamp or null)."""
    return bronze.withColumn("t_updated_at", iso_timestamp(F.col("updated_at")))

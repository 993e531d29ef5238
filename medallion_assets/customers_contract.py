"""The landing contract for customers (CSV) and the rules bronze/customers and silver/dim_customer enforce.

A record whose header or shape is wrong, or which is not UTF-8, fails that one rule (``csv_header``,
``csv_shape``, ``utf8_valid``); its raw text stays in bronze's ``_raw_record`` (``_invalid_utf8``: its bytes).
"""

from functools import partial

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion_assets.orders_contract import identifier, iso_timestamp, region_fits
from medallion_assets.quality.rules import Rule, RuleSet, present, unpadded

SOURCE = "customers"
PARTITION_COLUMN = "ingest_date"
KEY = "customer_id"
FIELDS: tuple[str, ...] = ("customer_id", "name", "email", "segment", "region", "updated_at")
REQUIRED: tuple[str, ...] = ("customer_id", "updated_at")
ATTRIBUTES: tuple[str, ...] = ("name", "email", "segment", "region")  # a change in any of these is a new version
SEGMENTS: tuple[str, ...] = ("consumer", "corporate", "enterprise", "public_sector", "small_business")
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
AUDIT_COLUMNS: tuple[str, ...] = (
    "_source_file", "_line_number", "_raw_record", "_invalid_utf8", "_csv_error", "_ingested_at",
)  # fmt: skip
COLUMNS: tuple[str, ...] = (*FIELDS, *AUDIT_COLUMNS, PARTITION_COLUMN)


def well_formed() -> Column:
    """The record is UTF-8, under a usable header and of the header's length: its fields can be judged."""
    return F.col("_invalid_utf8").isNull() & F.col("_csv_error").isNull()


def _csv_problem(kind: str) -> Column:
    return ~F.coalesce(F.col("_csv_error").contains(f"{kind}:"), F.lit(False))


def record_rules() -> list[Rule]:
    """Rules on the record itself, shared by bronze's gate and the dimension."""
    return [
        Rule.expr("utf8_valid", lambda: F.col("_invalid_utf8").isNull(), columns=("_invalid_utf8",),
                  description="the record is UTF-8 (its bytes are kept in _invalid_utf8 when not)"),
        Rule.expr("csv_header", partial(_csv_problem, "header"), columns=("_csv_error",),
                  description="the file's header names every contract field once"),
        Rule.expr("csv_shape", partial(_csv_problem, "shape"), columns=("_csv_error",),
                  description="the record has as many fields as the header"),
    ]  # fmt: skip


def on_well_formed(rule: Rule) -> Rule:
    return rule.only_when(well_formed, columns=("_invalid_utf8", "_csv_error"))


BRONZE_RULES = RuleSet(
    "bronze/customers",
    columns=COLUMNS,
    partition_column=PARTITION_COLUMN,
    rules=[
        *record_rules(),
        on_well_formed(
            Rule.expr(
                "required_fields_present",
                lambda: present("customer_id") & present("updated_at"),
                columns=REQUIRED,
                description="customer_id and updated_at are present",
            )
        ),
    ],
)

RULES = RuleSet(
    "silver/dim_customer",
    columns=(*COLUMNS, "t_updated_at"),
    rules=[
        *record_rules(),
        *(
            on_well_formed(rule)
            for rule in (
                Rule.expr("no_control_characters",
                          lambda: ~F.coalesce(F.concat_ws("", *map(F.col, FIELDS)).rlike(CONTROL), F.lit(False)),
                          columns=FIELDS, description="no field holds a control character"),
                Rule.present("customer_id", description="customer_id is required"),
                Rule.present("name", description="name is non-empty"),
                Rule.expr("email_format", lambda: F.coalesce(F.col("email").rlike(EMAIL), F.lit(False)),
                          columns=("email",), description="email looks like a@b.c"),
                Rule.expr("segment_known", lambda: F.col("segment").isin(*SEGMENTS), columns=("segment",),
                          description=f"segment is one of {', '.join(SEGMENTS)}"),
                Rule.present("region", description="region is non-empty"),
                region_fits("region"),
                Rule.not_null("t_updated_at", name="updated_at_iso8601",
                              description="updated_at is ISO-8601 with an offset or Z"),
            )
        ),
    ],
)  # fmt: skip


def typed(bronze: DataFrame) -> DataFrame:
    """Bronze customer rows with the key (``identifier``) and the attributes as silver compares them, without the
    white space around them (a padded re-delivery is no new version), and ``t_updated_at`` (UTC timestamp or null)."""
    attributes = {c: unpadded(F.col(c)) for c in ATTRIBUTES}
    return bronze.withColumns(
        {KEY: identifier(F.col(KEY)), **attributes, "t_updated_at": iso_timestamp(F.col("updated_at"))}
    )

"""The landing contract for orders: fields, how silver types them, and the rules every row must meet.

Bronze keeps every field as the raw text of its JSON value; silver casts with try-cast semantics, so a bad
value becomes a failed rule with a reason, never an exception.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion_assets.quality.rules import Rule, RuleSet

SOURCE = "orders"
PARTITION_COLUMN = "order_date"
KEY = "order_id"
FIELDS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "status",
    "amount",
    "currency",
    "region",
    "updated_at",
)
REQUIRED: tuple[str, ...] = ("order_id", "customer_id", "order_ts", "status", "amount", "region", "updated_at")
STATUSES: tuple[str, ...] = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
SALE_STATUSES: tuple[str, ...] = ("paid", "shipped", "delivered")
DEFAULT_CURRENCY = "USD"
MAX_AMOUNT = 1_000_000
REVIEW_AMOUNT = 50_000
AMOUNT_TYPE = "decimal(18,2)"

# ISO-8601 extended format with seconds and an explicit offset or Z.
ISO_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
EXPONENT = r"[eE]"
CURRENCY = r"^[A-Z]{3}$"

AUDIT_COLUMNS: tuple[str, ...] = ("_corrupt_record", "_source_file", "_line_number", "_ingested_at")


def iso_timestamp(raw: Column) -> Column:
    """UTC timestamp of an ISO-8601 string with offset; null for anything else."""
    return F.when(raw.rlike(ISO_TS), raw.try_cast("timestamp"))


def decimal_amount(raw: Column) -> Column:
    """``amount`` as decimal(18,2) (half-up); null when not a number or too large."""
    text = F.trim(raw)
    via_double = text.try_cast("double").try_cast(AMOUNT_TYPE)
    plain = text.try_cast(AMOUNT_TYPE)
    return F.when(text.rlike(NUMBER), F.when(text.rlike(EXPONENT), via_double).otherwise(plain))


def typed_columns() -> dict[str, Column]:
    """Silver's typed value for each contract field, computed from bronze's raw strings."""
    return {
        "order_id": F.col("order_id"),
        "customer_id": F.col("customer_id"),
        "order_ts": iso_timestamp(F.col("order_ts")),
        "status": F.col("status"),
        "amount": decimal_amount(F.col("amount")),
        "currency": F.coalesce(F.col("currency"), F.lit(DEFAULT_CURRENCY)),
        "region": F.col("region"),
        "updated_at": iso_timestamp(F.col("updated_at")),
    }


def _present(name: str) -> Column:
    return F.col(name).isNotNull() & (F.trim(F.col(name)) != "")


def _numeric(name: str) -> Column:
    return F.coalesce(F.trim(F.col(name)).rlike(NUMBER), F.lit(False))


def _parsed() -> Column:
    return F.col("_corrupt_record").isNull()


def _field_rule(name: str, condition, description: str) -> Rule:
    """A rule on a parsed line's field: lines that did not parse fail only ``json_object``."""
    return Rule(name, lambda: ~_parsed() | condition(), description=description)


def _when_present(name: str, condition) -> Column:
    return ~_present(name) | condition()


def rules() -> tuple[Rule, ...]:
    """Every orders contract rule. Columns prefixed ``t_`` hold the typed values."""
    required = tuple(
        _field_rule(f"{f}_present", lambda f=f: _present(f), f"{f} is required and non-empty") for f in REQUIRED
    )
    return (
        Rule("json_object", _parsed, description="the line is a JSON object"),
        *required,
        _field_rule(
            "order_ts_iso8601",
            lambda: _when_present("order_ts", lambda: F.col("t_order_ts").isNotNull()),
            "order_ts is ISO-8601 with an offset or Z",
        ),
        _field_rule(
            "order_ts_in_folder_date",
            lambda: F.col("t_order_ts").isNull() | (F.to_date(F.col("t_order_ts")) == F.col(PARTITION_COLUMN)),
            "order_ts's UTC date equals the landing folder's date",
        ),
        _field_rule(
            "status_known",
            lambda: _when_present("status", lambda: F.col("status").isin(*STATUSES)),
            f"status is one of {', '.join(STATUSES)}",
        ),
        _field_rule(
            "amount_numeric",
            lambda: _when_present("amount", lambda: _numeric("amount")),
            "amount is a number or numeric string",
        ),
        _field_rule(
            "amount_in_range",
            lambda: (
                ~_numeric("amount")
                | (F.col("t_amount").isNotNull() & (F.col("t_amount") > 0) & (F.col("t_amount") < MAX_AMOUNT))
            ),
            f"0 < amount < {MAX_AMOUNT:,}",
        ),
        _field_rule("currency_code", lambda: F.col("t_currency").rlike(CURRENCY), "currency is 3 upper-case letters"),
        Rule(
            "amount_below_review_limit",
            lambda: F.col("t_amount").isNull() | (F.col("t_amount") < REVIEW_AMOUNT),
            action="warn",
            description=f"amounts of {REVIEW_AMOUNT:,} or more are kept but flagged for review",
        ),
        _field_rule(
            "updated_at_iso8601",
            lambda: _when_present("updated_at", lambda: F.col("t_updated_at").isNotNull()),
            "updated_at is ISO-8601 with an offset or Z",
        ),
    )


#: Columns the rules may read: bronze's raw fields, audit columns, the partition and the typed ``t_*`` values.
RULE_COLUMNS: tuple[str, ...] = (
    *FIELDS,
    *AUDIT_COLUMNS,
    PARTITION_COLUMN,
    *(f"t_{f}" for f in FIELDS),
)
RULES = RuleSet.build("silver/orders", columns=RULE_COLUMNS, rules=rules(), partition_column=PARTITION_COLUMN)

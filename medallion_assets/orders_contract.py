"""The landing contract for orders: fields, how silver types them, and the rules every row must meet.

Bronze keeps every field as the raw text of its JSON value; silver casts with try-cast semantics, so a bad
value becomes a failed rule with a reason, never an exception.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion_assets.json_source import JsonContract, known, on_parsed
from medallion_assets.quality.rules import Rule, unpadded

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
#: the longest region gold/daily_sales takes (its ``region_max_length_64``): silver holds no longer one
REGION_MAX_LENGTH = 64
AMOUNT_TYPE = "decimal(18,2)"

# ISO-8601 extended format with seconds and an explicit offset or Z.
ISO_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
EXPONENT = r"[eE]"
#: places ``without_exponent`` moves a point at most past an amount's digits (decimal(18,2) holds 16 before it)
SHIFT_LIMIT = 40
CURRENCY = r"^[A-Z]{3}$"


def identifier(raw: Column) -> Column:
    """A key as silver compares it: without leading and trailing white space (bronze keeps the text as landed), so
    ``"C1 "``, ``"C1\\t"`` and a ``C1`` after a no-break space are customer ``C1``, not a second one
    (``WHITE_SPACE``)."""
    return unpadded(raw)


def iso_timestamp(raw: Column) -> Column:
    """UTC timestamp of an ISO-8601 string with offset; null for anything else."""
    return F.when(raw.rlike(ISO_TS), raw.try_cast("timestamp"))


def decimal_amount(raw: Column) -> Column:
    """An amount as decimal(18,2), rounded half-up exactly whatever the notation (``1.005``, ``1.005e0`` and
    ``100.5e-2`` are all 1.01); null when not a number or too large."""
    text = unpadded(raw)
    exact = F.when(text.rlike(EXPONENT), without_exponent(text)).otherwise(text)
    return F.when(text.rlike(NUMBER), exact.try_cast(AMOUNT_TYPE))


def without_exponent(number: Column) -> Column:
    """A ``NUMBER`` text written without its exponent, digit for digit (``100.5e-2`` → ``1.005``): the engine casts
    only such text to a decimal exactly (Sail 0.7 casts ``1.005e0`` to null, a double makes it 1.00). The point
    moves at most ``SHIFT_LIMIT`` places past the digits: beyond, the amount is 0.00 or too large either way."""
    whole = F.regexp_extract(number, r"^[+-]?(\d*)", 1)
    digits = F.concat(whole, F.regexp_extract(number, r"^[^eE]*\.(\d*)", 1))
    significant = F.regexp_extract(digits, r"^0*(\d*)$", 1)
    exponent = F.regexp_extract(number, r"[eE]([+-]?\d+)$", 1).try_cast("long")
    # the point's place, counted in significant digits from the first: 1 for 1.005, 0 for 0.05, -1 for 0.005
    point = F.length(whole) - F.length(digits) + F.length(significant) + exponent
    point = F.least(F.greatest(point, F.lit(-SHIFT_LIMIT)), F.length(significant) + SHIFT_LIMIT)
    width = F.length(significant)
    plain = (
        F.when(significant == "", F.lit("0"))
        .when(point <= 0, F.concat(F.lit("0."), F.repeat(F.lit("0"), -point), significant))
        .when(point >= width, F.concat(significant, F.repeat(F.lit("0"), point - width)))
        .otherwise(F.concat(F.substring(significant, 1, point), F.lit("."), F.substring(significant, point + 1, width)))
    )
    return F.concat(F.regexp_extract(number, r"^(-?)", 1), plain)


def numeric(name: str) -> Column:
    """The raw text is a number (possibly quoted, possibly padded)."""
    return F.coalesce(unpadded(F.col(name)).rlike(NUMBER), F.lit(False))


def typed_columns() -> dict[str, Column]:
    """Silver's typed value for each contract field, computed from bronze's raw strings; keys and codes without
    the white space around them (``unpadded``), so a padded ``" paid"`` or ``"north\\t"`` is the code it pads."""
    return {
        "order_id": identifier(F.col("order_id")),
        "customer_id": identifier(F.col("customer_id")),
        "order_ts": iso_timestamp(F.col("order_ts")),
        "status": unpadded(F.col("status")),
        "amount": decimal_amount(F.col("amount")),
        "currency": F.coalesce(unpadded(F.col("currency")), F.lit(DEFAULT_CURRENCY)),
        "region": unpadded(F.col("region")),
        "updated_at": iso_timestamp(F.col("updated_at")),
    }


def region_fits(column: str) -> Rule:
    """``region_max_length_64``: the region (``column``, trimmed) is at most ``REGION_MAX_LENGTH`` characters, as
    gold/daily_sales requires; the orders' and the customers' alike."""
    return Rule.max_length(column, REGION_MAX_LENGTH, name=f"region_max_length_{REGION_MAX_LENGTH}",
                           description=f"region has at most {REGION_MAX_LENGTH} characters")  # fmt: skip


def rules() -> list[Rule]:
    """The orders rules beyond the shared ones (UTF-8, JSON object, required fields present)."""
    return [
        on_parsed(
            Rule.not_null("t_order_ts", name="order_ts_iso8601", description="order_ts is ISO-8601 with an offset or Z")
            .when_present("order_ts")
        ),
        on_parsed(
            Rule.expr(
                "order_ts_in_folder_date",
                lambda: F.col("t_order_ts").isNull() | (F.to_date(F.col("t_order_ts")) == F.col(PARTITION_COLUMN)),
                columns=("t_order_ts", PARTITION_COLUMN),
                description="order_ts's UTC date equals the landing folder's date",
            )
        ),
        known("status", STATUSES),
        on_parsed(
            Rule.expr(
                "amount_numeric", lambda: numeric("amount"), columns=("amount",),
                description="amount is a number or numeric string",
            ).when_present("amount")
        ),
        on_parsed(
            Rule.expr(
                "amount_in_range",
                lambda: F.col("t_amount").isNotNull() & (F.col("t_amount") > 0) & (F.col("t_amount") < MAX_AMOUNT),
                columns=("t_amount",), description=f"0 < amount < {MAX_AMOUNT:,}",
            ).only_when(lambda: numeric("amount"), columns=("amount",))
        ),
        on_parsed(
            Rule.matches("t_currency", CURRENCY, name="currency_code", description="currency is 3 upper-case letters")
        ),
        on_parsed(region_fits("t_region")),
        Rule.compare(
            "t_amount", "lt", REVIEW_AMOUNT, name="amount_below_review_limit", action="warn",
            description=f"amounts of {REVIEW_AMOUNT:,} or more are kept but flagged for review",
        ),
        on_parsed(
            Rule.not_null("t_updated_at", name="updated_at_iso8601",
                          description="updated_at is ISO-8601 with an offset or Z").when_present("updated_at")
        ),
    ]  # fmt: skip


CONTRACT = JsonContract(
    source=SOURCE,
    partition_column=PARTITION_COLUMN,
    key=KEY,
    fields=FIELDS,
    required=REQUIRED,
    typed=typed_columns,
    rules=rules,
    latest_by=("t_updated_at",),
    text_fields=("order_id", "customer_id", "status", "currency", "region"),
)

"""The landing contract for payments: payment events, several per payment (authorized, captured, refunded,
failed); the latest ``paid_at`` wins, ties broken by the later file, then the later line."""

from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion_assets.json_source import JsonContract, known, on_parsed
from medallion_assets.orders_contract import AMOUNT_TYPE, CURRENCY, decimal_amount, identifier, iso_timestamp, numeric
from medallion_assets.quality.rules import Rule, unpadded

SOURCE = "payments"
PARTITION_COLUMN = "payment_date"
FIELDS: tuple[str, ...] = ("payment_id", "order_id", "paid_at", "amount", "currency", "method", "status")
METHODS: tuple[str, ...] = ("card", "bank_transfer", "wallet", "voucher")
STATUSES: tuple[str, ...] = ("authorized", "captured", "refunded", "failed")
MAX_AMOUNT = 1_000_000


def typed_columns() -> dict[str, Column]:
    return {
        "payment_id": identifier(F.col("payment_id")),
        "order_id": identifier(F.col("order_id")),
        "paid_at": iso_timestamp(F.col("paid_at")),
        "amount": decimal_amount(F.col("amount")).cast(AMOUNT_TYPE),
        "currency": unpadded(F.col("currency")),
        "method": unpadded(F.col("method")),
        "status": unpadded(F.col("status")),
    }


def rules() -> list[Rule]:
    return [
        on_parsed(Rule.not_null("t_paid_at", name="paid_at_iso8601", description="paid_at is ISO-8601 with an offset")
                  .when_present("paid_at")),
        on_parsed(Rule.expr(
            "paid_at_in_folder_date",
            lambda: F.col("t_paid_at").isNull() | (F.to_date(F.col("t_paid_at")) == F.col(PARTITION_COLUMN)),
            columns=("t_paid_at", PARTITION_COLUMN), description="paid_at's UTC date equals the landing folder's date",
        )),
        on_parsed(Rule.expr("amount_numeric", lambda: numeric("amount"), columns=("amount",),
                            description="amount is a number or numeric string").when_present("amount")),
        on_parsed(Rule.expr(
            "amount_in_range",
            lambda: F.col("t_amount").isNotNull() & (F.col("t_amount") > 0) & (F.col("t_amount") < MAX_AMOUNT),
            columns=("t_amount",), description=f"0 < amount < {MAX_AMOUNT:,}",
        ).only_when(lambda: numeric("amount"), columns=("amount",))),
        on_parsed(Rule.matches("t_currency", CURRENCY, name="currency_code",
                               description="currency is 3 upper-case letters").when_present("currency")),
        known("method", METHODS),
        known("status", STATUSES),
    ]  # fmt: skip


CONTRACT = JsonContract(
    source=SOURCE,
    partition_column=PARTITION_COLUMN,
    key="payment_id",
    fields=FIELDS,
    required=FIELDS,
    typed=typed_columns,
    rules=rules,
    latest_by=("t_paid_at",),
    text_fields=("payment_id", "order_id", "currency", "method", "status"),
)

"""One job per landing source: the tables a day of its files builds.

Cross-source tables follow by declarative automation instead (``partitions.FOLLOWS_UPSTREAM_DAYS``): the payment
reconciliation of a day once both its orders and payments are in, whichever lands last; the orders fact of the
recent days again when customers change. A source's run therefore never fails on another source's day that has
not landed yet.
"""

from __future__ import annotations

import dagster as dg


def tables(*names: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(n.split("/") for n in names))


#: A day of order files through gold, the fact included (re-keyed later if that day's customers arrive after).
orders_job = dg.define_asset_job(
    "orders_daily",
    selection=tables(
        "bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "quarantine/daily_sales",
        "gold/fact_orders", "quarantine/fact_orders",
    ),
    description="A day of order files through gold.",
)  # fmt: skip
customers_job = dg.define_asset_job(
    "customers_daily",
    selection=tables("bronze/customers", "silver/dim_customer", "quarantine/customers"),
    description="A day of customer files into the SCD2 dimension.",
)
payments_job = dg.define_asset_job(
    "payments_daily",
    selection=tables("bronze/payments", "silver/payments", "quarantine/payments"),
    description="A day of payment events into silver (the reconciliation follows by automation).",
)
JOBS = {"orders": orders_job, "customers": customers_job, "payments": payments_job}

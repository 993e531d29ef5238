"""Jobs the sensors and schedules launch."""

import dagster as dg


def tables(*names: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(n.split("/") for n in names))


#: Everything built from order files, for one day (sensor) or the previous day (schedule).
ORDERS_SELECTION = tables(
    "bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "quarantine/daily_sales",
    "gold/fact_orders", "quarantine/fact_orders",
)  # fmt: skip
orders_job = dg.define_asset_job("orders_daily", selection=ORDERS_SELECTION)

#: Customer files per ingest day; the (unpartitioned) SCD2 dimension follows by its automation condition.
customers_job = dg.define_asset_job("customers_daily", selection=tables("bronze/customers"))

#: Payment events for one day through the reconciliation (which also waits for that day's orders).
payments_job = dg.define_asset_job(
    "payments_daily",
    selection=tables(
        "bronze/payments",
        "silver/payments",
        "quarantine/payments",
        "gold/payment_reconciliation",
        "quarantine/payment_reconciliation",
    ),
)

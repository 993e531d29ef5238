"""The tables a day of each landing source's files builds: one job per source, and the landing job the landing
sensor runs for a day with every source whose files changed (one run, one worker start, instead of one per source).

Cross-source tables follow by declarative automation instead (``partitions.follows_upstream_days``): the payment
reconciliation of a day once both its orders and payments are in, whichever lands last. The orders fact days a
customers run left keyed to other customer versions are rebuilt by the rekey sensors (``rekey.py``). A source's
run therefore never fails on another source's day that has not landed yet.
"""

from __future__ import annotations

import dagster as dg

from medallion_assets import rekey

#: source → the tables a day of its files builds (the orders fact included, re-keyed later if that day's
#: customers arrive after its orders; the payments reconciliation follows by automation).
SOURCE_TABLES: dict[str, tuple[str, ...]] = {
    "orders": (
        "bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "quarantine/daily_sales",
        "gold/fact_orders", "quarantine/fact_orders",
    ),
    "customers": ("bronze/customers", "silver/dim_customer", "quarantine/customers"),
    "payments": ("bronze/payments", "silver/payments", "quarantine/payments"),
}  # fmt: skip
DESCRIPTIONS = {
    "orders": "A day of order files through gold.",
    "customers": "A day of customer files into the SCD2 dimension.",
    "payments": "A day of payment events into silver (the reconciliation follows by automation).",
}


def source_keys(*sources: str) -> list[dg.AssetKey]:
    """The asset keys of ``sources``' tables, in the order above."""
    return [dg.AssetKey(name.split("/")) for source in sources for name in SOURCE_TABLES[source]]


JOBS = {
    source: dg.define_asset_job(
        f"{source}_daily", selection=dg.AssetSelection.assets(*source_keys(source)), description=DESCRIPTIONS[source]
    )
    for source in SOURCE_TABLES
}
orders_job = JOBS["orders"]
#: Every source's tables; a run of it selects the sources of one day whose files changed.
landing_job = dg.define_asset_job(
    "landing_daily",
    selection=dg.AssetSelection.assets(*source_keys(*SOURCE_TABLES)),
    description="A day of landed files, every source whose files changed, in one run (the landing sensor's job).",
)
#: The fact days a customers run left keyed to other customer versions (the rekey sensors' job).
fact_rekey_job = dg.define_asset_job(
    "fact_orders_rekey",
    selection=dg.AssetSelection.assets(*(dg.AssetKey(t.split("/")) for t in rekey.TABLES)),
    description="gold/fact_orders days re-keyed to the customer versions valid at their orders' times.",
)

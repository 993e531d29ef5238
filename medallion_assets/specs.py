"""Every gated table's spec, in lineage order: the Dagster definitions and the Pipes job script both read it."""

from __future__ import annotations

from medallion_assets import customers, orders, payments, star
from medallion_assets.factory import TableSpec

SPECS: list[TableSpec] = [
    orders.BRONZE_SPEC,
    orders.SILVER_SPEC,
    orders.GOLD_SPEC,
    customers.BRONZE_SPEC,
    customers.DIM_SPEC,
    star.FACT_SPEC,
    star.DIM_DATE_SPEC,
    star.LTV_SPEC,
    payments.BRONZE_SPEC,
    payments.SILVER_SPEC,
    payments.RECONCILIATION_SPEC,
]
BY_TABLE: dict[str, TableSpec] = {spec.table: spec for spec in SPECS}

"""Jobs the sensors and schedules launch."""

import dagster as dg

#: Everything built from order files, for one day (sensor) or the previous day (schedule).
ORDERS_SELECTION = dg.AssetSelection.groups("orders")
orders_job = dg.define_asset_job("orders_daily", selection=ORDERS_SELECTION)

#: Customer files per ingest day; the (unpartitioned) SCD2 dimension follows by its automation condition.
customers_job = dg.define_asset_job("customers_daily", selection=dg.AssetSelection.assets(["bronze", "customers"]))

"""Jobs the sensors and schedules launch."""

import dagster as dg

#: Everything built from order files, for one day (sensor) or the previous day (schedule).
ORDERS_SELECTION = dg.AssetSelection.groups("orders")
orders_job = dg.define_asset_job("orders_daily", selection=ORDERS_SELECTION)

#: Everything built from customer files.
CUSTOMERS_SELECTION = dg.AssetSelection.groups("customers")
customers_job = dg.define_asset_job("customers_daily", selection=CUSTOMERS_SELECTION)

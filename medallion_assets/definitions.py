"""The Dagster ``Definitions`` of the medallion lakehouse (``workspace.yaml`` loads ``defs``)."""

from __future__ import annotations

import dagster as dg

from medallion_assets.bronze import bronze_orders
from medallion_assets.customers import bronze_customers, dim_customer
from medallion_assets.gold import gold_daily_sales
from medallion_assets.jobs import customers_job, orders_job
from medallion_assets.maintenance import maintenance_job
from medallion_assets.quality.checks import pandera_check
from medallion_assets.quality.schemas import GoldDailySales, SilverOrders
from medallion_assets.silver import silver_orders
from medallion_assets.star import customer_ltv, dim_date, fact_orders
from resources.alerts import AlertWebhook
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from sensors.alert_sensors import quality_gate_alert, run_failure_alert
from sensors.landing_sensors import automation_status, make_landing_sensor
from sensors.schedules import maintenance_schedule, orders_daily_schedule

ORDERS_ASSETS = [bronze_orders, silver_orders, gold_daily_sales]
ASSETS = [*ORDERS_ASSETS, bronze_customers, dim_customer, fact_orders, dim_date, customer_ltv]
CHECKS = [
    pandera_check(silver_orders, "silver/orders", SilverOrders, "order_date"),
    pandera_check(gold_daily_sales, "gold/daily_sales", GoldDailySales, "order_date"),
]
JOBS = [orders_job, customers_job, maintenance_job]
SENSORS = [
    make_landing_sensor("orders", orders_job),
    make_landing_sensor("customers", customers_job),
    run_failure_alert,
    quality_gate_alert,
    # Declarative automation: the SCD2 dimension and customer LTV follow their upstreams, dim_date is daily.
    dg.AutomationConditionSensorDefinition(
        "medallion_automation", target=dg.AssetSelection.all(), default_status=automation_status()
    ),
]
SCHEDULES = [orders_daily_schedule, maintenance_schedule]


def build_resources() -> dict[str, object]:
    """Engine, table store, landing zone and alert webhook, configured from the environment."""
    return {
        "engine": SparkEngine.from_env(),
        "store": DeltaTableStore(),
        "landing": LandingZone(),
        "alerts": AlertWebhook.from_env(),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=JOBS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources=build_resources(),
    # One process per run: the embedded Sail server starts once and every step shares it.
    executor=dg.in_process_executor,
)

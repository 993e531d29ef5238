"""The Dagster ``Definitions`` of the medallion lakehouse (``workspace.yaml`` loads ``defs``)."""

from __future__ import annotations

import dagster as dg

from medallion_assets import orders
from medallion_assets.factory import RUN_LOG_KEY, TableSpec, gated_asset
from medallion_assets.jobs import JOBS as SOURCE_JOBS
from medallion_assets.jobs import SOURCE_TABLES, fact_rekey_job, landing_job
from medallion_assets.maintenance import maintenance_job
from medallion_assets.partitions import DAILY, SETTINGS
from medallion_assets.pipes import pipes_asset
from medallion_assets.quality.checks import pandera_check
from medallion_assets.quality.schemas import GoldDailySales, SilverOrders
from medallion_assets.quiet import chosen_dagster_apis
from medallion_assets.specs import SPECS
from resources.alerts import AlertWebhook
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.pipes import PipesLauncher, check_workers
from resources.run_guard import RunGuard
from sensors.alert_sensors import quality_gate_alert, run_failure_alert
from sensors.landing_sensors import automation_status, make_landing_sensor
from sensors.rekey_sensors import REKEY_SENSORS
from sensors.run_guard_sensor import run_guard_sensor
from sensors.schedules import maintenance_schedule, orders_daily_schedule

#: In process, each asset's body publishes its table; in a Pipes mode it submits the same step as a job.
IN_PROCESS = SETTINGS.execution == "in_process"


def table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """``spec``'s multi-asset for the execution mode in force (``MEDALLION_EXECUTION``)."""
    return gated_asset(spec) if IN_PROCESS else pipes_asset(spec)


SETTINGS.check_thresholds(spec.table for spec in SPECS)
TABLES: dict[str, dg.AssetsDefinition] = {spec.table: table_asset(spec) for spec in SPECS}
ORDERS_ASSETS = [TABLES["bronze/orders"], TABLES["silver/orders"], TABLES["gold/daily_sales"]]
RUN_LOG = dg.AssetSpec(
    RUN_LOG_KEY,
    deps=[spec.key for spec in SPECS],
    group_name="monitoring",
    kinds={"delta"},
    description="The run log: one row per asset-partition attempt, published or refused (run, mode, rows in and "
    "written, quarantined, superseded, pass rate, threshold, verdict, Delta version, error).",
)
ASSETS = [*TABLES.values(), RUN_LOG]
with chosen_dagster_apis():
    CHECKS = [
        pandera_check(orders.SILVER_SPEC.key, "silver/orders", SilverOrders, DAILY, "order_date"),
        pandera_check(orders.GOLD_SPEC.key, "gold/daily_sales", GoldDailySales, DAILY, "order_date"),
    ]
JOBS = [*SOURCE_JOBS.values(), landing_job, fact_rekey_job, maintenance_job]
SENSORS = [
    make_landing_sensor(list(SOURCE_TABLES), landing_job),
    run_failure_alert,
    quality_gate_alert,
    run_guard_sensor,
    *REKEY_SENSORS,
    # Declarative automation: the SCD2 dimension and customer LTV follow their upstreams, dim_date is daily.
    dg.AutomationConditionSensorDefinition(
        "medallion_automation",
        target=dg.AssetSelection.all(),
        default_status=automation_status(),
        minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
    ),
]
SCHEDULES = [orders_daily_schedule, maintenance_schedule]


def build_resources() -> dict[str, object]:
    """Engine, table store, landing zone, settings, alert webhook and, in a Pipes mode, the Pipes launcher,
    configured from the environment (the store's object-store credentials as ``dagster.EnvVar``: ``AWS_*`` for an
    ``s3://`` lakehouse root); a bad number (the pool wait, the connect timeout, worker counts) or a Databricks mode
    missing a variable fails here, naming it."""
    check_workers()  # as every numeric setting, in every execution mode
    return {
        "engine": SparkEngine.from_env(),
        "store": DeltaTableStore.for_root(SETTINGS.lakehouse_root),
        "landing": LandingZone(root=SETTINGS.landing_root),
        "settings": SETTINGS,
        "alerts": AlertWebhook.from_env(),
        "run_guard": RunGuard.from_env(),
        **({} if IN_PROCESS else {"pipes": PipesLauncher.from_env(SETTINGS.execution)}),
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

"""The Dagster ``Definitions`` of the medallion lakehouse (``workspace.yaml`` loads ``defs``)."""

from __future__ import annotations

import dagster as dg

from medallion_assets.bronze import bronze_orders
from medallion_assets.gold import gold_daily_sales
from medallion_assets.silver import silver_orders
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone

ASSETS = [bronze_orders, silver_orders, gold_daily_sales]


def build_resources() -> dict[str, object]:
    """Engine, table store and landing zone, configured from the environment."""
    return {"engine": SparkEngine.from_env(), "store": DeltaTableStore(), "landing": LandingZone()}


defs = dg.Definitions(
    assets=ASSETS,
    resources=build_resources(),
    # One process per run: the embedded Sail server starts once and every step shares it.
    executor=dg.in_process_executor,
)

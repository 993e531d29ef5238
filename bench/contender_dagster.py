"""The orders graph through Dagster: ``dagster.materialize`` over the project's orders assets, their checks and
the project's resources.

One partition, or a day range as ONE run (the range tags a single-run backfill carries), on a fresh embedded
Sail server, into a Dagster instance kept in ``instance_dir`` so successive runs share history: the repository's
``dagster.yaml`` (``MedallionInstance``: SQLite under the folder), the instance a user's ``make dev`` and
``medallion run`` get.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import REPO
from medallion_assets import definitions
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.run_guard import RunGuard
from resources.settings import Settings

#: The orders graph only: the project's other assets (customers, star schema) are not part of this benchmark.
ORDERS = tuple(definitions.ORDERS_ASSETS)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def run_kwargs(first: str, last: str) -> dict[str, Any]:
    """``partition_key`` for one day; the single-run range tags for several."""
    return {"partition_key": first} if first == last else {"tags": {RANGE_START: first, RANGE_END: last}}


def orders_graph() -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The three orders assets and the project's separate checks on them (pandera)."""
    keys = {key for asset in ORDERS for key in asset.keys}
    checks = [c for c in definitions.CHECKS if all(k.asset_key in keys for k in c.check_keys)]
    return [*ORDERS, *checks]


def asset_seconds(result: dg.ExecuteInProcessResult) -> dict[str, float]:
    """Each asset's ``seconds`` metadata (a range run repeats it on every partition's event: taken once)."""
    seconds: dict[str, float] = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if "seconds" in meta:
            seconds[event.asset_key.to_user_string()] = float(meta["seconds"].value)
    return seconds


def product_home(instance_dir: str) -> str:
    """``instance_dir`` as a Dagster home with the repository's ``dagster.yaml`` (written once)."""
    home = Path(instance_dir)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return str(home)


def run(landing: str, lakehouse: str, instance_dir: str, first: str, last: str) -> dict[str, Any]:
    """Materialize bronze, silver and gold (with every check) for ``first``..``last``; time the run."""
    resources = {
        "engine": SparkEngine(mode="sail"),
        "store": DeltaTableStore(root=lakehouse),
        "landing": LandingZone(root=landing),
        "settings": Settings.from_env(),
        "run_guard": RunGuard(),
    }
    instance = dg.DagsterInstance.from_config(product_home(instance_dir))
    started = time.perf_counter()
    result = dg.materialize(
        orders_graph(), resources=resources, instance=instance, raise_on_error=False, **run_kwargs(first, last)
    )
    seconds = time.perf_counter() - started
    steps = {
        s.step_key: round((s.end_time or 0) - (s.start_time or 0), 3)
        for s in instance.get_run_step_stats(result.run_id)
    }
    checks = result.get_asset_check_evaluations()
    return {
        "success": result.success,
        "run_id": result.run_id,
        "first": first,
        "last": last,
        "seconds": round(seconds, 3),
        "asset_seconds": asset_seconds(result),
        "step_seconds": steps,
        "checks_passed": sum(c.passed for c in checks),
        "checks_failed": sorted({c.check_name for c in checks if not c.passed}),
    }

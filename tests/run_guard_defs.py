"""A tiny code location for the run-guard tests: two assets sharing one pool, a sleep, and the guard.

``dagster asset materialize -m tests.run_guard_defs --select hold_pool,after_hold`` (from the repo root);
``RUN_GUARD_TEST_SLEEP`` is how long ``hold_pool`` holds the pool's only slot (``dagster.yaml``: limit 1), cut
short once the file named by ``RUN_GUARD_TEST_RELEASE`` exists.
"""

import os
import time
from pathlib import Path

import dagster as dg

from resources.run_guard import RunGuard
from sensors.run_guard_sensor import run_guard_sensor

POOL = "run_guard_test_pool"


@dg.asset(pool=POOL)
def hold_pool(context: dg.AssetExecutionContext, run_guard: RunGuard) -> None:
    seconds = float(os.environ.get("RUN_GUARD_TEST_SLEEP", "0"))
    release = Path(os.environ.get("RUN_GUARD_TEST_RELEASE", "/nonexistent/release"))
    context.log.info(f"holding pool {POOL} for {seconds:g} s or until {release} exists")
    until = time.monotonic() + seconds
    while time.monotonic() < until and not release.exists():
        time.sleep(0.2)


@dg.asset(pool=POOL, deps=[hold_pool])
def after_hold(run_guard: RunGuard) -> None:
    """A second step in the same pool: the slot is taken again after hold_pool freed it."""


defs = dg.Definitions(
    assets=[hold_pool, after_hold],
    sensors=[run_guard_sensor],
    resources={"run_guard": RunGuard()},
    executor=dg.in_process_executor,
)

"""Shared fixtures: one real Sail server per test session, temp landing and lakehouse roots.

The suite's settings are its own: what the calling shell exports (``make`` exports the roots and
``MEDALLION_START_DATE`` for ``make dev``) is removed here, before the definitions first load, so ``make test``
and a plain ``pytest`` see the same defaults. It is done in this file, not in ``tests/__init__.py``, because the
subprocesses the tests start (``python -m tests.crash_points``) import the package with settings of their own."""

from __future__ import annotations

import os

for _name in [n for n in os.environ if n.startswith("MEDALLION_") or n == "DAGSTER_HOME"]:
    del os.environ[_name]

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

from medallion_assets.definitions import ASSETS, CHECKS, ORDERS_ASSETS
from medallion_assets.sample_data import GenerationReport, generate
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.run_guard import RunGuard
from resources.settings import Settings


@pytest.fixture(scope="session")
def sail_url() -> Iterator[str]:
    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    yield f"sc://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def spark(sail_url: str) -> Iterator[SparkSession]:
    session = SparkSession.builder.remote(sail_url).create()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    yield session
    session.stop()


@pytest.fixture
def landing_root(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def store(tmp_path: Path) -> DeltaTableStore:
    return DeltaTableStore(root=str(tmp_path / "lakehouse"))


@pytest.fixture
def resources(sail_url: str, store: DeltaTableStore, landing_root: Path) -> dict[str, object]:
    """The real resources, on the shared Sail server and temp roots."""
    return {
        "engine": SparkEngine(mode="connect", remote=sail_url),
        "store": store,
        "landing": LandingZone(root=str(landing_root)),
        "settings": Settings.from_env(),
        "run_guard": RunGuard(),
    }


@pytest.fixture
def sample(landing_root: Path) -> GenerationReport:
    """Three days of faulty sample data, 200 orders a day (every fault kind on every day)."""
    return generate(landing_root, days=3, orders_per_day=200, seed=7)


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def materialize_days(
    resources: dict[str, object],
    first: str,
    last: str | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: str | dg.AssetSelection | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the orders graph (or ``selection``) for one day or a day range in one run, without raising."""
    kwargs: dict[str, object] = (
        {"partition_key": first, "tags": dict(tags or {})}
        if last in (None, first)
        else {"tags": {**range_tags(first, last), **(tags or {})}}
    )
    return dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        instance=instance,
        selection=selection or dg.AssetSelection.assets(*ORDERS_ASSETS),
        raise_on_error=False,
        **kwargs,
    )

"""Freshness policies are attached and evaluated by a real Dagster daemon, read back through GraphQL."""

from pathlib import Path

import dagster as dg

from medallion_assets.sample_data import generate

from .conftest import materialize_days
from .services import DagsterServices, wait_until

QUERY = """
query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { __typename
  ... on AssetNode { internalFreshnessPolicy { __typename }
                     freshnessStatusInfo { freshnessStatus } } } }
"""


def status(dagster: DagsterServices, path: list[str]) -> tuple[str, str | None]:
    node = dagster.graphql(QUERY, {"path": path})["assetNodeOrError"]
    info = node["freshnessStatusInfo"]
    return node["internalFreshnessPolicy"]["__typename"], info["freshnessStatus"] if info else None


def test_freshness_is_evaluated_by_the_daemon(resources, tmp_path: Path, landing_root: Path) -> None:
    generate(landing_root, days=1, orders_per_day=100, seed=3)
    lake = Path(resources["store"].root)
    env = {"FRESHNESS_DAEMON_INTERVAL_SECONDS": "3"}
    with DagsterServices(landing_root, lake, home=tmp_path / "home", env=env) as dagster:
        with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
            assert materialize_days(resources, "2024-01-01", instance=instance).success
        silver = wait_until(
            lambda: (s := status(dagster, ["silver", "orders"]))[1] not in (None, "UNKNOWN") and s,
            timeout=120,
            what="silver/orders freshness to be evaluated",
        )
        assert silver == ("TimeWindowFreshnessPolicy", "HEALTHY")  # just materialized: inside 3 h
        gold = wait_until(
            lambda: (s := status(dagster, ["gold", "daily_sales"]))[1] not in (None, "UNKNOWN") and s,
            timeout=120,
            what="gold/daily_sales freshness to be evaluated",
        )
        assert gold[0] == "CronFreshnessPolicy" and gold[1] in ("HEALTHY", "WARNING", "DEGRADED")

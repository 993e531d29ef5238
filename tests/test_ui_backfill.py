"""A backfill of the whole orders graph, launched as the UI launches it, on the real webserver and daemon."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
from deltalake import DeltaTable

from medallion_assets.definitions import defs
from medallion_assets.sample_data import generate

from .services import DagsterServices, wait_until

DAYS = [f"2024-01-0{d}" for d in range(1, 8)]
ASSETS = ("bronze/orders", "silver/orders", "gold/daily_sales")
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

#: The mutation the UI's "Launch backfill" button sends.
LAUNCH = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""
BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } runs { id status tags { key value } } }
    ... on Error { message }
  }
}
"""


CHECKS_LIST = """
query { assetNodes { assetKey { path } assetChecksOrError { __typename
  ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } } }
"""


def checks_list_states(dagster: DagsterServices) -> dict[tuple[str, str], str | None]:
    """The state the UI's checks list shows for each check: its execution for the latest materialization."""
    states = {}
    for node in dagster.graphql(CHECKS_LIST)["assetNodes"]:
        for check in node["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            states[("/".join(node["assetKey"]["path"]), check["name"])] = execution and execution["status"]
    return states


def table_days(lakehouse: Path, name: str) -> list[str]:
    return sorted(DeltaTable(str(lakehouse / name)).to_pandas()["order_date"].astype(str).unique())


def launch_backfill(dagster: DagsterServices) -> str:
    params = {
        "partitionNames": DAYS,
        "assetSelection": [{"path": name.split("/")} for name in ASSETS],
        "title": "ui backfill test",
    }
    launched = dagster.graphql(LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def finished_backfill(dagster: DagsterServices, backfill_id: str) -> dict[str, Any] | None:
    dagster.check_alive()
    backfill = dagster.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    return backfill if backfill["status"] in TERMINAL else None


def test_ui_backfill_of_the_whole_graph(tmp_path: Path) -> None:
    landing, lakehouse, home = tmp_path / "landing", tmp_path / "lakehouse", tmp_path / "home"
    generate(landing, days=len(DAYS), orders_per_day=150, seed=23)
    with DagsterServices(landing, lakehouse, home=home, env={"MEDALLION_AUTOMATION": "off"}) as dagster:
        backfill_id = launch_backfill(dagster)
        try:
            backfill = wait_until(
                lambda: finished_backfill(dagster, backfill_id), timeout=300, interval=2, what="the backfill"
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{dagster.log_tail('daemon')}") from exc
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, dagster.log_tail("daemon"))
        listed = checks_list_states(dagster)

    runs = backfill["runs"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    run_ids = {r["id"] for r in runs}
    assert all({"key": "dagster/backfill", "value": backfill_id} in r["tags"] for r in runs)

    for name in ASSETS:
        assert table_days(lakehouse, name) == DAYS, name

    log = DeltaTable(str(lakehouse / "monitoring/pipeline_runs")).to_pandas()
    assert Counter(zip(log["asset"], log["partition"], strict=True)) == Counter((a, d) for a in ASSETS for d in DAYS)
    assert log["passed"].all() and (log["run_mode"] == "backfill").all(), log[["asset", "partition", "passed"]]
    assert set(log["run_id"]) <= run_ids

    expected_checks = {k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.to_user_string() in ASSETS}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        evaluations = [
            entry.dagster_event.event_specific_data
            for run_id in run_ids
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
    assert {e.asset_check_key for e in evaluations} == expected_checks
    assert [e for e in evaluations if not e.passed] == []
    for name in ASSETS:  # a per-day verdict for every day
        gate = dg.AssetCheckKey(dg.AssetKey(name.split("/")), "quality_gate")
        assert {e.partition for e in evaluations if e.asset_check_key == gate} - {None} == set(DAYS), name
    # What the UI shows: every check of every backfilled day succeeded (none left planned, i.e. "skipped"),
    # and each check's state in the checks list is its latest evaluation's.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in expected_checks:
            history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
            states = {r.partition: r.status.value for r in history if r.partition is not None}
            assert states == dict.fromkeys(DAYS, "SUCCEEDED"), (key, states)
    assert {k: v for k, v in listed.items() if k[0] in ASSETS} == dict.fromkeys(
        {(k.asset_key.to_user_string(), k.name) for k in expected_checks}, "SUCCEEDED"
    )

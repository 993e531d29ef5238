"""c. Long backfill: N days through a real dagster-webserver + dagster-daemon, launched the two ways the UI can.

``backfill_365_days_seconds``: the launch dialog's "Launch as… Single run" — the ``launchPipelineExecution``
mutation the UI sends, one run carrying the day range in its tags, started by the run queue (checked every 2 s).
Wall time runs from the mutation to the run's end.

``daemon_backfill_365_days_seconds``: "Launch backfill" — the ``launchPartitionBackfill`` mutation; the backfill
daemon creates the (single, by the assets' backfill policy) run on its next loop and marks the backfill done on a
later one. Dagster runs that loop every 30 s (``DEFAULT_DAEMON_INTERVAL_SECONDS``, not configurable), so up to
a minute of this figure is waiting. Wall time runs from the mutation to the backfill's observed end, on a fresh
lakehouse and instance. Engine time is the sum of the assets' ``seconds`` metadata
(taken once per run and asset: a range run repeats it on every partition's event); orchestration overhead is
wall − engine, split into: backfill daemon pickup (its loop runs every 30 s), queue + run-worker launch, run
start-up before the first step, Dagster's own time inside the asset steps, check steps, and completion lag
(the daemon marks the backfill done on its next loop).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from bench import datagen
from bench.common import Context, show, target, write_result
from deploy.postgres import throwaway_cluster
from tests.services import REPO, DagsterServices, environ, free_port, wait_until

DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"

NAME = "backfill"
START = date(2024, 1, 1)
ASSETS = (["bronze", "orders"], ["silver", "orders"], ["gold", "daily_sales"])
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RUN_ENDED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }
"""
RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status creationTime startTime endTime
  tags { key value } stepStats { stepKey status startTime endTime } } } }
"""

LAUNCH = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }
"""
STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status timestamp endTimestamp numPartitions }
  ... on PythonError { message } } }
"""
RUNS = """
query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) { __typename
  ... on Runs { results { runId status creationTime startTime endTime
    tags { key value } stepStats { stepKey status startTime endTime } } } } }
"""


def engine_seconds(home: str, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Per run: each asset's ``seconds`` metadata, read from the instance's event log."""
    out: dict[str, dict[str, float]] = {}
    with dg.DagsterInstance.from_config(home) as instance:
        for run_id in run_ids:
            records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
            per_asset: dict[str, float] = {}
            for record in records:
                mat = record.event_log_entry.asset_materialization
                if mat is not None and "seconds" in mat.metadata:
                    per_asset[mat.asset_key.to_user_string()] = float(mat.metadata["seconds"].value)
            out[run_id] = per_asset
    return out


def overhead_parts(launched: float, ended: float, runs: list[dict[str, Any]], engine: float) -> dict[str, float]:
    """Where the non-engine time went, from run and step timestamps (epoch seconds)."""
    created = [r["creationTime"] for r in runs if r["creationTime"]]
    starts = [r["startTime"] for r in runs if r["startTime"]]
    ends = [r["endTime"] for r in runs if r["endTime"]]
    steps = [s for r in runs for s in r["stepStats"] if s["startTime"] and s["endTime"]]
    asset_steps = [s for s in steps if not s["stepKey"].endswith("_pandera_schema")]
    first_step = min((s["startTime"] for s in steps), default=None)
    return {
        "launch_to_first_run_created": round(min(created) - launched, 3) if created else 0.0,
        "first_run_created_to_started": round(min(starts) - min(created), 3) if starts and created else 0.0,
        "run_start_to_first_step": round(first_step - min(starts), 3) if starts and first_step else 0.0,
        "asset_steps_minus_engine": round(sum(s["endTime"] - s["startTime"] for s in asset_steps) - engine, 3),
        "check_steps": round(sum(s["endTime"] - s["startTime"] for s in steps if s not in asset_steps), 3),
        "last_run_end_to_backfill_end": round(ended - max(ends), 3) if ends else 0.0,
    }


def run_summary(r: dict[str, Any], per_run: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "run_id": r["runId"],
        "status": r["status"],
        "partition_range": {t["key"]: t["value"] for t in r["tags"] if "partition" in t["key"]},
        "seconds": round((r["endTime"] or 0) - (r["startTime"] or 0), 3),
        "queued_seconds": round((r["startTime"] or 0) - (r["creationTime"] or 0), 3),
        "asset_seconds": per_run.get(r["runId"], {}),
        "step_seconds": {s["stepKey"]: round((s["endTime"] or 0) - (s["startTime"] or 0), 3) for s in r["stepStats"]},
    }


@contextlib.contextmanager
def postgres_instance() -> Iterator[dict[str, str]]:
    """The ``MEDALLION_PG_*`` of the production instance (``deploy/dagster.yaml``) on a throwaway server."""
    with throwaway_cluster(free_port()) as (_, server):
        target = server.with_db("bench")
        target.ensure_database()
        yield target.env()


def single_run(
    landing: Path,
    base: Path,
    days: list[str],
    *,
    instance_yaml: Path = REPO / "dagster.yaml",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The UI's "Launch as… Single run": one run with the range in its tags, through the run queue."""
    lakehouse, home = base / "lakehouse", base / "home"
    t0 = time.perf_counter()
    with DagsterServices(landing, lakehouse, home=home, instance_yaml=instance_yaml, env=env or {}) as dagster:
        startup = time.perf_counter() - t0
        params = {
            "selector": {
                "repositoryLocationName": "medallion",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": p} for p in ASSETS],
            },
            "executionMetadata": {
                "tags": [
                    {"key": "dagster/asset_partition_range_start", "value": days[0]},
                    {"key": "dagster/asset_partition_range_end", "value": days[-1]},
                ]
            },
        }
        launched_at = time.time()
        launched = dagster.graphql(LAUNCH_RUN, {"params": params})["launchPipelineExecution"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"single-run launch failed: {launched}")
        run_id = launched["run"]["runId"]

        def ended() -> dict[str, Any] | None:
            dagster.check_alive()
            found = dagster.graphql(RUN, {"id": run_id})["runOrError"]
            return found if found.get("status") in RUN_ENDED else None

        found = wait_until(ended, timeout=3_600, what=f"run {run_id}", interval=0.25)
    if found["status"] != "SUCCESS":
        raise RuntimeError(f"the single range run ended {found['status']}; see {home}")
    wall = round(found["endTime"] - launched_at, 3)
    with environ({**os.environ, **(env or {})}):
        per_run = engine_seconds(str(home), [run_id])
    engine = round(sum(per_run[run_id].values()), 3)
    return {
        "services_startup_seconds": round(startup, 2),
        "wall_seconds": wall,
        "engine_seconds": engine,
        "overhead_seconds": round(wall - engine, 3),
        "overhead_parts": overhead_parts(launched_at, found["endTime"], [found], engine),
        "runs": [run_summary(found, per_run)],
    }


def daemon_backfill(landing: Path, base: Path, days: list[str]) -> dict[str, Any]:
    """The UI's "Launch backfill": an asset backfill the backfill daemon drives."""
    lakehouse, home = base / "lakehouse", base / "home"
    t0 = time.perf_counter()
    with DagsterServices(landing, lakehouse, home=home) as dagster:
        startup = time.perf_counter() - t0
        params = {
            "partitionNames": days,
            "assetSelection": [{"path": p} for p in ASSETS],
            "title": f"bench {len(days)} days",
        }
        launched_at = time.time()
        launched = dagster.graphql(LAUNCH, {"params": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill launch failed: {launched}")
        backfill_id = launched["backfillId"]

        def finished() -> dict[str, Any] | None:
            dagster.check_alive()
            status = dagster.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            return status if status.get("status") in TERMINAL else None

        status = wait_until(finished, timeout=3_600, what=f"backfill {backfill_id}", interval=0.25)
        ended_at = time.time()
        runs = dagster.graphql(RUNS, {"id": backfill_id})["runsOrError"]["results"]
    if status["status"] not in ("COMPLETED_SUCCESS", "COMPLETED"):
        raise RuntimeError(f"backfill ended {status['status']}; see {home}")
    wall = round(ended_at - launched_at, 3)
    per_run = engine_seconds(str(home), [r["runId"] for r in runs])
    engine = round(sum(sum(v.values()) for v in per_run.values()), 3)
    return {
        "backfill_id": backfill_id,
        "status": status["status"],
        "services_startup_seconds": round(startup, 2),
        "wall_seconds": wall,
        "server_seconds": round((status["endTimestamp"] or 0) - (status["timestamp"] or 0), 3),
        "engine_seconds": engine,
        "overhead_seconds": round(wall - engine, 3),
        "overhead_parts": overhead_parts(launched_at, ended_at, runs, engine),
        "runs": [run_summary(r, per_run) for r in runs],
    }


def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    base = ctx.workdir / NAME
    shutil.rmtree(base, ignore_errors=True)
    landing = base / "landing"
    gen = datagen.generate(landing, days=sizes.backfill_days, orders_per_day=sizes.backfill_orders_per_day, start=START)
    days = [(START + timedelta(days=i)).isoformat() for i in range(sizes.backfill_days)]
    single = single_run(landing, base / "single-run", days)
    with postgres_instance() as pg_env:  # the same run on the production instance: events go to PostgreSQL
        on_postgres = single_run(landing, base / "single-run-pg", days, instance_yaml=DEPLOY_YAML, env=pg_env)
    daemon = daemon_backfill(landing, base / "daemon", days)
    wall = single["wall_seconds"]
    result = {
        "scenario": NAME,
        "data": {**gen.__dict__, "orders_per_day": sizes.backfill_orders_per_day},
        "single_run": single,
        "single_run_postgres": on_postgres,
        "daemon_backfill": daemon,
        "backfill_365_days_seconds": wall,
        "backfill_365_days_postgres_seconds": on_postgres["wall_seconds"],
        "daemon_backfill_365_days_seconds": daemon["wall_seconds"],
        "targets": {"backfill_365_days_seconds": target(wall, 60, "<=", "≤ 60 s")},
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"c. backfill: {len(days)} days × {sizes.backfill_orders_per_day:,} orders ({gen.lines:,} lines)",
        [
            ("single run (launch → done)", f"{wall:.1f} s  (target ≤ 60 s)"),
            ("  engine (assets' seconds)", f"{single['engine_seconds']:.1f} s"),
            ("  orchestration", f"{single['overhead_seconds']:.1f} s  {single['overhead_parts']}"),
            ("single run, PostgreSQL instance", f"{on_postgres['wall_seconds']:.1f} s"),
            ("  orchestration", f"{on_postgres['overhead_seconds']:.1f} s  {on_postgres['overhead_parts']}"),
            ("daemon backfill (launch → done)", f"{daemon['wall_seconds']:.1f} s"),
            ("  engine (assets' seconds)", f"{daemon['engine_seconds']:.1f} s"),
            ("  orchestration", f"{daemon['overhead_seconds']:.1f} s  {daemon['overhead_parts']}"),
        ],
    )
    return result

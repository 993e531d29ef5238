"""Dagster Pipes: the job script run through ``PipesSubprocessClient`` on its own Sail builds what the in-process
assets build; the Databricks submissions are built by the real clients around a recording workspace client; the
delta-spark maintenance is what Databricks selects; the asset bundle validates. No workspace is reached."""

import base64
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.pipes import utils as pipes_utils
from databricks.sdk.errors import NotFound
from databricks.sdk.service import jobs
from deltalake import DeltaTable

from medallion_assets import maintenance, pipes_job, run_log
from medallion_assets.definitions import CHECKS, RUN_LOG
from medallion_assets.orders import BRONZE_SPEC, GOLD_SPEC, SILVER_SPEC
from medallion_assets.pipes import pipes_asset
from medallion_assets.sample_data import generate
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.pipes import PipesLauncher
from resources.run_guard import RunGuard
from resources.settings import Settings, SettingsError

from .conftest import materialize_days

DAYS = ("2024-01-01", "2024-01-02")
TABLES = ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "quarantine/daily_sales")
GATED = ("bronze/orders", "silver/orders", "gold/daily_sales")
VOLATILE = ["_ingested_at", "_quarantined_at", "_run_id"]
FIGURES = ("rows_in", "rows_out", "quarantined", "superseded", "warned", "pass_rate", "threshold", "passed",
           "dagster/row_count", "landing_fingerprint", "partitions", "published_partitions")  # fmt: skip
PIPES_ASSETS = [pipes_asset(spec) for spec in (BRONZE_SPEC, SILVER_SPEC, GOLD_SPEC)]
TOKEN = "dapi-pipes-test-marker-0123456789"
SCRIPT = "/Workspace/Shared/.bundle/medallion/dev/files/medallion_assets/pipes_job.py"
WHEEL = "/Volumes/main/medallion/artifacts/dev/.internal/medallion-0.1.0-py3-none-any.whl"
BUNDLE = Path(__file__).resolve().parents[1] / "deploy" / "databricks"


# -- helpers --------------------------------------------------------------------------------------------------
def stable(store: DeltaTableStore, name: str) -> list[str]:
    """A table's rows without run-time audit columns, as sorted JSON lines."""
    df = DeltaTable(store.table_uri(name)).to_pandas()
    keep = df.drop(columns=[c for c in VOLATILE if c in df.columns])
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in keep.to_dict("records"))


def figures(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Per asset and partition, the materialization figures the UI plots."""
    return {
        (e.asset_key.to_user_string(), e.partition): {
            k: v.value for k, v in e.materialization.metadata.items() if k in FIGURES
        }
        for e in result.get_asset_materialization_events()
    }


def evaluations(result: dg.ExecuteInProcessResult) -> set[tuple[str, str, str | None, bool]]:
    return {
        (c.asset_key.to_user_string(), c.check_name, c.partition, c.passed)
        for c in result.get_asset_check_evaluations()
    }


def checks(spec: Any) -> list[str]:
    return [c.name for c in spec.all_checks]


def failure(result: dg.ExecuteInProcessResult, node: str) -> str:
    data = result.failure_data_for_node(node)
    return data.error.message if data and data.error else ""


def error_chain(event: Any) -> str:
    """The messages of an event's error and of its causes."""
    error, messages = getattr(event.event_specific_data, "error", None), []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return " ".join(messages)


def materialize_pipes(
    store: DeltaTableStore, landing_root: Path, settings: Settings, selection: list | None = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """The orders assets in ``pipes_subprocess`` mode: each step is ``python -m medallion_assets.pipes_job``."""
    return dg.materialize(
        [*PIPES_ASSETS, RUN_LOG, *CHECKS],
        resources={
            "pipes": PipesLauncher(),
            "store": store,
            "landing": LandingZone(root=str(landing_root)),
            "settings": settings,
            "run_guard": RunGuard(),
        },
        selection=dg.AssetSelection.assets(*(selection or PIPES_ASSETS)),
        raise_on_error=False,
        **kwargs,
    )


def run_log_rows(store: DeltaTableStore) -> pd.DataFrame:
    log = DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()
    cols = ["asset", "partition", "rows_in", "rows_written", "quarantined", "superseded", "pass_rate", "passed"]
    return log[cols].sort_values(["asset", "partition"]).reset_index(drop=True)


# -- (a) the job script on Sail equals the in-process assets ----------------------------------------------------
def test_pipes_job_builds_what_the_in_process_assets_build(resources, store, landing_root, tmp_path) -> None:
    generate(landing_root, days=2, orders_per_day=200, seed=7)
    in_process = materialize_days(resources, *DAYS)
    pipes_store = DeltaTableStore(root=str(tmp_path / "pipes_lakehouse"))
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[1]}
    piped = materialize_pipes(pipes_store, landing_root, resources["settings"], tags=tags)
    assert in_process.success and piped.success, failure(piped, "silver__orders")

    for name in TABLES:
        assert stable(pipes_store, name) == stable(store, name), name
    assert all(stable(store, name) for name in TABLES[:4])  # gold had no failing row: its quarantine is empty
    expected = figures(in_process)
    assert figures(piped) == expected
    assert {(a, p) for a, p in expected if a in GATED} == {(a, d) for a in GATED for d in DAYS}
    assert (
        expected[("silver/orders", DAYS[1])]["rows_out"] > 0
        and "landing_fingerprint" in expected[("bronze/orders", DAYS[0])]
    )

    # Per-day check verdicts are the same; Pipes adds one collapsed (partition-less) result per gated check.
    ours, theirs = evaluations(piped), evaluations(in_process)
    assert {e for e in ours if e[2]} == {e for e in theirs if e[2]} != set()
    gated = {(s.table, c) for s in (BRONZE_SPEC, SILVER_SPEC, GOLD_SPEC) for c in ("quality_gate", *checks(s))}
    per_day = [e for e in theirs if e[2] and (e[0], e[1]) in gated]  # pandera_schema runs on the Dagster side
    collapsed = {(a, c, None, all(p for a2, c2, _, p in per_day if (a2, c2) == (a, c))) for a, c, _, _ in per_day}
    assert {e for e in ours if e[2] is None} - {e for e in theirs if e[2] is None} == collapsed
    assert {"quality_gate", "line_accounting", "row_accounting", "totals_reconcile"} <= {c for _, c, _, _ in collapsed}

    # The run log agrees, and the job ran on its own engine (Sail in the subprocess, not the tests' server).
    pd.testing.assert_frame_equal(run_log_rows(pipes_store), run_log_rows(store))
    engines = set(DeltaTable(pipes_store.table_uri(run_log.TABLE)).to_pandas()["engine"])
    assert engines == {"sail"} != set(DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()["engine"])
    assert {e.asset_key.to_user_string() for e in piped.get_asset_materialization_events()} >= {
        *TABLES,
        run_log.TABLE,
    }


def test_a_refusal_in_the_job_fails_the_step_as_in_process(resources, store, landing_root, tmp_path) -> None:
    generate(landing_root, days=1, orders_per_day=200, seed=7)
    strict = Settings(thresholds={"silver": 0.999})  # the sample's faults put silver under it
    selection = PIPES_ASSETS[:2]  # bronze and silver (with its quarantine)
    in_process = materialize_days(
        {**resources, "settings": strict}, DAYS[0], selection=dg.AssetSelection.assets(*selection)
    )
    pipes_store = DeltaTableStore(root=str(tmp_path / "pipes_lakehouse"))
    piped = materialize_pipes(pipes_store, landing_root, strict, selection=selection, partition_key=DAYS[0])

    assert not in_process.success and not piped.success
    message = failure(in_process, "silver__orders")
    assert "refused 1 partition" in message and failure(piped, "silver__orders") == message
    # The same check evaluations (Dagster drops events a step logged just before raising, in both modes) and the
    # same refusal in the run log.
    assert evaluations(piped) == evaluations(in_process)
    for lakehouse in (store, pipes_store):
        log = DeltaTable(lakehouse.table_uri(run_log.TABLE)).to_pandas().set_index("asset")
        assert not log.loc["silver/orders", "passed"] and log.loc["bronze/orders", "passed"]
    for name in ("bronze/orders", "quarantine/orders"):
        assert stable(pipes_store, name) == stable(store, name) != []
    assert not pipes_store.exists("silver/orders") and not store.exists("silver/orders")


def test_the_job_runs_without_dagster(landing_root, tmp_path) -> None:
    """The bundle's jobs run the script by itself: ``--tables`` and ``--from`` instead of a Pipes context."""
    generate(landing_root, days=1, orders_per_day=50, seed=3)
    lakehouse = tmp_path / "standalone"
    env = {**os.environ, "MEDALLION_LANDING_ROOT": str(landing_root), "MEDALLION_LAKEHOUSE_ROOT": str(lakehouse)}
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    script = Path(pipes_job.__file__)  # run as a file, as Databricks runs the uploaded script
    done = subprocess.run(
        [sys.executable, str(script), "--tables", "bronze/orders", "--from", DAYS[0]],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    [bronze] = [m["materialization"] for m in lines if "materialization" in m]
    assert bronze["asset_key"] == "bronze/orders"
    assert bronze["metadata"]["rows_out"] == len(DeltaTable(str(lakehouse / "bronze" / "orders")).to_pandas()) > 0


# -- (b) Databricks submissions, offline --------------------------------------------------------------------------
class RecordingWorkspace:
    """Replaces a real ``WorkspaceClient``'s network calls: ``jobs.submit`` records, the run ends at once with
    success, DBFS and Unity Catalog volume calls are recorded (the job writes no message: none is readable)."""

    def __init__(self, workspace: Any) -> None:
        self.workspace, self.submitted, self.calls = workspace, [], []
        workspace.jobs.submit = self.submit
        workspace.jobs.get_run = self.get_run
        workspace.api_client.do = self.do

    def submit(self, **kwargs: Any) -> Any:
        self.submitted.append(kwargs)
        return type("Waiter", (), {"bind": lambda _: {"run_id": 42}})()

    def get_run(self, run_id: int) -> jobs.Run:
        state = {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}
        return jobs.Run.from_dict({"run_id": run_id, "run_page_url": "https://example.invalid/#run/42", "state": state})

    def do(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path, kwargs))
        reading = path.endswith(("/dbfs/get-status", "/dbfs/read")) or (method == "GET" and "/fs/files" in path)
        if reading:
            raise NotFound("no message written")
        return {"contents": []} if method == "GET" else {}

    def context(self) -> dict[str, Any]:
        """The Pipes context the client uploaded for the job."""
        for method, path, kwargs in self.calls:
            if path.endswith("/dbfs/put"):
                return json.loads(base64.b64decode(kwargs["body"]["contents"]))
            if method == "PUT" and "/fs/files" in path:
                return json.loads(kwargs["data"].getvalue())
        raise AssertionError("no context uploaded")


def decode(value: str) -> Any:
    return json.loads(zlib.decompress(base64.b64decode(value)))


MODES = {
    "job_cluster": {"mode": "pipes_databricks", "node_type": "i3.xlarge", "spark_version": "16.4.x-scala2.12"},
    "existing_cluster": {"mode": "pipes_databricks", "cluster_id": "0101-120000-medalln1"},
    "serverless": {"mode": "pipes_databricks_serverless", "volume_path": "/Volumes/main/medallion/pipes"},
}


@pytest.mark.parametrize("variant", MODES)
def test_databricks_submission_is_built_by_the_real_client(variant, monkeypatch, landing_root, store) -> None:
    launcher = PipesLauncher(
        databricks_host="https://example.invalid", databricks_token=TOKEN, wheel=WHEEL, script=SCRIPT, workers=2,
        poll_interval_seconds=0.01, **MODES[variant],
    )  # fmt: skip
    recorder = RecordingWorkspace(launcher.workspace())
    monkeypatch.setattr(PipesLauncher, "workspace", lambda self: recorder.workspace)
    # Dagster's reader waits 10 s after the job for messages that will never come here (none is readable).
    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)
    resources = {"pipes": launcher, "store": store, "landing": LandingZone(root=str(landing_root)),
                 "settings": Settings(), "run_guard": RunGuard()}  # fmt: skip
    result = dg.materialize(
        [pipes_asset(BRONZE_SPEC)], resources=resources, partition_key=DAYS[0], raise_on_error=False
    )

    # The job "ran" but reported nothing: the step fails saying so, it does not hang or invent a materialization.
    assert not result.success and "ended without reporting ['bronze/orders']" in failure(result, "bronze__orders")
    [submission] = recorder.submitted
    [task] = [t.as_dict() for t in submission["tasks"]]
    assert task["task_key"] == "medallion_bronze__orders"
    assert task["spark_python_task"]["python_file"] == SCRIPT
    assert submission["run_name"].startswith("medallion bronze/orders (dagster run ")
    params = task["spark_python_task"]["parameters"]
    if variant == "job_cluster":
        assert params == ["--transport", "dbfs"] and task["libraries"] == [{"whl": WHEEL}]
        cluster = task["new_cluster"]
        assert (cluster["spark_version"], cluster["node_type_id"], cluster["num_workers"]) == (
            "16.4.x-scala2.12", "i3.xlarge", 2,
        )  # fmt: skip
        bootstrap = cluster["spark_env_vars"]  # a new cluster gets Pipes' bootstrap as environment variables
        assert set(bootstrap) == {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"}
        context_path, messages = decode(bootstrap["DAGSTER_PIPES_CONTEXT"]), decode(bootstrap["DAGSTER_PIPES_MESSAGES"])
    else:  # an existing cluster and serverless get it as CLI parameters (PipesCliArgsParamsLoader in the job)
        assert params[:2] == ["--transport", "dbfs" if variant == "existing_cluster" else "volumes"]
        cli = dict(zip(params[2::2], params[3::2], strict=True))
        assert set(cli) == {"--dagster-pipes-context", "--dagster-pipes-messages"}
        context_path, messages = decode(cli["--dagster-pipes-context"]), decode(cli["--dagster-pipes-messages"])
        assert "new_cluster" not in task
    if variant == "existing_cluster":
        assert task["existing_cluster_id"] == "0101-120000-medalln1" and task["libraries"] == [{"whl": WHEEL}]
    if variant == "serverless":
        assert task["environment_key"] == "medallion" and "libraries" not in task
        [environment] = [e.as_dict() for e in submission["environments"]]
        assert environment == {
            "environment_key": "medallion",
            "spec": {"environment_version": "2", "dependencies": [WHEEL]},
        }
        assert context_path["path"].startswith("/Volumes/main/medallion/pipes/tmp/")
    else:
        assert context_path["path"].startswith("/tmp/") and messages["path"].startswith("/tmp/")
    context = recorder.context()
    assert context["asset_keys"] == ["bronze/orders"] and context["partition_key"] == DAYS[0]
    extras = context["extras"]
    assert extras["tables"] == ["bronze/orders"]
    assert extras["partition_key_range"] == {"start": DAYS[0], "end": DAYS[0]}
    assert extras["lakehouse_root"] == store.root and extras["landing_root"] == str(landing_root)
    assert Settings(**extras["settings"]) == Settings()
    # The token went to the workspace client only: not in the payload, the context, or the event log.
    assert TOKEN not in json.dumps([submission["run_name"], task, context], default=str)
    assert not any(TOKEN in str(e) for e in result.all_events)


def test_execution_setting_and_missing_credentials_fail_fast(store, landing_root) -> None:
    assert Settings.from_env({"MEDALLION_EXECUTION": " Pipes_Databricks "}).execution == "pipes_databricks"
    with pytest.raises(SettingsError, match="MEDALLION_EXECUTION='pipes_cloud' is not one of in_process"):
        Settings.from_env({"MEDALLION_EXECUTION": "pipes_cloud"})
    with pytest.raises(SettingsError, match=r"DATABRICKS_HOST, DATABRICKS_TOKEN.*or set DATABRICKS_CLUSTER_ID"):
        PipesLauncher.from_env("pipes_databricks", environ={})
    with pytest.raises(SettingsError, match="MEDALLION_DATABRICKS_VOLUME_PATH"):
        PipesLauncher.from_env("pipes_databricks_serverless", environ={"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t"})
    environ = {"DATABRICKS_HOST": "https://example.invalid", "DATABRICKS_TOKEN": TOKEN, "DATABRICKS_CLUSTER_ID": "c",
               "MEDALLION_DATABRICKS_WHEEL": WHEEL, "MEDALLION_DATABRICKS_SCRIPT": SCRIPT}  # fmt: skip
    with pytest.raises(SettingsError, match="MEDALLION_DATABRICKS_WORKERS='two' is not a whole number"):
        PipesLauncher.from_env("pipes_databricks", environ={**environ, "MEDALLION_DATABRICKS_WORKERS": "two"})
    launcher = PipesLauncher.from_env("pipes_databricks", environ=environ)
    assert TOKEN not in repr(launcher) and isinstance(launcher.databricks_token, dg.EnvVar)
    # A run whose variables are gone by run start fails at resource setup, naming them, without contacting anyone.
    started = time.monotonic()
    result = dg.materialize(
        [pipes_asset(BRONZE_SPEC)],
        resources={
            "pipes": PipesLauncher(mode="pipes_databricks"),
            "store": store,
            "settings": Settings(),
            "landing": LandingZone(root=str(landing_root)),
            "run_guard": RunGuard(),
        },
        partition_key=DAYS[0],
        raise_on_error=False,
    )
    assert not result.success and time.monotonic() - started < 60
    errors = " ".join(error_chain(e) for e in result.all_events if e.is_failure)
    assert "MEDALLION_EXECUTION=pipes_databricks needs DATABRICKS_HOST, DATABRICKS_TOKEN" in errors


# -- delta maintenance backend ------------------------------------------------------------------------------------
class FakeDeltaTable:
    """delta-spark's ``DeltaTable`` as far as maintenance uses it; records the calls."""

    calls: list[tuple] = []

    @classmethod
    def forPath(cls, spark: Any, uri: str) -> "FakeDeltaTable":  # delta-spark's name
        cls.calls.append(("forPath", spark, uri))
        return cls()

    def optimize(self) -> "FakeDeltaTable":
        self.calls.append(("optimize",))
        return self

    def executeCompaction(self) -> Any:
        self.calls.append(("executeCompaction",))
        return type("Frame", (), {"collect": lambda _: [{"metrics": {"numFilesAdded": 1, "numFilesRemoved": 6}}]})()

    def vacuum(self, hours: float) -> None:
        self.calls.append(("vacuum", hours))

    def history(self, limit: int) -> Any:
        self.calls.append(("history", limit))
        rows = [
            {"version": 9, "operation": "VACUUM END", "operationMetrics": {"numDeletedFiles": "4"}},
            {"version": 8, "operation": "VACUUM START", "operationMetrics": {}},
            {"version": 7, "operation": "OPTIMIZE", "operationMetrics": {}},
        ]
        return type("Frame", (), {"collect": lambda _: rows})()


def test_maintenance_uses_delta_spark_on_databricks_only(monkeypatch, store) -> None:
    """Only the choice and the call sequence: delta-spark never ran here (no Delta jars; Sail refuses its API)."""
    session = object()
    assert isinstance(maintenance.maintainer(store, "sail", lambda: session), maintenance.DeltaLakeMaintenance)
    assert isinstance(maintenance.maintainer(store, "connect", lambda: session), maintenance.DeltaLakeMaintenance)
    chosen = maintenance.maintainer(store, "databricks", lambda: session)
    assert isinstance(chosen, maintenance.DeltaSparkMaintenance) and chosen.backend == "delta-spark"

    import delta.tables

    FakeDeltaTable.calls = []
    monkeypatch.setattr(delta.tables, "DeltaTable", FakeDeltaTable)
    monkeypatch.setenv("MEDALLION_ENGINE", "databricks")  # the op's engine: Databricks (Connect)
    monkeypatch.setattr(SparkEngine, "get_session", lambda self: session)
    result = maintenance.maintenance_job.execute_in_process(
        resources={"store": store},
        run_config={"ops": {"compact_and_vacuum": {"config": {"retention_hours": 200, "tables": ["silver/orders"]}}}},
    )
    assert result.success
    done = result.output_for_node("compact_and_vacuum")["silver/orders"]
    assert done == {"table": "silver/orders", "retention_hours": 200, "files_vacuumed": 4, "files_added": 1,
                    "files_removed": 6, "version": 9, "checkpoint_version": None, "backend": "delta-spark"}  # fmt: skip
    assert FakeDeltaTable.calls == [
        ("forPath", session, store.table_uri("silver/orders")),
        ("optimize",),
        ("executeCompaction",),
        ("vacuum", 200.0),
        ("history", 5),
    ]
    log = DeltaTable(store.table_uri(maintenance.LOG_TABLE)).to_pandas()
    assert list(log["backend"]) == ["delta-spark"] and log["checkpoint_version"].isna().all()


# -- (c) the asset bundle -----------------------------------------------------------------------------------------
def test_asset_bundle_is_valid_and_points_at_the_job_script() -> None:
    """Structure asserted here and each job checked by ``databricks-bundles``' typed models (generated from the
    bundle schema; unknown fields and bad types are errors). The full file was also validated against the CLI's
    JSON schema once, outside this suite (no schema ships in a package)."""
    from databricks.bundles.jobs import Job

    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    assert root["bundle"]["name"] == "medallion" and root["include"] == ["resources/*.yml"]
    artifact = root["artifacts"]["medallion"]
    repo = (BUNDLE / artifact["path"]).resolve()
    assert artifact["type"] == "whl" and (repo / "pyproject.toml").is_file()
    assert [(BUNDLE / p).resolve() for p in root["sync"]["paths"]] == [repo / "medallion_assets"]
    assert {"dev", "prod"} == set(root["targets"])
    text = (BUNDLE / "databricks.yml").read_text() + (BUNDLE / "resources" / "medallion_job.yml").read_text()
    assert "token" not in text.lower().replace("databricks_token", "")

    resources = BUNDLE / "resources"
    defined = yaml.safe_load((resources / "medallion_job.yml").read_text())["resources"]["jobs"]
    assert set(defined) == {"medallion_build", "medallion_maintenance"}
    for name, job in defined.items():
        typed = Job.from_dict(json.loads(json.dumps(job)))
        [task] = typed.tasks
        assert (resources / task.spark_python_task.python_file).resolve() == repo / "medallion_assets" / "pipes_job.py"
        assert task.spark_python_task.parameters[:2] == ["--transport", "dbfs"], name
        [library] = job["tasks"][0]["libraries"]
        assert (resources / library["whl"]).resolve().parent == (
            BUNDLE / artifact["files"][0]["source"]
        ).resolve().parent
    build = defined["medallion_build"]["tasks"][0]["spark_python_task"]["parameters"]
    assert {"--tables", "--from", "--to"} <= set(build)
    assert "--maintenance" in defined["medallion_maintenance"]["tasks"][0]["spark_python_task"]["parameters"]
    broken = json.loads(json.dumps(defined["medallion_build"]))
    broken["tasks"][0]["spark_python_tsk"] = broken["tasks"][0].pop("spark_python_task")
    with pytest.raises(ValueError, match="spark_python_tsk"):
        Job.from_dict(broken)

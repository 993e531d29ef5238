"""Submitting a gated table's step through Dagster Pipes (``MEDALLION_EXECUTION=pipes_*``).

* ``pipes_subprocess`` — ``python -m medallion_assets.pipes_job`` on this machine (``PipesSubprocessClient``);
* ``pipes_databricks`` — a one-time Databricks job run (``PipesDatabricksClient``, context and messages on DBFS):
  a new job cluster (``MEDALLION_DATABRICKS_NODE_TYPE``, ``MEDALLION_DATABRICKS_SPARK_VERSION``,
  ``MEDALLION_DATABRICKS_WORKERS``) or an existing cluster (``DATABRICKS_CLUSTER_ID``);
* ``pipes_databricks_serverless`` — serverless compute (``PipesDatabricksServerlessClient``, context and messages
  in the Unity Catalog volume ``MEDALLION_DATABRICKS_VOLUME_PATH``).

A Databricks job runs the uploaded job script (``MEDALLION_DATABRICKS_SCRIPT``) with the project wheel
(``MEDALLION_DATABRICKS_WHEEL``) installed. Every value is read through ``dagster.EnvVar``; the workspace token
goes to the workspace client only, never into a payload, a log line or an error. A Databricks mode missing any
of its variables fails when the definitions load and again when a run starts, naming them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources.settings import EXECUTION_MODES, SettingsError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service import jobs

JOB_MODULE = "medallion_assets.pipes_job"
PIPES_MODES = tuple(m for m in EXECUTION_MODES if m.startswith("pipes_"))
#: field → variable, each read through ``dagster.EnvVar`` when set
ENV_VARS: dict[str, str] = {
    "databricks_host": "DATABRICKS_HOST",
    "databricks_token": "DATABRICKS_TOKEN",
    "cluster_id": "DATABRICKS_CLUSTER_ID",
    "node_type": "MEDALLION_DATABRICKS_NODE_TYPE",
    "spark_version": "MEDALLION_DATABRICKS_SPARK_VERSION",
    "workers": "MEDALLION_DATABRICKS_WORKERS",
    "volume_path": "MEDALLION_DATABRICKS_VOLUME_PATH",
    "wheel": "MEDALLION_DATABRICKS_WHEEL",
    "script": "MEDALLION_DATABRICKS_SCRIPT",
    "job_lakehouse_root": "MEDALLION_JOB_LAKEHOUSE_ROOT",
    "job_landing_root": "MEDALLION_JOB_LANDING_ROOT",
}
#: how the job script reads its Pipes context and writes its messages, per mode
TRANSPORTS = {"pipes_subprocess": "local", "pipes_databricks": "dbfs", "pipes_databricks_serverless": "volumes"}
ENVIRONMENT_KEY = "medallion"
#: serverless environment version (Python 3.11)
SERVERLESS_ENVIRONMENT = "2"
#: an unreachable workspace fails within this many seconds instead of the SDK's five minutes
WORKSPACE_RETRY_SECONDS = 120


def check_workers(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``MEDALLION_DATABRICKS_WORKERS`` is set; ``SettingsError`` naming it when it is not a whole number of at
    least 1 (checked when the definitions load, in every execution mode)."""
    env = os.environ if environ is None else environ
    workers = env.get(ENV_VARS["workers"])
    if workers and (not workers.strip().isdigit() or int(workers) < 1):
        raise SettingsError(f"{ENV_VARS['workers']}={workers!r} is not a whole number of at least 1")
    return bool(workers)


class PipesLauncher(dg.ConfigurableResource):
    """Where and how a gated table's step is submitted through Dagster Pipes."""

    mode: str = "pipes_subprocess"
    #: the interpreter of the local subprocess (default: this one)
    python: str | None = None
    databricks_host: str | None = None
    databricks_token: str | None = None
    cluster_id: str | None = None
    node_type: str | None = None
    spark_version: str | None = None
    workers: int = 1
    volume_path: str | None = None
    wheel: str | None = None
    script: str | None = None
    #: the lakehouse and landing roots as the job sees them (default: the Dagster side's)
    job_lakehouse_root: str | None = None
    job_landing_root: str | None = None
    poll_interval_seconds: float = 5.0

    @classmethod
    def from_env(cls, mode: str, environ: Mapping[str, str] | None = None) -> PipesLauncher:
        """A launcher for ``mode`` whose values are ``dagster.EnvVar`` references; fails naming what is missing."""
        env = os.environ if environ is None else environ
        if missing := missing_variables(mode, {f: env.get(v) for f, v in ENV_VARS.items()}):
            raise missing_error(mode, missing)
        kwargs: dict[str, Any] = {f: dg.EnvVar(v) for f, v in ENV_VARS.items() if env.get(v) and f != "workers"}
        if check_workers(env):
            kwargs["workers"] = dg.EnvVar.int(ENV_VARS["workers"])
        return cls(mode=mode, **kwargs)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if missing := missing_variables(self.mode, self.model_dump()):
            raise missing_error(self.mode, missing)

    @property
    def transport(self) -> str:
        return TRANSPORTS[self.mode]

    # -- the Databricks task ----------------------------------------------------------------------------------
    def task(self, table: str) -> jobs.SubmitTask:
        """The one-task submission of ``table``'s step (Pipes adds its bootstrap when it submits)."""
        from databricks.sdk.service import compute, jobs

        python_task = jobs.SparkPythonTask(python_file=self.script, parameters=["--transport", self.transport])
        task = {"task_key": task_key(table), "spark_python_task": python_task}
        if self.mode == "pipes_databricks_serverless":
            return jobs.SubmitTask(**task, environment_key=ENVIRONMENT_KEY)
        libraries = [compute.Library(whl=self.wheel)]
        if self.cluster_id:
            return jobs.SubmitTask(**task, existing_cluster_id=self.cluster_id, libraries=libraries)
        cluster = compute.ClusterSpec(
            spark_version=self.spark_version, node_type_id=self.node_type, num_workers=self.workers
        )
        return jobs.SubmitTask(**task, new_cluster=cluster, libraries=libraries)

    def submit_args(self, table: str, run_id: str) -> dict[str, Any]:
        """``jobs.submit`` arguments besides the task: the run name and, on serverless, the wheel's environment."""
        from databricks.sdk.service import compute, jobs

        args: dict[str, Any] = {"run_name": f"medallion {table} (dagster run {run_id[:8]})"}
        if self.mode == "pipes_databricks_serverless":
            spec = compute.Environment(environment_version=SERVERLESS_ENVIRONMENT, dependencies=[self.wheel])
            args["environments"] = [jobs.JobEnvironment(environment_key=ENVIRONMENT_KEY, spec=spec)]
        return args

    # -- the clients ------------------------------------------------------------------------------------------
    def workspace(self) -> WorkspaceClient:
        """The workspace client (builds offline; the token stays in it)."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        config = Config(
            host=self.databricks_host,
            token=self.databricks_token,
            retry_timeout_seconds=WORKSPACE_RETRY_SECONDS,
        )
        return WorkspaceClient(config=config)

    def client(self, workspace: WorkspaceClient | None = None) -> dg.PipesClient:
        """The Pipes client of this mode."""
        if self.mode == "pipes_subprocess":
            return dg.PipesSubprocessClient()
        from dagster_databricks import PipesDatabricksClient
        from dagster_databricks.pipes import PipesDatabricksServerlessClient

        workspace = workspace or self.workspace()
        if self.mode == "pipes_databricks_serverless":
            return PipesDatabricksServerlessClient(
                client=workspace, volume_path=self.volume_path, poll_interval_seconds=self.poll_interval_seconds
            )
        return PipesDatabricksClient(client=workspace, poll_interval_seconds=self.poll_interval_seconds)

    def run(
        self, context: dg.AssetExecutionContext, table: str, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        """Submit ``table``'s step and wait for it; what it reported comes back in the invocation."""
        client = self.client()
        if isinstance(client, dg.PipesSubprocessClient):
            command = [self.python or sys.executable, "-m", JOB_MODULE]
            return client.run(context=context, command=command, extras=dict(extras))
        task, args = self.task(table), self.submit_args(table, context.run.run_id)
        return client.run(context=context, task=task, extras=dict(extras), submit_args=args)  # type: ignore[call-arg]


def task_key(table: str) -> str:
    """A Databricks task key for ``layer/name`` (letters, digits, ``_``, ``-``, ``.`` only)."""
    return "medallion_" + table.replace("/", "__")


def missing_variables(mode: str, values: Mapping[str, Any]) -> list[str]:
    """The variables ``mode`` needs that have no value (none for the local subprocess)."""
    if mode not in PIPES_MODES:
        raise SettingsError(f"MEDALLION_EXECUTION={mode!r} is not one of {', '.join(PIPES_MODES)}")
    if mode == "pipes_subprocess":
        return []
    needed = ["databricks_host", "databricks_token", "script", "wheel"]
    if mode == "pipes_databricks_serverless":
        needed.append("volume_path")
    elif not values.get("cluster_id"):
        needed += ["node_type", "spark_version"]
    return [ENV_VARS[f] for f in needed if not values.get(f)]


def missing_error(mode: str, missing: list[str]) -> SettingsError:
    """The error naming every variable ``mode`` lacks."""
    hint = (
        f"; or set {ENV_VARS['cluster_id']} to run on an existing cluster"
        if ENV_VARS["node_type"] in missing or ENV_VARS["spark_version"] in missing
        else ""
    )
    return SettingsError(f"MEDALLION_EXECUTION={mode} needs {', '.join(missing)} (not set){hint}")

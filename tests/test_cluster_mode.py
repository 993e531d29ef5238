"""Sail's cluster mode as engine configuration.

The orders + customers pipeline, built by the real CLI once on local Sail and once on an embedded driver with two
workers (``MEDALLION_SAIL_MODE=local-cluster``), gives identical tables, and Sail's own log shows both workers
running tasks. Bad Sail settings fail before anything is written, and the ``SAIL_*`` variables pysail reads are set
only while the engine creates its server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from medallion_assets.sample_data import generate, generate_customers
from resources.engine import SparkEngine
from resources.errors import EngineConfigError

REPO = Path(__file__).resolve().parents[1]
MATERIALIZE = ["asset", "materialize", "-m", "medallion_assets.definitions"]
RANGE = ["--partition-range", "2024-01-01...2024-01-02"]
#: the Makefile's star, in three runs: the days of both sources, the unpartitioned tables, then the fact table
STEPS = [
    ["--select", "bronze/customers,bronze/orders,silver/orders,gold/daily_sales", *RANGE],
    ["--select", "silver/dim_customer,gold/dim_date,gold/customer_ltv"],
    ["--select", "gold/fact_orders", *RANGE],
]
CLUSTER = {"MEDALLION_SAIL_MODE": "local-cluster", "MEDALLION_SAIL_WORKERS": "2", "MEDALLION_SAIL_TASK_SLOTS": "4"}
#: Sail's info log, plus its driver's RPC server at debug: the requests it logs name the worker that sent them
SAIL_LOG = "info,sail_execution::driver::server=debug"
BUILT = {
    "bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "bronze/customers",
    "silver/dim_customer", "quarantine/customers", "gold/dim_date", "gold/fact_orders", "gold/customer_ltv",
}  # fmt: skip
VOLATILE = {"_ingested_at", "_quarantined_at", "_run_id"}
#: the driver registered the worker (sail_execution::driver::actor::handler, info)
AVAILABLE = re.compile(r"worker (\d+) is available at 127\.0\.0\.1:\d+")
#: sent by worker N's task runner when it starts a task that reads other workers' output (sail_execution
#: task_runner/actor/handler.rs, ``handle_run_task``), logged by the driver's RPC server at debug
RAN_TASK = re.compile(r"ReportWorkerKnownPeersRequest \{ driver_id: \d+, worker_id: (\d+)")
#: a worker reported a task's status to the driver over RPC (local mode has no such RPC)
TASK_STATUS = re.compile(r"ReportTaskStatusRequest \{")


@dataclass
class Build:
    lake: Path
    seconds: list[float]
    log: str


def environment(tmp: Path, landing: Path, extra: dict[str, str]) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "SAIL_", "MEDALLION_"))}
    return {
        **inherited,
        "DAGSTER_HOME": str(home),
        "MEDALLION_LANDING_ROOT": str(landing),
        "MEDALLION_LAKEHOUSE_ROOT": str(tmp / "lake"),
        "MEDALLION_ENGINE": "sail",
        "RUST_LOG": SAIL_LOG,
        **extra,
    }


def dagster(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    """The ``dagster`` CLI of this venv as a child process (``subprocess.run`` kills it by pid on timeout)."""
    exe = Path(sys.executable).parent / "dagster"
    return subprocess.run([str(exe), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def build(tmp: Path, landing: Path, extra: dict[str, str]) -> Build:
    """Every step of the star, one CLI run each; the tables, each run's wall time and the joined stderr."""
    env = environment(tmp, landing, extra)
    seconds, logs = [], []
    for step in STEPS:
        started = time.monotonic()
        done = dagster([*MATERIALIZE, *step], env)
        seconds.append(time.monotonic() - started)
        assert done.returncode == 0, f"{step}: {done.stderr[-3000:]}"
        logs.append(done.stderr)
    return Build(tmp / "lake", seconds, "\n".join(logs))


def tables(lake: Path) -> list[str]:
    """Every Delta table under ``lake`` except the run log (run ids, timings: one row per attempt)."""
    found = (p.parent.relative_to(lake).as_posix() for p in lake.glob("*/*/_delta_log"))
    return sorted(t for t in found if not t.startswith("monitoring/"))


def digest(lake: Path, table: str) -> tuple[int, str]:
    """Row count and SHA-256 of the table's rows (audit columns left out), sorted, as canonical JSON."""
    rows = DeltaTable(str(lake / table)).to_pyarrow_table().to_pylist()
    lines = sorted(
        json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, default=str, sort_keys=True) for r in rows
    )
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster") / "landing"
    generate(root, days=2, orders_per_day=150, seed=23)
    generate_customers(root, days=2, customers=200, seed=23)
    return root


@pytest.fixture(scope="module")
def builds(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    done = {
        "local": build(tmp_path_factory.mktemp("local"), landing, {}),
        "local-cluster": build(tmp_path_factory.mktemp("local_cluster"), landing, CLUSTER),
    }
    for mode, b in done.items():
        print(f"{mode}: {sum(b.seconds):.1f} s ({', '.join(f'{s:.1f}' for s in b.seconds)})")
    return done


def test_local_cluster_builds_the_same_tables_as_local(builds: dict[str, Build]) -> None:
    local, cluster = builds["local"].lake, builds["local-cluster"].lake
    assert tables(local) == tables(cluster) and set(tables(local)) >= BUILT
    counts = {}
    for table in tables(local):
        counts[table], sha = digest(local, table)
        assert digest(cluster, table) == (counts[table], sha), table
        assert counts[table] > 0 or (table.startswith("quarantine/") and table != "quarantine/orders"), table
    print(f"identical tables (rows): {counts}")


def test_two_workers_ran_tasks_in_local_cluster_mode_and_none_in_local_mode(builds: dict[str, Build]) -> None:
    cluster, local = builds["local-cluster"].log, builds["local"].log
    registered = AVAILABLE.findall(cluster)
    assert {"1", "2"} <= set(registered) and len(registered) >= 2 * len(STEPS)  # each run's driver got 2 workers
    ran = {worker: RAN_TASK.findall(cluster).count(worker) for worker in set(RAN_TASK.findall(cluster))}
    print(f"task starts reported per worker id: {dict(sorted(ran.items()))}; registrations: {len(registered)}")
    assert len(ran) >= 2, ran  # at least two distinct workers started tasks
    assert len(TASK_STATUS.findall(cluster)) > 10
    assert not AVAILABLE.findall(local) and not RAN_TASK.findall(local) and not TASK_STATUS.findall(local)
    assert "Starting the Spark Connect server on 127.0.0.1:" in local  # the same log reached us in local mode


def test_a_bad_sail_setting_fails_the_cli_before_anything_is_written(landing: Path, tmp_path: Path) -> None:
    """Checked when the definitions load: no engine starts, no table or scratch folder appears."""
    env = environment(tmp_path, landing, {**CLUSTER, "MEDALLION_SAIL_WORKERS": "two"})
    started = time.monotonic()
    done = dagster([*MATERIALIZE, *STEPS[0]], env, timeout=120)
    assert done.returncode != 0, done.stderr[-2000:]
    assert "MEDALLION_SAIL_WORKERS must be a whole number from 1 to 64, got 'two'" in done.stderr
    assert "Starting the Spark Connect server" not in done.stderr and not (tmp_path / "lake").exists()
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("config", "variables", "message"),
    [
        ({}, {"MEDALLION_SAIL_MODE": "cluster"}, "MEDALLION_SAIL_MODE='cluster' is not a Sail mode"),
        ({}, {"MEDALLION_SAIL_WORKERS": "2"}, "MEDALLION_SAIL_WORKERS set, but MEDALLION_SAIL_MODE is local"),
        ({}, {**CLUSTER, "MEDALLION_SAIL_TASK_SLOTS": "0"}, "MEDALLION_SAIL_TASK_SLOTS must be a whole number"),
        ({}, {**CLUSTER, "MEDALLION_SAIL_WORKERS": "2.5"}, "MEDALLION_SAIL_WORKERS must be a whole number"),
        ({}, {**CLUSTER, "MEDALLION_SAIL_WORKERS": "65"}, "MEDALLION_SAIL_WORKERS must be a whole number from 1 to 64"),
        ({"sail_mode": "local-cluster", "sail_workers": -1}, {}, "sail_workers must be a whole number"),
        ({"sail_mode": "kubernetes-cluster"}, {}, "sail_mode=kubernetes-cluster cannot run in the embedded engine"),
        ({}, {"MEDALLION_SAIL_MODE": "Kubernetes-Cluster"}, "MEDALLION_SAIL_MODE=kubernetes-cluster cannot run"),
    ],
)
def test_bad_sail_settings_are_clear_errors_before_any_server_starts(
    monkeypatch: pytest.MonkeyPatch, config: dict, variables: dict[str, str], message: str
) -> None:
    for name in ("MEDALLION_ENGINE", *CLUSTER):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if not config:
        with pytest.raises(EngineConfigError, match=re.escape(message)):
            SparkEngine.from_env()  # what definitions.py does when it loads
    engine = SparkEngine(**config)
    with pytest.raises(EngineConfigError, match=re.escape(message)):
        engine.get_session()
    assert engine._server is None


def sail_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("SAIL_")}


def test_sail_variables_reach_the_server_and_are_restored_after_its_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers of one slot each: Sail refuses a four-partition stage, quoting the engine's settings."""
    monkeypatch.setenv("SAIL_MODE", "local")  # inherited by the process; the engine's setting wins, with a warning
    before = sail_variables()
    engine = SparkEngine(sail_mode="local-cluster", sail_workers=2, sail_task_slots=1)
    with caplog.at_level(logging.WARNING):
        spark = engine.get_session()
    try:
        assert sail_variables() == before  # nothing engine-set outlives the server's start
        assert "SAIL_MODE=local in the environment is overridden" in caplog.text
        assert spark.range(0, 10, numPartitions=1).count() == 10  # starts the driver and its workers
        workers = spark.sql("SELECT CAST(worker_id AS BIGINT) AS worker_id FROM system.cluster.workers").collect()
        assert sorted(r.worker_id for r in workers) == [1, 2]
        with pytest.raises(Exception, match="given a maximum of 2 workers with 1 task slots per worker"):
            spark.range(0, 100, numPartitions=4).groupBy("id").count().collect()
    finally:
        engine.stop()


KUBERNETES = REPO / "deploy" / "engines" / "sail-kubernetes"


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "<valueFrom>") for e in container["env"]}


def test_kubernetes_manifests_agree_with_each_other_and_the_pins() -> None:
    """On paper (nothing is applied here): the manifests parse and agree on names, ports, paths and versions."""
    docs = {d["kind"]: d for d in yaml.safe_load_all((KUBERNETES / "sail.yaml").read_text())}
    [server] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    env, namespace = env_of(server), docs["Namespace"]["metadata"]["name"]
    assert env["SAIL_MODE"] == "kubernetes-cluster" and env["SAIL_KUBERNETES__NAMESPACE"] == namespace
    assert env["SAIL_KUBERNETES__WORKER_SERVICE_ACCOUNT_NAME"] == docs["ServiceAccount"]["metadata"]["name"]
    assert docs["RoleBinding"]["subjects"][0]["name"] == docs["ServiceAccount"]["metadata"]["name"]
    assert env["SAIL_KUBERNETES__IMAGE"] == server["image"]
    slots = int(env["SAIL_CLUSTER__WORKER_MAX_COUNT"]) * int(env["SAIL_CLUSTER__WORKER_TASK_SLOTS"])
    assert slots >= 2 * int(env["SAIL_EXECUTION__DEFAULT_PARALLELISM"])
    template = json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])["spec"]
    [worker] = template["containers"]
    assert worker["name"] == "worker"  # Sail merges the template into its container of that name
    assert template["volumes"] == docs["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert worker["volumeMounts"] == server["volumeMounts"]
    port = docs["Service"]["spec"]["ports"][0]["port"]
    assert server["ports"][0]["containerPort"] == port and f"--port {port}" in " ".join(server["args"])
    dagster_env = yaml.safe_load((KUBERNETES / "dagster-engine-env.yaml").read_text())["data"]
    service = docs["Service"]["metadata"]
    assert dagster_env["MEDALLION_SPARK_REMOTE"] == f"sc://{service['name']}.{namespace}.svc.cluster.local:{port}"
    assert dagster_env["MEDALLION_ENGINE"] == "connect"
    assert dagster_env["MEDALLION_LAKEHOUSE_ROOT"] == server["volumeMounts"][0]["mountPath"]
    pins = dict(re.findall(r"^(pysail|pyspark)==(\S+)$", (REPO / "constraints.txt").read_text(), re.M))
    dockerfile = (KUBERNETES / "Dockerfile").read_text()
    assert f"PYSAIL_VERSION={pins['pysail']}" in dockerfile and f"PYSPARK_VERSION={pins['pyspark']}" in dockerfile
    assert server["image"].endswith(f":{pins['pysail']}")

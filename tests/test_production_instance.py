"""The production instance: Dagster's storage on a real PostgreSQL server, the code location on its own gRPC
code server, the webserver and the daemon as separate processes (``deploy/``), and ``make prod-local``.

One throwaway PostgreSQL cluster serves the module (``initdb`` in a temp folder, 127.0.0.1 and a free port,
stopped by pid); each test gets its own database. As root, PostgreSQL runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.events import DagsterEvent  # to emulate the daemon's first write of a launch
from dagster._core.test_utils import create_run_for_test
from dagster_postgres import PostgresRunStorage
from dagster_postgres.utils import DagsterPostgresException
from deltalake import DeltaTable
from sqlalchemy.engine import Engine

from deploy.local_prod import Topology, code_server_serving
from deploy.postgres import ENV_VARS, LocalCluster, PgTarget, PostgresError, throwaway_cluster
from medallion_assets.sample_data import generate
from resources.instance_storage import PooledPostgresEventLogStorage

from .services import BIN, REPO, DagsterServices, free_port, wait_until
from .test_instance_storage import asset_view, hand_over, range_run_events
from .test_run_guard import failure_text
from .test_ui_backfill import BACKFILL, LAUNCH, TERMINAL

DEPLOY = REPO / "deploy"
ASSETS = ("bronze/orders", "silver/orders", "gold/daily_sales")
SENSOR = "landing_sensor"
SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 50) { tickId status timestamp runIds runKeys cursor } } }
    ... on Error { message }
  }
}
"""
SELECTOR = {"repositoryLocationName": "medallion", "repositoryName": "__repository__", "sensorName": SENSOR}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgTarget]:
    """A PostgreSQL server for the module (its ``postgres`` maintenance database as the target)."""
    with throwaway_cluster(free_port()) as (cluster, target):
        yield target
    assert not cluster.running()


@pytest.fixture
def pg(postgres: PgTarget, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> PgTarget:
    """A fresh database for this test, its ``MEDALLION_PG_*`` set in this process (inherited by services)."""
    digest = hashlib.sha1(request.node.name.encode()).hexdigest()[:8]  # parametrised names differ past the cut
    target = postgres.with_db("t_" + re.sub(r"\W+", "_", request.node.name.lower())[:40] + "_" + digest)
    assert target.ensure_database()
    for name, value in target.env().items():
        monkeypatch.setenv(name, value)
    return target


def services(
    tmp_path: Path, *, deferred: tuple[str, ...] = (), instance_yaml: Path = DEPLOY / "dagster.yaml", **env: str
) -> DagsterServices:
    """The production topology: deploy/dagster.yaml, deploy/workspace.yaml, a separate code server."""
    return DagsterServices(
        tmp_path / "landing",
        tmp_path / "lakehouse",
        home=tmp_path / "home",
        env={"MEDALLION_SETTLE_SECONDS": "1", **env},
        instance_yaml=instance_yaml,
        workspace=DEPLOY / "workspace.yaml",
        code_server=True,
        deferred=deferred,
    )


def land_settled(landing: Path, days: int) -> None:
    """Sample order files for ``days`` days from 2024-01-01, older than the sensor's settle time."""
    generate(landing, days=days, orders_per_day=120, seed=11)
    old = time.time() - 120
    for path in (landing / "orders").rglob("*"):
        os.utime(path, (old, old))


def table_days(lakehouse: Path, name: str) -> list[str]:
    return sorted(DeltaTable(str(lakehouse / name)).to_pandas()["order_date"].astype(str).unique())


def pg_runs(target: PgTarget) -> dict[str, str]:
    """run_id → status, read from PostgreSQL itself."""
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs")
            return dict(cur.fetchall())
    finally:
        conn.close()


def sensor_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR})))


def stored_cursor(instance: dg.DagsterInstance) -> str | None:
    """The landing sensor's cursor as the daemon stored it (None before its first tick)."""
    (state,) = [s for s in instance.all_instigator_state() if s.name == SENSOR] or [None]
    return state.instigator_data.cursor if state and state.instigator_data else None


def ticks(dagster: DagsterServices) -> list[dict[str, Any]]:
    answer = dagster.graphql(SENSOR_TICKS, {"selector": SELECTOR})["sensorOrError"]
    assert answer["__typename"] == "Sensor", answer
    return sorted(answer["sensorState"]["ticks"], key=lambda t: t["timestamp"])


# --- configuration ---------------------------------------------------------------------------------------------


def test_production_instance_differs_from_the_dev_instance_only_in_storage() -> None:
    dev = yaml.safe_load((REPO / "dagster.yaml").read_text())
    prod = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    storage = prod.pop("storage")
    assert dev["instance_class"] == {"module": "resources.instance_storage", "class": "MedallionInstance"}
    assert prod == dev  # run coordinator, concurrency, run monitoring, telemetry: one set of settings
    assert (storage["custom"]["module"], storage["custom"]["class"]) == (
        "resources.instance_storage",
        "PooledPostgresStorage",
    )
    db = storage["custom"]["config"]["postgres_db"]
    fields = {"hostname": "HOST", "port": "PORT", "username": "USER", "password": "PASSWORD", "db_name": "DB"}
    assert {key: db[key] for key in fields} == {key: {"env": f"MEDALLION_PG_{v}"} for key, v in fields.items()}
    assert db["scheme"] == "postgresql+psycopg2" and db["params"]["connect_timeout"] > 0
    assert sorted(f"MEDALLION_PG_{v}" for v in fields.values()) == sorted(ENV_VARS)
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert workspace["load_from"] == [
        {
            "grpc_server": {
                "host": "127.0.0.1",
                "port": {"env": "MEDALLION_CODE_SERVER_PORT"},
                "location_name": "medallion",
            }
        }
    ]


def test_the_production_storage_keeps_one_connection_and_replaces_one_the_server_dropped(
    tmp_path: Path, pg: PgTarget
) -> None:
    """Every storage call used to connect anew (TCP + SCRAM); a pooled connection must survive the server ending it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    opened: list[object] = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    sqlalchemy.event.listen(Engine, "connect", on_connect)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            opened.clear()
            run = create_run_for_test(instance, job_name="j")
            for n in range(20):
                instance.report_engine_event(f"event {n}", run)
            assert instance.get_run_by_id(run.run_id) is not None
            assert len(opened) == 1  # runs, events and reads: one connection for the process
            conn = pg.connect()  # the server ends the instance's session (a restart, a failover, an idle timeout)
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                assert cur.fetchone()[0] == 1
            conn.close()
            instance.report_engine_event("after the drop", run)
            assert len(opened) == 2
            assert [r.event_log_entry.message for r in instance.get_records_for_run(run.run_id).records][-1] == (
                "after the drop"
            )
    finally:
        sqlalchemy.event.remove(Engine, "connect", on_connect)


def pg_instance_home(tmp_path: Path, name: str, target: PgTarget | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """deploy/dagster.yaml (``target`` None) or, on ``target``, dagster-postgres's own storage with no instance
    class: Dagster's defaults, events stored one by one."""
    home = tmp_path / name
    home.mkdir()
    if target is None:
        shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
        return home
    storage = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"]["custom"]["config"]
    for key, value in target.env().items():
        monkeypatch.setenv(key, value)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": storage}}))
    return home


def test_a_range_runs_event_batches_on_postgres_read_back_as_one_by_one_writes(
    tmp_path: Path, pg: PgTarget, postgres: PgTarget, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """The production instance writes each batch in one transaction (check evaluations too: dagster-postgres
    refuses them, so Dagster used to print the error and fall back); what it stored equals dagster-postgres's
    one-by-one writes."""
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    days = [f"2024-01-{d:02d}" for d in range(1, 31)]
    views = []
    stock_db = postgres.with_db(pg.db + "_stock")
    assert stock_db.ensure_database()
    for name, target in (("pooled", None), ("stock", stock_db)):
        with dg.DagsterInstance.from_config(str(pg_instance_home(tmp_path, name, target, monkeypatch))) as instance:
            assert (name == "pooled") == isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
            run = create_run_for_test(instance, job_name="j", run_id="b" * 8 + "-0000-0000-0000-000000000000")
            hand_over(instance, run, range_run_events(run, days))
            views.append(asset_view(instance, run))
            if name == "pooled":
                assert "Exception while storing event batch" not in capfd.readouterr().err
    assert views[0] == views[1]
    assert views[0]["partitions"] == days and views[0]["latest"] == days[-1] and len(views[0]["planned"]) == 30


@pytest.mark.parametrize("failing", ["store_asset_check_event", "_store_asset_event"])
def test_a_postgres_batch_that_fails_part_way_leaves_nothing_and_is_stored_once_event_by_event(
    tmp_path: Path, pg: PgTarget, postgres: PgTarget, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A write failing inside a batch (a dropped connection, a deadlock) rolls back all of the batch; Dagster then
    stores it event by event, so every event is stored exactly once (check evaluations and materializations)."""
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    run_id = "d" * 8 + "-0000-0000-0000-000000000000"
    with dg.DagsterInstance.from_config(str(pg_instance_home(tmp_path, "pooled", None, monkeypatch))) as instance:
        storage = instance.event_log_storage
        write, calls = getattr(storage, failing), []

        def fails_once(*args: Any) -> None:
            calls.append(args)
            if len(calls) == 5:
                raise sqlalchemy.exc.OperationalError(failing, {}, Exception("server closed the connection"))
            write(*args)

        monkeypatch.setattr(storage, failing, fails_once)
        run = create_run_for_test(instance, job_name="j", run_id=run_id)
        hand_over(instance, run, range_run_events(run, days))
        got = asset_view(instance, run)
    assert len(calls) > len(days) + 1  # the batch, then the batch again event by event
    stock_db = postgres.with_db(pg.db + "_stock")
    assert stock_db.ensure_database()
    with dg.DagsterInstance.from_config(str(pg_instance_home(tmp_path, "stock", stock_db, monkeypatch))) as stock:
        stock_run = create_run_for_test(stock, job_name="j", run_id=run_id)
        hand_over(stock, stock_run, range_run_events(stock_run, days))
        assert got == asset_view(stock, stock_run)


def test_a_local_cluster_takes_a_new_password_at_each_start_and_tcp_only() -> None:
    folder = Path(tempfile.mkdtemp(prefix="medallion-pg-"))
    cluster = LocalCluster(folder, port=free_port())
    try:
        cluster.init()
        cluster.start("first-password")
        cluster.stop()
        cluster.start("second-password")
        cluster.target("second-password", "postgres").connect().close()
        with pytest.raises(PostgresError, match="password authentication failed"):
            cluster.target("first-password", "postgres").connect()
        conn = cluster.target("second-password", "postgres").connect()
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')")
            assert cur.fetchone() == ("127.0.0.1", "")
            cur.execute("SELECT type, address, auth_method FROM pg_hba_file_rules")
            assert cur.fetchall() == [("host", "127.0.0.1", "scram-sha-256")]
        conn.close()
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert not cluster.running()


# --- runs on PostgreSQL ----------------------------------------------------------------------------------------


def quick_start_timeout(tmp_path: Path) -> Path:
    """deploy/dagster.yaml with run monitoring failing a never-started run after 30 s (not 180 s)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    config["run_monitoring"] |= {"start_timeout_seconds": 30, "poll_interval_seconds": 2}
    path = tmp_path / "dagster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_sensor_run_survives_a_daemon_kill_and_so_does_the_cursor(tmp_path: Path, pg: PgTarget) -> None:
    """The sensor's day is built exactly once though the daemon is SIGKILLed at the worst moment of a launch,
    and the restarted daemon's sensor ticks do not ask for the day again (its cursor was in PostgreSQL).

    The daemon launches a queued run in two writes: it marks the run STARTING, then asks the code server to start
    a worker. Killed between them, the run has no worker: run monitoring fails it (start timeout) and the run
    retries configured in dagster.yaml re-execute it. A run still queued at the kill is put in that state here
    (the daemon is dead: nothing else moves the run); one already launched must simply finish."""
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    land_settled(landing, 1)
    began = time.monotonic()
    with (
        services(tmp_path, instance_yaml=quick_start_timeout(tmp_path), MEDALLION_AUTOMATION="on") as dagster,
        dg.DagsterInstance.from_config(str(dagster.home)) as instance,
    ):
        first = wait_until(
            lambda: [t for t in ticks(dagster) if t["status"] == "SUCCESS" and t["runIds"]] or None,
            timeout=120,
            what="a sensor tick that launched a run",
        )[0]
        ticked = time.monotonic() - began
        (run_id,) = first["runIds"]
        # The daemon stores the tick, then the cursor: a kill in between is covered by run keys, not the cursor.
        cursor = wait_until(lambda: stored_cursor(instance), timeout=10, what="the sensor's cursor", interval=0.1)
        assert cursor == first["cursor"] and '"2024-01-01"' in cursor
        dagster.kill("daemon")
        at_kill = instance.get_run_by_id(run_id)
        status_at_kill = at_kill.status
        if status_at_kill == dg.DagsterRunStatus.QUEUED:  # the daemon's first write of a launch, without the second
            starting = DagsterEvent(dg.DagsterEventType.PIPELINE_STARTING.value, job_name=at_kill.job_name)
            instance.report_dagster_event(starting, run_id=run_id)
        dagster.start_process("daemon")
        restarted_at = time.time()

        def settled() -> list[dict[str, Any]] | None:  # a run of the day succeeded and the restarted daemon ticked
            dagster.check_alive()
            later = [t for t in ticks(dagster) if t["timestamp"] > restarted_at and t["status"] != "STARTED"]
            done = any(r.status == dg.DagsterRunStatus.SUCCESS for r in sensor_runs(instance))
            return later if later and done else None

        try:
            later = wait_until(settled, timeout=240, interval=2, what="a successful run and a tick after the restart")
        except TimeoutError as exc:
            story = [(r.run_id, r.status.value, r.tags.get("dagster/failure_reason")) for r in sensor_runs(instance)]
            raise AssertionError(f"{exc}\nruns: {story}\n--- daemon ---\n{dagster.log_tail('daemon')}") from exc
        recovered_after = time.time() - restarted_at
        runs = sorted(sensor_runs(instance), key=lambda r: r.run_id != run_id)
        stored = pg_runs(pg)

    assert status_at_kill not in FINISHED, status_at_kill  # the kill hit a queued, launching or running run
    outcome = [(r.run_id, r.status) for r in runs]
    retried = runs[0].status != dg.DagsterRunStatus.SUCCESS  # killed mid-launch (STARTING): either may happen
    if status_at_kill in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED):
        assert retried == (status_at_kill == dg.DagsterRunStatus.QUEUED), outcome  # QUEUED: the emulated mid-launch
    if not retried:
        assert outcome == [(run_id, dg.DagsterRunStatus.SUCCESS)]
    else:  # never launched: failed by run monitoring, retried once from the queue
        retry = runs[-1]
        assert outcome == [(run_id, dg.DagsterRunStatus.FAILURE), (retry.run_id, dg.DagsterRunStatus.SUCCESS)]
        assert "start" in failure_text(instance, run_id).lower(), failure_text(instance, run_id)
        assert retry.parent_run_id == run_id and retry.tags["dagster/retry_number"] == "1"
        assert retry.tags["dagster/partition"] == "2024-01-01"
    assert runs[0].tags["dagster/run_key"] == first["runKeys"][0] and runs[0].tags["dagster/partition"] == "2024-01-01"
    # The cursor survived: the restarted sensor asked for nothing (with a lost cursor it would ask for the day
    # again, and Dagster would record the run key on the tick as skipped).
    assert [(t["status"], t["runKeys"], t["cursor"]) for t in later] == [("SKIPPED", [], cursor)] * len(later)
    for name in ASSETS:
        assert table_days(lakehouse, name) == ["2024-01-01"], name
    assert {stored.get(r.run_id) for r in runs} >= {"SUCCESS"}  # the runs live in PostgreSQL
    assert not list((tmp_path / "home").rglob("*.db")), "no SQLite storage next to PostgreSQL"
    print(
        f"sensor run launched {ticked:.0f} s after start; daemon killed with it {status_at_kill.value}; "
        f"the day was built and the sensor ticked {recovered_after:.0f} s after the restart ({len(runs)} run(s))"
    )


def launch_backfill(dagster: DagsterServices, days: list[str]) -> str:
    params = {
        "partitionNames": days,
        "assetSelection": [{"path": name.split("/")} for name in ASSETS],
        "title": "production backfill",
    }
    launched = dagster.graphql(LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def backfill_state(dagster: DagsterServices, backfill_id: str) -> dict[str, Any]:
    dagster.check_alive()
    backfill = dagster.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    return backfill


def backfill_runs(dagster: DagsterServices, backfill_id: str, status: str) -> list[dict[str, Any]] | None:
    return [r for r in backfill_state(dagster, backfill_id)["runs"] if r["status"] == status] or None


def test_backfill_through_graphql_finishes_after_a_daemon_kill(tmp_path: Path, pg: PgTarget) -> None:
    """The daemon is SIGKILLed while the backfill's run runs; the run finishes without any daemon (its worker
    belongs to the code server), and the restarted daemon completes the backfill without launching anything."""
    landing, lakehouse = tmp_path / "landing", tmp_path / "lakehouse"
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    land_settled(landing, len(days))
    with services(tmp_path, deferred=("daemon",), MEDALLION_AUTOMATION="off") as dagster:
        backfill_id = launch_backfill(dagster, days)  # requested before the daemon starts: its first loop takes it
        dagster.start_process("daemon")
        (running,) = wait_until(
            lambda: backfill_runs(dagster, backfill_id, "STARTED"), timeout=120, what="the backfill's run"
        )
        dagster.kill("daemon")
        wait_until(
            lambda: backfill_runs(dagster, backfill_id, "SUCCESS"), timeout=180, what="the run, without a daemon"
        )
        while_down = backfill_state(dagster, backfill_id)
        dagster.start_process("daemon")
        restarted_at = time.monotonic()
        try:
            backfill = wait_until(
                lambda: (b := backfill_state(dagster, backfill_id))["status"] in TERMINAL and b,
                timeout=180,
                interval=1,
                what="the backfill",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- daemon ---\n{dagster.log_tail('daemon')}") from exc
        recovered_after = time.monotonic() - restarted_at
        stored = pg_runs(pg)

    assert while_down["status"] == "REQUESTED", while_down  # nothing marks it done while the daemon is dead
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert [(r["id"], r["status"]) for r in backfill["runs"]] == [(running["id"], "SUCCESS")]  # no re-launch
    assert stored.get(running["id"]) == "SUCCESS"
    for name in ASSETS:
        assert table_days(lakehouse, name) == days, name
    log = DeltaTable(str(lakehouse / "monitoring/pipeline_runs")).to_pandas()
    attempts = Counter(zip(log["asset"], log["partition"], strict=True))
    assert attempts == Counter((a, d) for a in ASSETS for d in days)  # each day built once
    print(f"backfill completed {recovered_after:.0f} s after the daemon restart")


def local_prod(
    action: str, state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "python"), "-m", "deploy.local_prod", action, "--state-dir", str(state), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


# --- bad configuration -----------------------------------------------------------------------------------------


def silent_server() -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never answers (a hung or firewalled PostgreSQL)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def run_timed(command: list[str], env: dict[str, str], results: dict[str, Any], name: str) -> None:
    """Run ``command`` to its end (killed after 120 s: a hang fails the test instead of stalling it)."""
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        done = subprocess.CompletedProcess(command, -9, str(exc.stdout or ""), str(exc.stderr or ""))
    results[name] = (time.monotonic() - started, done)


def test_unreachable_postgres_fails_fast_naming_host_and_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port (connection refused) and a silent server (accepts, never answers): the webserver, the
    daemon, ``DagsterInstance`` and ``make prod-local`` exit with an error naming host and port, in bounded time."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    marker = "pw-" + secrets.token_hex(8)
    sock, silent = silent_server()
    closed = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEDALLION_PG_")},
        "DAGSTER_HOME": str(home),
        "MEDALLION_PG_HOST": "127.0.0.1",
        "MEDALLION_PG_PORT": str(closed),
        "MEDALLION_PG_USER": "medallion",
        "MEDALLION_PG_PASSWORD": marker,
        "MEDALLION_PG_DB": "medallion",
        "MEDALLION_CODE_SERVER_PORT": str(free_port()),
    }
    workspace = str(DEPLOY / "workspace.yaml")
    results: dict[str, tuple[float, subprocess.CompletedProcess[str]]] = {}
    threads = [
        threading.Thread(
            target=run_timed,
            args=([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(free_port()), "-w", workspace], env),
            kwargs={"results": results, "name": "webserver"},
        ),
        threading.Thread(
            target=run_timed,
            args=([str(BIN / "dagster-daemon"), "run", "-w", workspace], {**env, "MEDALLION_PG_PORT": str(silent)}),
            kwargs={"results": results, "name": "daemon"},
        ),
    ]
    with sock:
        for thread in threads:
            thread.start()
        preflight = local_prod("start", tmp_path / "state", env=env)  # make prod-local checks first, once
        for name, value in env.items():
            if name.startswith("MEDALLION_PG_"):
                monkeypatch.setenv(name, value)
        started = time.monotonic()
        with pytest.raises(DagsterPostgresException) as failure:
            dg.DagsterInstance.from_config(str(home))
        instance_seconds = time.monotonic() - started
        for thread in threads:
            thread.join()

    assert preflight.returncode == 1 and preflight.stdout == "", preflight
    assert f"cannot connect to PostgreSQL at medallion@127.0.0.1:{closed}/medallion" in preflight.stderr
    cause = str(failure.value.__cause__)
    assert f'"127.0.0.1", port {closed} failed: Connection refused' in cause, cause
    assert instance_seconds < 30, instance_seconds  # 6 attempts with backoff
    seconds = {}
    for name, port, error in (("webserver", closed, "Connection refused"), ("daemon", silent, "timeout expired")):
        seconds[name], done = results[name]
        output = done.stdout + done.stderr
        assert done.returncode not in (0, -9), (name, done.returncode, output[-2000:])
        assert f'"127.0.0.1", port {port} failed: {error}' in output, (name, output[-3000:])
        assert "DagsterPostgresException" in output and marker not in output, name  # never the password
    assert seconds["webserver"] < 45 and seconds["daemon"] < 75, seconds  # silent: 6 x connect_timeout 5 s + backoff
    assert marker not in cause + preflight.stderr
    print(
        f"closed port: instance failed in {instance_seconds:.1f} s, webserver exited in {seconds['webserver']:.1f} s;"
        f" silent server: daemon exited in {seconds['daemon']:.1f} s"
    )


# --- make prod-local / make prod-stop --------------------------------------------------------------------------


def graphql(url: str, query: str) -> Any:
    request = urllib.request.Request(
        f"{url}/graphql", json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_prod_local_starts_the_topology_and_prod_stop_stops_it_by_pid(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION_PG_")}  # its own cluster
    env.update(MEDALLION_LANDING_ROOT=str(tmp_path / "landing"), MEDALLION_LAKEHOUSE_ROOT=str(tmp_path / "lakehouse"))
    state = Path(tempfile.mkdtemp(prefix="medallion-prod-"))  # not under pytest's 0700 tmp: the postgres OS user
    state.chmod(0o755)  # must reach <state>/postgres, as it reaches .prod/postgres in the repo
    ui_port, code_port = free_port(), free_port()
    procs: dict[str, Any] = {}
    try:
        try:
            started = time.monotonic()
            done = local_prod("start", state, "--ui-port", str(ui_port), "--code-server-port", str(code_port), env=env)
            start_seconds = time.monotonic() - started
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"Dagster UI: http://127.0.0.1:{ui_port}" in done.stdout
            topology = Topology(state)
            topology.load()
            procs = dict(topology.procs)
            assert sorted(procs) == ["code_server", "daemon", "postgres", "webserver"]
            assert all(p.alive() for p in procs.values())
            assert code_server_serving(code_port)
            query = "query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
            entries = graphql(topology.url, query)["workspaceOrError"]["locationEntries"]
            assert entries == [{"name": "medallion", "loadStatus": "LOADED"}]
            # The generated password reaches the processes through their environment only, never a file.
            environ = Path(f"/proc/{procs['webserver'].pid}/environ").read_bytes().split(b"\0")
            password = next(v.split(b"=", 1)[1] for v in environ if v.startswith(b"MEDALLION_PG_PASSWORD="))
            assert len(password) >= 24 and password not in done.stdout.encode()
            assert [f for f in state.rglob("*") if f.is_file() and password in f.read_bytes()] == []
        finally:
            stopping = time.monotonic()
            stopped = local_prod("stop", state)
            stop_seconds = time.monotonic() - stopping
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped: daemon, webserver, code_server, postgres" in stopped.stdout
        assert not any(p.alive() for p in procs.values())
        assert not (state / "pids.json").exists()
        assert (state / "postgres" / "data" / "PG_VERSION").exists()  # the cluster stays for the next start
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"prod-local came up in {start_seconds:.1f} s; prod-stop took {stop_seconds:.1f} s")

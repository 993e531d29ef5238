"""No secret the project reads ever reaches a log line, an exception, an alert or Dagster's storage.

Every secret is set to a unique marker, real runs go through Dagster into a temp instance (one that succeeds on
the session's Sail server with the Spark token in its ``sc://`` URL, ones that fail to connect, one in Databricks
mode), a failure alert is delivered to a closed port whose path holds the webhook secret, and then the instance
directory, the lakehouse, the captured logs and output and every exception text are searched for each marker.
"""

from __future__ import annotations

import logging
import socket
import traceback
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from medallion_assets.sample_data import generate
from resources.alerts import AlertWebhook
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.errors import EngineConfigError
from resources.landing import LandingZone
from resources.run_guard import RunGuard
from resources.settings import Settings

from .alerting import alert_failed_run
from .conftest import materialize_days

MARK = uuid.uuid4().hex[:12]
SPARK_TOKEN = f"sparktok{MARK}"
DATABRICKS_TOKEN = f"dapi{MARK}"
HOOK_SECRET = f"hooksecret{MARK}"
MARKERS = (SPARK_TOKEN, DATABRICKS_TOKEN, HOOK_SECRET)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leaks(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


def files_holding(root: Path, needles: tuple[str, ...]) -> dict[str, list[str]]:
    """Each file under ``root`` whose bytes hold one of ``needles``, with those needles."""
    found: dict[str, list[str]] = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def alert_for(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    """Run the failure sensor on a failed run, alerting through ``MEDALLION_ALERT_WEBHOOK`` (a closed port)."""
    alert_failed_run(instance, result, AlertWebhook.from_env())


@dg.asset
def token_probe(engine: SparkEngine) -> bool:
    """True when the session pyspark built carries the Spark token (the value itself is never returned)."""
    return engine.get_session().client.token == SPARK_TOKEN


@pytest.fixture
def secrets_env(monkeypatch, sail_url: str) -> str:
    """Every secret set to its marker; the engine in connect mode with the Spark token; returns the webhook URL."""
    webhook = f"http://127.0.0.1:{closed_port()}/services/T0/{HOOK_SECRET}"
    for var, value in {
        "MEDALLION_SPARK_TOKEN": SPARK_TOKEN,
        "DATABRICKS_TOKEN": DATABRICKS_TOKEN,
        "DATABRICKS_HOST": "https://dbc-medallion.example",
        "MEDALLION_ALERT_WEBHOOK": webhook,
        "MEDALLION_ENGINE": "connect",
        # pyspark sends a token as a bearer token: over TLS, or over local credentials when the host is
        # `localhost` — the session Sail server is plaintext, so it is reached as localhost.
        "MEDALLION_SPARK_REMOTE": sail_url.replace("127.0.0.1", "localhost"),
        "MEDALLION_CONNECT_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(var, value)
    return webhook


class LeakSearch:
    """Collects exception texts; searches them, the captured logs and output, and the storage directories."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture, *roots: Path) -> None:
        self.caplog, self.capfd, self.roots = caplog, capfd, roots
        self.texts: list[str] = []
        self.output = ""

    def add_run(self, result: dg.ExecuteInProcessResult) -> None:
        self.texts += [e.message or "" for e in result.all_events]
        self.texts += [str(e.event_specific_data) for e in result.all_events if e.event_specific_data]

    def add_exception(self, exc: BaseException) -> None:
        self.texts += [str(exc), "".join(traceback.format_exception(exc))]

    def assert_clean(self) -> None:
        captured = self.capfd.readouterr()
        self.output += captured.out + captured.err
        assert leaks(self.caplog.text) == [], "log records"
        assert leaks(self.output) == [], "stdout/stderr"
        assert leaks("\n".join(self.texts)) == [], "exceptions and Dagster events"
        for root in self.roots:
            assert files_holding(root, MARKERS) == {}, root


def test_no_secret_reaches_logs_exceptions_alerts_or_dagster_storage(
    secrets_env: str, sail_url: str, monkeypatch, caplog, capfd, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    landing, lakehouse, home = tmp_path / "landing", tmp_path / "lakehouse", tmp_path / "home"
    home.mkdir()
    generate(landing, days=1, orders_per_day=100, seed=3, start=date(2024, 1, 2))
    search = LeakSearch(caplog, capfd, home, lakehouse)

    def resources() -> dict[str, object]:
        """As ``definitions.build_resources`` makes them: secrets are ``EnvVar`` references."""
        return {
            "engine": SparkEngine.from_env(),
            "store": DeltaTableStore(root=str(lakehouse)),
            "landing": LandingZone(root=str(landing)),
            "settings": Settings.from_env(),
            "run_guard": RunGuard(),
        }

    with dg.DagsterInstance.local_temp(str(home)) as instance:
        # 1. a real materialization over Spark Connect with the token in the sc:// URL
        ok = materialize_days(resources(), "2024-01-02", instance=instance)
        assert ok.success
        search.add_run(ok)
        probe = dg.materialize_to_memory([token_probe], instance=instance, resources=resources())
        assert probe.output_for_node("token_probe")  # pyspark did take the token from the sc:// URL
        search.add_run(probe)
        search.assert_clean()

        # 2. Databricks mode (databricks-connect is not installed here), its failure alerted to the closed port
        monkeypatch.setenv("MEDALLION_ENGINE", "databricks")
        failed = [materialize_days(resources(), "2024-01-02", instance=instance)]
        alert_for(instance, failed[-1])
        search.add_run(failed[-1])
        assert f"alert webhook {secrets_env.split('/services')[0]}/… failed" in caplog.text
        search.assert_clean()

        # 3. connection failures with the token set: a closed port; the token on plaintext 127.0.0.1 (TLS refused);
        #    a URL pyspark rejects (its message quotes the URL, token included)
        monkeypatch.setenv("MEDALLION_ENGINE", "connect")
        for remote in (f"sc://127.0.0.1:{closed_port()}", sail_url, "sc://:15002"):
            monkeypatch.setenv("MEDALLION_SPARK_REMOTE", remote)
            failed.append(materialize_days(resources(), "2024-01-02", instance=instance))
            alert_for(instance, failed[-1])
            search.add_run(failed[-1])
            with pytest.raises(EngineConfigError, match="MEDALLION_SPARK_REMOTE") as raised:
                SparkEngine(mode="connect", token=SPARK_TOKEN).get_session()  # the same, outside Dagster
            search.add_exception(raised.value)
            assert remote in str(raised.value)
        search.assert_clean()

    assert all(not r.success for r in failed)
    # the storage search does read Dagster's databases: every run id is in them
    runs_db = files_holding(home, tuple(r.run_id for r in [ok, *failed]))
    assert sorted({n for hits in runs_db.values() for n in hits}) == sorted(r.run_id for r in [ok, *failed])

"""Failure alerts delivered to a webhook on 127.0.0.1, weekly maintenance, concurrent writers."""

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from medallion_assets.definitions import ASSETS
from medallion_assets.maintenance import LOG_TABLE, maintenance_job
from medallion_assets.sample_data import FAULTS, generate
from resources.alerts import AlertWebhook
from sensors.alert_sensors import quality_gate_alert

from .alerting import alert_failed_run
from .conftest import materialize_days

BAD = {**{k: 0.0 for k in FAULTS}, "unknown_status": 0.2}


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()
    thread.join()


def test_a_real_failed_run_posts_an_alert(resources, landing_root, tmp_path, webhook) -> None:
    url, received = webhook
    generate(landing_root, days=1, orders_per_day=100, seed=1, start=date(2024, 1, 2), rates=BAD)
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        result = materialize_days(resources, "2024-01-02", instance=instance)
        assert not result.success
        alert_failed_run(instance, result, AlertWebhook(url=url))
    [alert] = received
    assert alert["kind"] == "run_failure" and alert["run_id"] == result.run_id
    assert alert["failed_assets"] == ["silver/orders"] and alert["partitions"] == ["2024-01-02"]
    assert "refused 1 partition" in alert["error"] and "status_known" in alert["error"]


def test_a_refused_gate_in_a_successful_run_posts_an_alert(resources, store, landing_root, tmp_path, webhook) -> None:
    url, received = webhook
    generate(landing_root, days=1, orders_per_day=100, seed=1, start=date(2024, 1, 1))
    generate(landing_root, days=1, orders_per_day=100, seed=1, start=date(2024, 1, 2), rates=BAD)
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        result = materialize_days(resources, "2024-01-01", "2024-01-02", instance=instance)
        assert result.success
        success = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name="quality_gate_alert",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=success,
            resources={"alerts": AlertWebhook(url=url), "store": store},
        )
        quality_gate_alert(context)
    [alert] = received
    assert alert["kind"] == "quality_gate_refused" and alert["partitions"] == ["2024-01-02"]
    assert alert["failed_assets"] == ["gold/daily_sales", "silver/orders"]


def test_alert_without_a_webhook_is_only_logged(caplog) -> None:
    assert AlertWebhook().send({"kind": "x"}) is False
    assert AlertWebhook(url="http://127.0.0.1:9/none", timeout_seconds=1).send({"kind": "x"}) is False
    assert "medallion alert" in caplog.text


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_delivery_logs_the_webhook_host_but_never_its_path(caplog) -> None:
    port = closed_port()
    hook = AlertWebhook(url=f"http://127.0.0.1:{port}/services/T000/SECRETHOOK789", timeout_seconds=2)
    assert hook.send({"kind": "x", "note": f"posted to http://127.0.0.1:{port}/services/T000/SECRETHOOK789"}) is False
    assert f"alert webhook http://127.0.0.1:{port}/… failed" in caplog.text
    assert "SECRETHOOK789" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com/services/SECRETHOOK789",  # no scheme: urllib's error quotes the URL
        "http://hooks.example.com/ SECRETHOOK789",  # http.client.InvalidURL quotes the path
        "http://[hooks.example.com/SECRETHOOK789",  # urlsplit itself refuses it
    ],
)
def test_a_malformed_webhook_url_is_logged_redacted_and_never_raises(caplog, url: str) -> None:
    assert AlertWebhook(url=url, timeout_seconds=1).send({"kind": "x"}) is False
    assert "alert webhook" in caplog.text and "SECRETHOOK789" not in caplog.text


@dg.asset
def disk_full() -> None:
    raise OSError(28, "No space left on device: /lakehouse/silver/orders/part-0001.parquet")


@dg.asset
def wrapped_failure() -> None:
    try:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte in landing/orders/day.jsonl")
    except UnicodeDecodeError as exc:
        raise RuntimeError("could not read the landing files " + "x" * 5000) from exc


def failed_run_alert(asset: dg.AssetsDefinition, tmp_path: Path, url: str) -> None:
    """Materialize ``asset`` (which raises) into a temp instance and run the failure sensor on the failed run."""
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        result = dg.materialize([asset], instance=instance, raise_on_error=False)
        assert not result.success
        alert_failed_run(instance, result, AlertWebhook(url=url))


def test_a_failure_alert_carries_the_cause_of_a_user_code_error(tmp_path, webhook) -> None:
    url, received = webhook
    failed_run_alert(disk_full, tmp_path, url)
    [alert] = received
    assert alert["failed_assets"] == ["disk_full"]
    assert "OSError: [Errno 28] No space left on device: /lakehouse/silver/orders/part-0001.parquet" in alert["error"]


def test_a_failure_alert_names_every_cause_in_the_chain_within_a_bound(tmp_path, webhook) -> None:
    url, received = webhook
    failed_run_alert(wrapped_failure, tmp_path, url)
    [alert] = received
    assert "RuntimeError: could not read the landing files" in alert["error"]
    assert "UnicodeDecodeError" in alert["error"] and "landing/orders/day.jsonl" in alert["error"]
    assert len(alert["error"]) <= 4000  # sensors.alert_sensors.MAX_ERROR_CHARS


def test_weekly_maintenance_compacts_vacuums_and_records(resources, store, landing_root) -> None:
    generate(landing_root, days=2, orders_per_day=50, seed=2)
    for _ in range(3):
        assert materialize_days(resources, "2024-01-01", selection="bronze/orders").success
    bronze = store.table_uri("bronze/orders")
    files_before = len(DeltaTable(bronze).file_uris())
    leftover = Path(store.root_uri) / "_staging" / "silver_orders-dead0000beef"
    leftover.mkdir(parents=True)  # scratch of a run that died while staging, two days ago
    os.utime(leftover, (time.time() - 48 * 3600,) * 2)
    fresh = leftover.with_name("silver_orders-running0000")  # a run staging right now keeps its scratch
    fresh.mkdir()
    result = maintenance_job.execute_in_process(
        resources={"store": store},
        run_config={"ops": {"compact_and_vacuum": {"config": {"retention_hours": 0}}}},
    )
    assert result.success
    done = result.output_for_node("compact_and_vacuum")
    assert set(done) >= {"bronze/orders", "monitoring/pipeline_runs"}
    assert done["bronze/orders"]["files_vacuumed"] > 0
    assert len(DeltaTable(bronze).file_uris()) <= files_before
    checkpoint = json.loads((Path(bronze) / "_delta_log" / "_last_checkpoint").read_text())
    assert checkpoint["version"] == done["bronze/orders"]["checkpoint_version"] == DeltaTable(bronze).version()
    assert not leftover.exists() and fresh.exists()
    # what is left on disk: the live files plus those the compaction just replaced (next week's vacuum)
    on_disk = len([p for p in Path(bronze).rglob("*.parquet") if "_delta_log" not in p.parts])
    assert on_disk == len(DeltaTable(bronze).file_uris()) + done["bronze/orders"]["files_removed"]
    log = DeltaTable(store.table_uri(LOG_TABLE)).to_pandas()
    assert set(log["table"]) == set(done) and (log["retention_hours"] == 0).all()


def test_two_concurrent_materializations_of_the_same_table_stay_correct(
    resources, store, landing_root, tmp_path
) -> None:
    generate(landing_root, days=1, orders_per_day=200, seed=4)
    (tmp_path / "home").mkdir()
    results: list[dg.ExecuteInProcessResult] = []
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        threads = [
            threading.Thread(
                target=lambda: results.append(materialize_days(resources, "2024-01-01", instance=instance))
            )
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 2 and all(r.success for r in results)
    silver = DeltaTable(store.table_uri("silver/orders")).to_pandas()
    assert not silver.duplicated(["order_date", "order_id"]).any()
    single = materialize_days(resources, "2024-01-01")
    assert single.success
    again = DeltaTable(store.table_uri("silver/orders")).to_pandas()
    assert len(again) == len(silver)
    assert ASSETS[1].op.pool == "delta_silver_orders"

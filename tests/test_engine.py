"""The engine resource in each mode: embedded Sail, a Connect endpoint, Databricks (not installed here)."""

import socket

import dagster as dg
import pytest

from resources.engine import SparkEngine
from resources.errors import EngineConfigError


def port_open(url: str) -> bool:
    host, port = url.removeprefix("sc://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_sail_mode_starts_on_loopback_in_utc_and_stops_at_teardown() -> None:
    engine = SparkEngine(mode="sail")
    spark = engine.get_session()
    assert spark.range(5).count() == 5
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    host, port = engine._server.listening_address
    assert host == "127.0.0.1" and port_open(f"sc://{host}:{port}")
    assert engine.get_session() is spark  # once per run process
    engine.stop()
    assert not port_open(f"sc://{host}:{port}")


def test_connect_mode_uses_the_remote_from_the_environment(monkeypatch, sail_url: str) -> None:
    monkeypatch.setenv("MEDALLION_ENGINE", "connect")
    monkeypatch.setenv("MEDALLION_SPARK_REMOTE", sail_url)
    engine = SparkEngine()
    assert engine.resolved_mode == "connect"
    assert engine.get_session().sql("select 1 + 1 as x").collect()[0].x == 2
    assert engine._server is None  # nothing embedded was started
    engine.stop()
    assert port_open(sail_url)  # the endpoint belongs to someone else and stays up


def test_connect_token_is_passed_in_the_url() -> None:
    engine = SparkEngine(mode="connect", remote="sc://spark.example:15002", token="s3cret")
    assert engine._connect_url() == "sc://spark.example:15002/;token=s3cret"


def test_token_comes_from_an_env_var_reference(monkeypatch) -> None:
    monkeypatch.setenv("MEDALLION_SPARK_TOKEN", "from-env")
    engine = SparkEngine.from_env()
    assert isinstance(engine.token, dg.EnvVar) or "MEDALLION_SPARK_TOKEN" in str(engine.token)

    @dg.asset
    def probe(engine: SparkEngine) -> str:
        return engine.token

    result = dg.materialize_to_memory([probe], resources={"engine": engine})
    assert result.output_for_node("probe") == "from-env"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "yarn"}, "unknown engine mode"),
        ({"mode": "connect"}, "needs a Spark Connect URL"),
        ({"mode": "connect", "remote": "http://x:1"}, "needs a Spark Connect URL"),
        ({"mode": "databricks"}, "databricks-connect"),
    ],
)
def test_bad_configuration_is_a_clear_error(monkeypatch, config: dict, message: str) -> None:
    monkeypatch.delenv("MEDALLION_SPARK_REMOTE", raising=False)
    with pytest.raises(EngineConfigError, match=message):
        SparkEngine(**config).get_session()

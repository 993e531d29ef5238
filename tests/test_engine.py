"""The engine resource in each mode: embedded Sail, a Connect endpoint, Databricks (not installed here)."""

import contextlib
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator

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


def test_sails_own_memory_pool_settings_reach_the_embedded_engine(monkeypatch) -> None:
    """The README bounds the embedded engine's memory with Sail's own variables: they must reach the server.
    A pool of one kilobyte with spilling switched off cannot sort 200,000 rows."""
    from pyspark.errors import PySparkException

    monkeypatch.setenv("SAIL_RUNTIME__MEMORY_POOL__TYPE", "fair")
    monkeypatch.setenv("SAIL_RUNTIME__MEMORY_POOL__FAIR__MAX_SIZE", "1024")
    monkeypatch.setenv("SAIL_RUNTIME__TEMPORARY_FILES__MAX_SIZE", "0")
    engine = SparkEngine(mode="sail")
    try:
        spark = engine.get_session()
        with pytest.raises(PySparkException, match=r"(?i)resources exhausted|memory"):
            spark.range(200_000).selectExpr("id", "uuid() AS u").orderBy("u").collect()
    finally:
        engine.stop()


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


def run_bounded(fn: Callable[[], object], seconds: float) -> tuple[BaseException | None, float]:
    """Run ``fn`` in a daemon thread; its exception (None on success) and the elapsed time. Fails if it hangs."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome[0], time.monotonic() - started


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


def test_connect_to_a_closed_port_fails_fast_naming_the_url(monkeypatch, closed_port: int) -> None:
    monkeypatch.setenv("MEDALLION_CONNECT_TIMEOUT_SECONDS", "3")
    engine = SparkEngine(mode="connect", remote=f"sc://127.0.0.1:{closed_port}", token="TOKEN-SECRET-1")
    error, elapsed = run_bounded(engine.get_session, 3 + 5)
    assert isinstance(error, EngineConfigError), error
    assert f"sc://127.0.0.1:{closed_port}" in str(error) and "MEDALLION_SPARK_REMOTE" in str(error)
    assert "TOKEN-SECRET-1" not in str(error) and elapsed < 3


def test_connect_to_a_server_that_never_answers_fails_within_the_timeout(monkeypatch, silent_server: int) -> None:
    monkeypatch.setenv("MEDALLION_CONNECT_TIMEOUT_SECONDS", "2")
    engine = SparkEngine(mode="connect", remote=f"sc://127.0.0.1:{silent_server}")
    error, elapsed = run_bounded(engine.get_session, 2 + 5)
    assert isinstance(error, EngineConfigError), error
    assert f"sc://127.0.0.1:{silent_server}" in str(error) and "MEDALLION_CONNECT_TIMEOUT_SECONDS" in str(error)
    assert 2 <= elapsed < 2 + 2


def test_a_token_on_a_plaintext_endpoint_fails_fast_without_echoing_it(monkeypatch, sail_url: str) -> None:
    """pyspark speaks TLS when a token is set and the host is not ``localhost``: Sail on 127.0.0.1 is plaintext."""
    monkeypatch.setenv("MEDALLION_CONNECT_TIMEOUT_SECONDS", "5")
    engine = SparkEngine(mode="connect", remote=sail_url, token="TOKEN-SECRET-2")
    error, elapsed = run_bounded(engine.get_session, 5 + 5)
    assert isinstance(error, EngineConfigError), error
    assert sail_url in str(error) and "TLS" in str(error) and "TOKEN-SECRET-2" not in str(error)
    assert elapsed < 5


def test_a_token_reaches_a_localhost_endpoint(sail_url: str) -> None:
    """Sail accepts ``;token=``: pyspark sends it as a bearer token over local credentials on ``localhost``."""
    remote = sail_url.replace("127.0.0.1", "localhost")
    engine = SparkEngine(mode="connect", remote=remote, token="to+k/en==")
    spark = engine.get_session()
    assert spark.client.token == "to+k/en==" and spark.range(3).count() == 3
    engine.stop()


@pytest.mark.parametrize(
    "remote",
    ["sc://:15002/;token=TOKEN-SECRET-3", "http://spark.example:15002/;token=TOKEN-SECRET-3"],
)
def test_a_bad_remote_url_is_a_clear_error_that_hides_its_token(monkeypatch, remote: str) -> None:
    monkeypatch.setenv("MEDALLION_SPARK_REMOTE", remote)
    with pytest.raises(EngineConfigError, match="MEDALLION_SPARK_REMOTE") as raised:
        SparkEngine(mode="connect").get_session()
    assert "TOKEN-SECRET-3" not in str(raised.value)
    assert raised.value.__cause__ is None  # no pyspark error quoting the URL is chained (Dagster would store it)
    assert raised.value.__context__ is None or raised.value.__suppress_context__


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_an_invalid_connect_timeout_names_the_variable(monkeypatch, sail_url: str, value: str) -> None:
    monkeypatch.setenv("MEDALLION_CONNECT_TIMEOUT_SECONDS", value)
    with pytest.raises(EngineConfigError, match="MEDALLION_CONNECT_TIMEOUT_SECONDS"):
        SparkEngine(mode="connect", remote=sail_url).get_session()


def test_connect_retries_of_an_unavailable_endpoint_are_bounded(sail_url: str) -> None:
    """pyspark's default policy retries an UNAVAILABLE endpoint for about 10 minutes."""
    engine = SparkEngine(mode="connect", remote=sail_url)
    [policy] = engine.get_session().client.get_retry_policies()
    state, waited_ms = policy.to_state(), 0
    while (wait := state.next_attempt()) is not None:
        waited_ms += wait
    assert 10_000 <= waited_ms <= 70_000
    engine.stop()


class FakeDatabricks(types.ModuleType):
    """``databricks.connect`` stand-in (not installed here): records the builder calls, fails like a bad login."""

    def __init__(self) -> None:
        super().__init__("databricks.connect")
        self.calls: list[dict] = []
        fake = self

        class Builder:
            def remote(self, **kwargs: str) -> "Builder":
                fake.calls.append(kwargs)
                return self

            def serverless(self, on: bool) -> "Builder":
                return self

            def create(self) -> None:
                token = fake.calls[-1].get("token") if fake.calls else None
                raise RuntimeError(f"invalid access token {token} for workspace")

        self.DatabricksSession = type("DatabricksSession", (), {"builder": Builder()})


@pytest.fixture
def fake_databricks(monkeypatch, tmp_path) -> FakeDatabricks:
    module = FakeDatabricks()
    monkeypatch.setitem(sys.modules, "databricks.connect", module)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.databrickscfg
    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_FILE", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return module


def test_databricks_without_a_workspace_is_a_clear_error_before_connecting(fake_databricks: FakeDatabricks) -> None:
    with pytest.raises(EngineConfigError, match="DATABRICKS_HOST"):
        SparkEngine(mode="databricks").get_session()
    assert fake_databricks.calls == []  # never reached Databricks' own (possibly interactive) login


def test_databricks_login_errors_never_echo_the_token(fake_databricks: FakeDatabricks) -> None:
    engine = SparkEngine(mode="databricks", databricks_host="https://dbc.example", databricks_token="dapiSECRET4")
    with pytest.raises(EngineConfigError, match="invalid access token") as raised:
        engine.get_session()
    assert "dapiSECRET4" not in str(raised.value) and raised.value.__cause__ is None

"""The Spark engine resource: hands assets a Spark Connect ``SparkSession``.

Engine choice is configuration, never code:

* ``sail`` (default) — start the Sail Spark Connect server in this process on 127.0.0.1 (ephemeral port),
  once per run process, and stop it at teardown;
* ``connect`` — any Spark 4 Connect endpoint (``sc://host:port``), optional bearer token;
* ``databricks`` — Databricks Connect to a cluster or serverless compute.

Unset fields fall back to ``MEDALLION_ENGINE``, ``MEDALLION_SPARK_REMOTE`` and
``MEDALLION_CONNECT_TIMEOUT_SECONDS`` at run time. In ``connect`` mode the endpoint must accept a TCP connection and
complete the gRPC handshake within the connect timeout, and pyspark's retries of an unavailable endpoint stop after
about a minute (its default is about ten). No URL with its token, and no token, is ever put in a message.
"""

from __future__ import annotations

import math
import os
import queue
import re
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import PrivateAttr

from resources.databricks import databricks_session
from resources.errors import EngineConfigError, EngineConnectError, redact_url, scrub

if TYPE_CHECKING:
    import grpc
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.core import DefaultChannelBuilder
    from pyspark.sql.connect.client.retries import RetryPolicy

EngineMode = Literal["sail", "connect", "databricks"]
ENGINE_MODES: tuple[str, ...] = ("sail", "connect", "databricks")

#: Secrets and endpoints the engine reads through ``dagster.EnvVar`` when they are set.
ENGINE_ENV_VARS = {
    "token": "MEDALLION_SPARK_TOKEN",
    "databricks_host": "DATABRICKS_HOST",
    "databricks_token": "DATABRICKS_TOKEN",
    "databricks_cluster_id": "DATABRICKS_CLUSTER_ID",
}
REMOTE_VAR = "MEDALLION_SPARK_REMOTE"
CONNECT_TIMEOUT_VAR = "MEDALLION_CONNECT_TIMEOUT_SECONDS"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
#: How long pyspark keeps retrying an UNAVAILABLE Connect endpoint (its default policy: about 10 minutes).
RETRY_BUDGET_SECONDS = 60.0
RETRY_MAX_BACKOFF_MS = 10_000


class SparkEngine(dg.ConfigurableResource):
    """A lazily created Spark Connect session on Sail, a Connect endpoint or Databricks."""

    mode: str | None = None
    remote: str | None = None
    token: str | None = None
    databricks_host: str | None = None
    databricks_token: str | None = None
    databricks_cluster_id: str | None = None
    databricks_serverless: bool = False
    connect_timeout_seconds: float | None = None
    spark_conf: dict[str, str] = {}

    _server: Any = PrivateAttr(default=None)
    _session: Any = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> SparkEngine:
        """An engine whose secrets are ``dagster.EnvVar`` references for each variable that is set."""
        kwargs: dict[str, Any] = {f: dg.EnvVar(v) for f, v in ENGINE_ENV_VARS.items() if os.environ.get(v)}
        if os.environ.get("DATABRICKS_SERVERLESS", "").lower() in ("1", "true", "yes"):
            kwargs["databricks_serverless"] = True
        return cls(**kwargs)

    @property
    def resolved_mode(self) -> str:
        """The engine mode in force: the field, else ``MEDALLION_ENGINE``, else ``sail``."""
        mode = (self.mode or os.environ.get("MEDALLION_ENGINE") or "sail").strip().lower()
        if mode not in ENGINE_MODES:
            raise EngineConfigError(f"unknown engine mode {mode!r}; expected one of {', '.join(ENGINE_MODES)}")
        return mode

    @property
    def resolved_connect_timeout(self) -> float:
        """Seconds a Connect endpoint has to answer: the field, else ``MEDALLION_CONNECT_TIMEOUT_SECONDS``, else 10."""
        if self.connect_timeout_seconds is not None:
            return positive_seconds(self.connect_timeout_seconds, "connect_timeout_seconds")
        raw = os.environ.get(CONNECT_TIMEOUT_VAR, "").strip()
        return positive_seconds(raw, CONNECT_TIMEOUT_VAR) if raw else DEFAULT_CONNECT_TIMEOUT_SECONDS

    def get_session(self) -> SparkSession:
        """The session for this run, created on first use (session time zone UTC)."""
        if self._session is None:
            self._session = self._create_session()
            conf = {"spark.sql.session.timeZone": "UTC", **self.spark_conf}
            for key, value in conf.items():
                self._session.conf.set(key, value)
        return self._session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the session, then the embedded Sail server if this engine started one."""
        if self._session is not None:
            self._session.stop()
            self._session = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _create_session(self) -> SparkSession:
        mode = self.resolved_mode
        if mode == "databricks":
            return databricks_session(
                host=self.databricks_host,
                token=self.databricks_token,
                cluster_id=self.databricks_cluster_id,
                serverless=self.databricks_serverless,
            )
        if mode == "sail":
            from pyspark.sql import SparkSession

            return SparkSession.builder.remote(self._start_sail()).create()
        return self._connect_session()

    def _start_sail(self) -> str:
        from pysail.spark import SparkConnectServer

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        self._server = server
        host, port = server.listening_address
        return f"sc://{host}:{port}"

    def _connect_url(self) -> str:
        url = self.remote or os.environ.get(REMOTE_VAR)
        if not url or not url.startswith("sc://"):
            shown = redact_url(url) if url else repr(url)
            raise EngineConfigError(
                f"engine mode 'connect' needs a Spark Connect URL sc://host:port ({REMOTE_VAR}), got {shown}"
            )
        if self.token and ";token=" not in url:
            url = f"{url.rstrip('/')}/;token={urllib.parse.quote(self.token, safe='')}"
        return url

    def _connect_session(self) -> SparkSession:
        """A session on the Connect endpoint once it answered within the timeout, with bounded retries."""
        from pyspark.sql import SparkSession

        timeout, url = self.resolved_connect_timeout, self._connect_url()
        builder = channel_builder(url, [self.token, *url_tokens(url)])
        wait_for_endpoint(builder, redact_url(url), timeout)
        session = SparkSession.builder.remote(url).create()
        session.client.set_retry_policies([bounded_retry_policy(RETRY_BUDGET_SECONDS)])
        return session


def positive_seconds(value: object, name: str) -> float:
    """``value`` as a positive, finite number of seconds; an error naming ``name`` otherwise."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise EngineConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def url_tokens(url: str) -> list[str]:
    """The ``;token=`` values of a Connect URL, as written and URL-decoded."""
    raw = re.findall(r";token=([^;]*)", url)
    return [*raw, *(urllib.parse.unquote(t) for t in raw)]


def channel_builder(url: str, secrets: list[str | None]) -> DefaultChannelBuilder:
    """pyspark's parse of ``url``; its errors (which quote the URL, token included) become redacted ones."""
    from pyspark.errors import PySparkValueError
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    try:
        return DefaultChannelBuilder(url)
    except PySparkValueError as exc:
        detail = scrub(str(exc), secrets)
        raise EngineConfigError(f"invalid Spark Connect URL {redact_url(url)} ({REMOTE_VAR}): {detail}") from None


def wait_for_endpoint(builder: DefaultChannelBuilder, shown: str, timeout: float) -> None:
    """Raise :class:`EngineConnectError` unless the endpoint accepts TCP and completes the gRPC handshake in time."""
    import grpc

    deadline = time.monotonic() + timeout
    where = f"the Spark Connect endpoint {shown} ({REMOTE_VAR})"
    probe_tcp(builder.endpoint, timeout, where)
    channel = builder.toChannel()
    try:
        state = handshake(channel, max(deadline - time.monotonic(), 0.0))
    finally:
        channel.close()
    if state is None:
        raise EngineConnectError(
            f"{where} accepted a connection but did not complete the gRPC handshake within {timeout:g} s "
            f"({CONNECT_TIMEOUT_VAR}); is it a Spark Connect server?"
        )
    if state != grpc.ChannelConnectivity.READY:
        tls = " pyspark speaks TLS to it (token or use_ssl=true, host not localhost);" if builder.secure else ""
        raise EngineConnectError(f"{where} refused the gRPC handshake;{tls} check the URL and the server")


def probe_tcp(endpoint: str, timeout: float, where: str) -> None:
    """Open and close a TCP connection to ``host:port``; a clear error when that fails within ``timeout``."""
    host, _, port = endpoint.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise EngineConnectError(f"cannot reach {where} within {timeout:g} s ({CONNECT_TIMEOUT_VAR}): {exc}") from None


def handshake(channel: grpc.Channel, timeout: float) -> grpc.ChannelConnectivity | None:
    """``READY``, or ``TRANSIENT_FAILURE`` when the first attempt failed; None when neither came within ``timeout``."""
    import grpc

    settled = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    states: queue.Queue[grpc.ChannelConnectivity] = queue.Queue()
    channel.subscribe(states.put, try_to_connect=True)
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                state = states.get(timeout=left)
            except queue.Empty:
                return None
            if state in settled:
                return state
        return None
    finally:
        channel.unsubscribe(states.put)


def bounded_retry_policy(budget_seconds: float) -> RetryPolicy:
    """pyspark's default retry policy (same errors, same backoff, capped at 10 s) that gives up after the budget."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    default = DefaultPolicy()
    retries, waited, wait = 0, 0.0, float(default.initial_backoff)
    while waited + wait <= budget_seconds * 1000:
        retries, waited = retries + 1, waited + wait
        wait = min(RETRY_MAX_BACKOFF_MS, wait * default.backoff_multiplier)
    return DefaultPolicy(
        max_retries=retries, max_backoff=RETRY_MAX_BACKOFF_MS, max_server_retry_delay=RETRY_MAX_BACKOFF_MS
    )

"""The Spark engine resource: hands assets a Spark Connect ``SparkSession``.

Engine choice is configuration, never code:

* ``sail`` (default) — start the Sail Spark Connect server in this process on 127.0.0.1 (ephemeral port),
  once per run process, and stop it at teardown; ``sail_mode`` ``local`` (default) runs it as one engine,
  ``local-cluster`` as a driver and ``sail_workers`` workers (each with ``sail_task_slots`` task slots) in this
  process, talking RPC over 127.0.0.1; ``kubernetes-cluster`` is refused here (see ``deploy/engines/``);
* ``connect`` — any Spark 4 Connect endpoint (``sc://host:port``), optional bearer token;
* ``databricks`` — Databricks Connect to a cluster or serverless compute.

Unset fields fall back to ``MEDALLION_ENGINE``, ``MEDALLION_SPARK_REMOTE``, ``MEDALLION_CONNECT_TIMEOUT_SECONDS``
and ``MEDALLION_SAIL_MODE``/``_WORKERS``/``_TASK_SLOTS`` at run time (``from_env`` also checks them when the
definitions load).

pysail takes its configuration only from ``SAIL_*`` process environment variables (``SAIL_MODE``,
``SAIL_CLUSTER__WORKER_INITIAL_COUNT``: the key ``cluster.worker_initial_count`` upper-cased, ``.`` → ``__``), read
when the ``SparkConnectServer`` object is created (pysail 0.7.2: not at ``start()``). The engine sets the variables
it manages for exactly that moment, under a lock, and restores the previous values: other ``SAIL_*`` variables of
the process still apply, and nothing it sets outlives the server's start.

In ``connect`` mode the endpoint must accept a TCP connection and complete the gRPC handshake within the connect
timeout, and pyspark's retries of an unavailable endpoint stop after about a minute (its default is about ten).
No URL with its token, and no token, is ever put in a message.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
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

SAIL_MODE_VAR = "MEDALLION_SAIL_MODE"
SAIL_WORKERS_VAR = "MEDALLION_SAIL_WORKERS"
SAIL_TASK_SLOTS_VAR = "MEDALLION_SAIL_TASK_SLOTS"
SAIL_MODES: tuple[str, ...] = ("local", "local-cluster", "kubernetes-cluster")
#: Upper bounds that keep a typo (``MEDALLION_SAIL_WORKERS=2000``) from starting thousands of in-process workers.
MAX_SAIL_WORKERS = 64
MAX_SAIL_TASK_SLOTS = 256
#: Cluster RPC of the embedded ``local-cluster`` stays on the loopback interface, whatever the process inherited.
LOOPBACK_CLUSTER = {
    f"SAIL_CLUSTER__{role}_{side}_HOST": "127.0.0.1" for role in ("DRIVER", "WORKER") for side in ("LISTEN", "EXTERNAL")
}
KUBERNETES_EMBEDDED = (
    "{name}=kubernetes-cluster cannot run in the embedded engine: Sail then launches worker pods through the "
    "Kubernetes API and they must reach the driver, which needs a Sail server running in a pod with a service "
    "account allowed to manage pods (outside Kubernetes its worker launches fail and are retried for minutes). "
    "Deploy Sail's Spark Connect server on Kubernetes and point medallion at it: MEDALLION_ENGINE=connect "
    "MEDALLION_SPARK_REMOTE=sc://<service>:50051 (deploy/engines/sail-kubernetes/README.md)"
)
#: pysail reads ``SAIL_*`` from the process environment only: one engine at a time may change it.
_SAIL_ENV_LOCK = threading.Lock()


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
    #: embedded Sail only: ``local`` (default), ``local-cluster`` or ``kubernetes-cluster`` (refused, see above)
    sail_mode: str | None = None
    #: ``local-cluster`` workers (initial = maximum); unset: Sail's default (4 initial, no maximum)
    sail_workers: int | None = None
    #: tasks each worker runs at once; unset: Sail's default (8)
    sail_task_slots: int | None = None

    _server: Any = PrivateAttr(default=None)
    _session: Any = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> SparkEngine:
        """An engine whose secrets are ``dagster.EnvVar`` references for each variable that is set."""
        kwargs: dict[str, Any] = {f: dg.EnvVar(v) for f, v in ENGINE_ENV_VARS.items() if os.environ.get(v)}
        if os.environ.get("DATABRICKS_SERVERLESS", "").lower() in ("1", "true", "yes"):
            kwargs["databricks_serverless"] = True
        engine = cls(**kwargs)
        engine.check()
        return engine

    def check(self) -> None:
        """``EngineConfigError`` naming a bad setting: the mode, and every number whatever the mode (the connect
        timeout, the Sail worker counts); in ``sail`` mode the whole Sail setup (called when the definitions load)."""
        _ = self.resolved_connect_timeout
        self._sail_count("sail_workers", SAIL_WORKERS_VAR, MAX_SAIL_WORKERS)
        self._sail_count("sail_task_slots", SAIL_TASK_SLOTS_VAR, MAX_SAIL_TASK_SLOTS)
        if self.resolved_mode == "sail":
            self.sail_environment()

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

    @property
    def resolved_sail_mode(self) -> str:
        """The embedded Sail server's mode: the field, else ``MEDALLION_SAIL_MODE``, else ``local``."""
        name, raw = self._sail_setting("sail_mode", SAIL_MODE_VAR)
        mode = str(raw).strip().lower() or "local"
        if mode not in SAIL_MODES:
            raise EngineConfigError(f"{name}={raw!r} is not a Sail mode; expected one of {', '.join(SAIL_MODES)}")
        return mode

    def sail_environment(self) -> dict[str, str]:
        """The ``SAIL_*`` variables the embedded server is created with; a clear error for a bad setting."""
        mode_name, _ = self._sail_setting("sail_mode", SAIL_MODE_VAR)
        mode = self.resolved_sail_mode
        counts = {
            "SAIL_CLUSTER__WORKER_INITIAL_COUNT": self._sail_count("sail_workers", SAIL_WORKERS_VAR, MAX_SAIL_WORKERS),
            "SAIL_CLUSTER__WORKER_TASK_SLOTS": self._sail_count(
                "sail_task_slots", SAIL_TASK_SLOTS_VAR, MAX_SAIL_TASK_SLOTS
            ),
        }
        if mode == "kubernetes-cluster":
            raise EngineConfigError(KUBERNETES_EMBEDDED.format(name=mode_name))
        if mode == "local":
            if given := [name for name, value in counts.values() if value is not None]:
                raise EngineConfigError(
                    f"{' and '.join(given)} set, but {mode_name} is local and worker settings apply to Sail's "
                    f"cluster mode only: set {SAIL_MODE_VAR}=local-cluster or unset them"
                )
            return {"SAIL_MODE": "local"}
        env = {"SAIL_MODE": mode, **LOOPBACK_CLUSTER}
        env.update({key: str(value) for key, (_, value) in counts.items() if value is not None})
        if "SAIL_CLUSTER__WORKER_INITIAL_COUNT" in env:
            env["SAIL_CLUSTER__WORKER_MAX_COUNT"] = env["SAIL_CLUSTER__WORKER_INITIAL_COUNT"]
        return env

    def _sail_setting(self, field: str, var: str) -> tuple[str, Any]:
        """``(name, value)`` of a Sail setting: the field when set, else its variable (``""`` when unset)."""
        value = getattr(self, field)
        return (field, value) if value is not None else (var, os.environ.get(var, "").strip())

    def _sail_count(self, field: str, var: str, limit: int) -> tuple[str, int | None]:
        name, raw = self._sail_setting(field, var)
        return name, (whole_number(raw, name, limit) if raw != "" else None)

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
        """Create and start the embedded server with this engine's ``SAIL_*`` variables; its ``sc://`` URL."""
        from pysail.spark import SparkConnectServer

        sail_env = self.sail_environment()
        warn_overridden(sail_env)
        with scoped_environment(sail_env):  # pysail 0.7.2 reads SAIL_* when the server object is created
            try:
                server = SparkConnectServer(ip="127.0.0.1", port=0)
            except RuntimeError as exc:  # e.g. a bad SAIL_* variable set outside medallion
                raise EngineConfigError(f"the embedded Sail server could not be created: {exc}") from None
            server.start(background=True)
        self._server = server
        host, port = server.listening_address
        dg.get_dagster_logger().info(f"embedded Sail on sc://{host}:{port}: {describe_sail(sail_env)}")
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


def whole_number(value: object, name: str, limit: int) -> int:
    """``value`` as a whole number from 1 to ``limit``; an error naming ``name`` otherwise."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdecimal() or not 1 <= int(text) <= limit:
        raise EngineConfigError(f"{name} must be a whole number from 1 to {limit}, got {value!r}")
    return int(text)


@contextlib.contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (one block at a time), then restore what was there."""
    with _SAIL_ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def describe_sail(values: Mapping[str, str]) -> str:
    """``local``, or ``local-cluster, 2 workers x 4 task slots`` (Sail's defaults where unset)."""
    if values["SAIL_MODE"] == "local":
        return "local"
    workers = values.get("SAIL_CLUSTER__WORKER_INITIAL_COUNT", "Sail's default number of")
    slots = values.get("SAIL_CLUSTER__WORKER_TASK_SLOTS", "Sail's default")
    return f"{values['SAIL_MODE']}, {workers} workers x {slots} task slots"


def warn_overridden(values: Mapping[str, str]) -> None:
    """Log each ``SAIL_*`` variable of the process that the engine's own Sail settings override."""
    for key, value in values.items():
        if (old := os.environ.get(key)) is not None and old != value:
            dg.get_dagster_logger().warning(
                f"{key}={old} in the environment is overridden by the engine's Sail settings ({key}={value}); "
                f"use {SAIL_MODE_VAR}, {SAIL_WORKERS_VAR} and {SAIL_TASK_SLOTS_VAR}"
            )


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

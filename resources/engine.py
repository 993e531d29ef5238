"""The Spark engine resource: hands assets a Spark Connect ``SparkSession``.

Engine choice is configuration, never code:

* ``sail`` (default) — start the Sail Spark Connect server in this process on 127.0.0.1 (ephemeral port),
  once per run process, and stop it at teardown;
* ``connect`` — any Spark 4 Connect endpoint (``sc://host:port``), optional bearer token;
* ``databricks`` — Databricks Connect to a cluster or serverless compute.

Unset fields fall back to ``MEDALLION_ENGINE`` and ``MEDALLION_SPARK_REMOTE`` at run time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import PrivateAttr

from resources.databricks import databricks_session
from resources.errors import EngineConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EngineMode = Literal["sail", "connect", "databricks"]
ENGINE_MODES: tuple[str, ...] = ("sail", "connect", "databricks")

#: Secrets and endpoints the engine reads through ``dagster.EnvVar`` when they are set.
ENGINE_ENV_VARS = {
    "token": "MEDALLION_SPARK_TOKEN",
    "databricks_host": "DATABRICKS_HOST",
    "databricks_token": "DATABRICKS_TOKEN",
    "databricks_cluster_id": "DATABRICKS_CLUSTER_ID",
}


class SparkEngine(dg.ConfigurableResource):
    """A lazily created Spark Connect session on Sail, a Connect endpoint or Databricks."""

    mode: str | None = None
    remote: str | None = None
    token: str | None = None
    databricks_host: str | None = None
    databricks_token: str | None = None
    databricks_cluster_id: str | None = None
    databricks_serverless: bool = False
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
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(self._start_sail() if mode == "sail" else self._connect_url()).create()

    def _start_sail(self) -> str:
        from pysail.spark import SparkConnectServer

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        self._server = server
        host, port = server.listening_address
        return f"sc://{host}:{port}"

    def _connect_url(self) -> str:
        url = self.remote or os.environ.get("MEDALLION_SPARK_REMOTE")
        if not url or not url.startswith("sc://"):
            raise EngineConfigError(
                f"engine mode 'connect' needs a Spark Connect URL sc://host:port (MEDALLION_SPARK_REMOTE), got {url!r}"
            )
        if self.token and ";token=" not in url:
            url = f"{url.rstrip('/')}/;token={self.token}"
        return url

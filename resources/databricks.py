"""Databricks Connect sessions, imported lazily so ``databricks-connect`` stays an optional extra.

``databricks-connect`` ships its own ``pyspark``; install it in its own environment
(``pip install 'medallion[databricks]'`` without the pinned ``pyspark``), as Databricks documents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from resources.errors import EngineConfigError, scrub

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def databricks_session(
    *, host: str | None, token: str | None, cluster_id: str | None, serverless: bool
) -> SparkSession:
    """A new Databricks Connect session on a cluster or on serverless compute.

    Unset ``host``/``token``/``cluster_id`` fall through to Databricks' own lookup
    (``DATABRICKS_*`` environment variables or ``~/.databrickscfg``). Its errors never quote the token.
    """
    try:
        from databricks.connect import DatabricksSession
    except ImportError as exc:
        raise EngineConfigError(
            "engine mode 'databricks' needs databricks-connect: pip install 'medallion[databricks]'"
        ) from exc
    if serverless and cluster_id:
        raise EngineConfigError("set either a Databricks cluster id or serverless, not both")
    if not has_workspace(host):
        raise EngineConfigError(
            "engine mode 'databricks' needs a workspace: set DATABRICKS_HOST and DATABRICKS_TOKEN "
            "(or a profile in ~/.databrickscfg, DATABRICKS_CONFIG_FILE, DATABRICKS_CONFIG_PROFILE)"
        )
    kwargs = {k: v for k, v in {"host": host, "token": token, "cluster_id": cluster_id}.items() if v}
    builder = DatabricksSession.builder.remote(**kwargs) if kwargs else DatabricksSession.builder
    if serverless:
        builder = builder.serverless(True)
    try:
        return builder.create()
    except Exception as exc:
        raise EngineConfigError(
            f"Databricks Connect failed: {type(exc).__name__}: {scrub(str(exc), [token])}"
        ) from None


def has_workspace(host: str | None) -> bool:
    """Whether Databricks' own lookup can find a workspace: a host, or a config profile to read one from."""
    config_file = Path(os.environ.get("DATABRICKS_CONFIG_FILE") or "~/.databrickscfg").expanduser()
    return bool(host or os.environ.get("DATABRICKS_HOST") or config_file.is_file())

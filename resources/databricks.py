"""Databricks Connect sessions, imported lazily so ``databricks-connect`` stays an optional extra.

``databricks-connect`` ships its own ``pyspark``; install it in its own environment
(``pip install 'medallion[databricks]'`` without the pinned ``pyspark``), as Databricks documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resources.errors import EngineConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def databricks_session(
    *, host: str | None, token: str | None, cluster_id: str | None, serverless: bool
) -> SparkSession:
    """A new Databricks Connect session on a cluster or on serverless compute.

    Unset ``host``/``token``/``cluster_id`` fall through to Databricks' own lookup
    (``DATABRICKS_*`` environment variables or ``~/.databrickscfg``).
    """
    try:
        from databricks.connect import DatabricksSession
    except ImportError as exc:
        raise EngineConfigError(
            "engine mode 'databricks' needs databricks-connect: pip install 'medallion[databricks]'"
        ) from exc
    if serverless and cluster_id:
        raise EngineConfigError("set either a Databricks cluster id or serverless, not both")
    kwargs = {k: v for k, v in {"host": host, "token": token, "cluster_id": cluster_id}.items() if v}
    builder = DatabricksSession.builder.remote(**kwargs) if kwargs else DatabricksSession.builder
    if serverless:
        builder = builder.serverless(True)
    return builder.create()

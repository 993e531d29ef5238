"""What a connected engine can run, probed once per session, for the few places that need another route.

Sail 0.7.2's cluster modes (``local-cluster``, and a Sail server on Kubernetes reached through ``connect``) plan
``json_object_keys`` on the driver but cannot ship it to their workers ("ExtendedScalarUdf: no UDF found for
json_object_keys"); Spark 4, Databricks and Sail's local mode run it. The engine mode does not tell a Sail cluster
behind a Connect URL apart from JVM Spark, so the session is asked: one row, once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOCK = threading.Lock()
_PROBED: dict[str, bool] = {}


def runs_json_object_keys(spark: SparkSession) -> bool:
    """Whether ``spark`` evaluates ``json_object_keys`` on rows it has to distribute (cached per session)."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    session = str(getattr(spark, "session_id", id(spark)))
    with _LOCK:
        if session not in _PROBED:
            probe = spark.createDataFrame([('{"k": 1}',)], "value string").select(F.json_object_keys("value"))
            try:
                _PROBED[session] = probe.collect()[0][0] == ["k"]
            except PySparkException:
                _PROBED[session] = False
        return _PROBED[session]

"""Engine start-up to a first result: embedded Sail over Spark Connect, and classic JVM Spark ``local[2]``.

Each runs in its own fresh process (a classic and a Connect session cannot share one); imports are timed
apart from the start.
"""

from __future__ import annotations

import time
from typing import Any

_KEEP: list[Any] = []  # the embedded Sail server stops when garbage-collected: keep it referenced


def sail() -> dict[str, Any]:
    """SparkConnectServer start (127.0.0.1, ephemeral port) + Connect session + first query."""
    t0 = time.perf_counter()
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    t1 = time.perf_counter()
    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    _KEEP.append(server)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").create()
    t2 = time.perf_counter()
    value = spark.range(1).collect()[0][0]
    t3 = time.perf_counter()
    spark.stop()
    server.stop()
    return {
        "import_seconds": round(t1 - t0, 3),
        "session_seconds": round(t2 - t1, 3),
        "first_query_seconds": round(t3 - t2, 3),
        "start_seconds": round(t3 - t1, 3),
        "result": value,
    }


def jvm() -> dict[str, Any]:
    """Classic PySpark ``local[2]`` (JVM launched through py4j) + first query."""
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession

    t1 = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    t2 = time.perf_counter()
    value = spark.range(1).collect()[0][0]
    t3 = time.perf_counter()
    classic = type(spark).__module__
    spark.stop()
    return {
        "import_seconds": round(t1 - t0, 3),
        "session_seconds": round(t2 - t1, 3),
        "first_query_seconds": round(t3 - t2, 3),
        "start_seconds": round(t3 - t1, 3),
        "session_class": classic,
        "result": value,
    }

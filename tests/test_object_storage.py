"""The lakehouse on an S3 API server (moto on 127.0.0.1): the orders pipeline through Dagster on Sail with the
tables, scratch and run log in a bucket, equal to a local run; the store's verbs and maintenance there; the
typed storage configuration reaching deltalake, pyarrow and Sail; no secret in Dagster's storage."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster_deltalake import DeltaTableResource
from dagster_deltalake.config import ClientConfig, S3Config
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from medallion_assets import run_log
from medallion_assets.maintenance import maintenance_job
from resources.delta_store import DeltaTableStore

from .conftest import materialize_days
from .moto_s3 import ACCESS_KEY, REGION, MotoS3
from .test_delta_store import rows, seed
from .test_pipeline import TABLES, stable
from .test_secrets import files_holding

SECRET = f"s3secret{uuid.uuid4().hex[:12]}"
DAYS = ("2024-01-01", "2024-01-02")


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with MotoS3(secret=SECRET) as server:
        yield server


@pytest.fixture
def environ() -> Iterator[None]:
    """Restore the process environment after the test (the store exports object-store settings into it)."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture
def bucket(s3: MotoS3) -> str:
    """A fresh bucket: Sail keeps one object store per bucket for the life of the process."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def s3_env(s3: MotoS3, environ: None) -> dict[str, str]:
    """The ``AWS_*`` variables of a deployment whose lakehouse is on the moto server."""
    os.environ.update(s3.environment())
    return s3.environment()


def read(uri: str, s3: MotoS3) -> pd.DataFrame:
    """A table read with plain deltalake from S3 (not through the store)."""
    return DeltaTable(uri, storage_options=s3.environment()).to_pandas()


def content(uri: str, s3: MotoS3) -> list[tuple]:
    return sorted((r["k"], r["v"], r["d"].isoformat()) for r in read(uri, s3).to_dict("records"))


def test_orders_pipeline_on_s3_equals_a_local_run(
    resources, store, sample, s3: MotoS3, s3_env: dict[str, str], bucket: str, tmp_path: Path, caplog
) -> None:
    s3_store = DeltaTableStore.for_root(f"s3://{bucket}/lakehouse")  # as build_resources does: EnvVar credentials
    assert isinstance(s3_store.storage_options.secret_access_key, dg.EnvVar)
    on_s3 = {**resources, "store": s3_store}
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    timings: dict[str, float] = {}
    with timed(timings, "s3 first run"):
        first = materialize_days(on_s3, *DAYS, instance=instance)
    assert first.success
    assert all(c.passed for c in first.get_asset_check_evaluations())  # pandera, accounting: read back from S3
    with timed(timings, "local run"):
        assert materialize_days(resources, *DAYS).success  # the same days on a local root

    for name in TABLES:
        assert stable(read(s3_store.table_uri(name), s3)) == stable(DeltaTable(store.table_uri(name)).to_pandas())
    first_gold = read(s3_store.table_uri("gold/daily_sales"), s3)
    gold_version = s3_store.version("gold/daily_sales")
    assert s3.objects(f"{bucket}/lakehouse/_staging") == []  # the landing scratch Parquet was removed

    with timed(timings, "s3 re-run of one day"):
        assert materialize_days(on_s3, DAYS[1], instance=instance).success  # a re-run replaces exactly that day
    for name in TABLES:
        assert stable(read(s3_store.table_uri(name), s3)) == stable(DeltaTable(store.table_uri(name)).to_pandas())
    assert s3_store.version("gold/daily_sales") == gold_version + 1

    log = read(s3_store.table_uri(run_log.TABLE), s3)
    local_log = DeltaTable(store.table_uri(run_log.TABLE)).to_pandas()
    attempts = log.groupby(["asset", "partition"]).size().to_dict()
    assert set(attempts) == set(zip(local_log["asset"], local_log["partition"], strict=True))
    assert attempts == {(asset, day): 2 if day == DAYS[1] else 1 for asset, day in attempts}
    assert log["passed"].all() and not log["reconciled"].any()

    version, pinned = pinned_read(s3_store.table_resource("gold/daily_sales", version=gold_version))
    assert version == gold_version and stable(pinned) == stable(first_gold)  # what the first run published

    assert files_holding(tmp_path / "dagster_home", (SECRET,)) == {}
    assert SECRET not in caplog.text
    assert [path for path in s3.objects(bucket) if SECRET.encode() in s3.read(path)] == []
    print("\norders bronze → silver → gold, 2 days:", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


@contextlib.contextmanager
def timed(timings: dict[str, float], what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    timings[what] = time.monotonic() - started


def pinned_read(resource: DeltaTableResource) -> tuple[int, pd.DataFrame]:
    """A small pandas consumer of a gold table at a pinned version, as a downstream Dagster asset would be."""

    @dg.asset
    def sales_snapshot(daily_sales: DeltaTableResource) -> tuple[int, pd.DataFrame]:
        table = daily_sales.load()
        return table.version(), table.to_pandas()

    result = dg.materialize([sales_snapshot], resources={"daily_sales": resource})
    return result.output_for_node("sales_snapshot")


def test_store_verbs_scratch_and_maintenance_on_s3(
    spark: SparkSession, s3: MotoS3, s3_env: dict[str, str], bucket: str
) -> None:
    s3_store = DeltaTableStore.for_root(f"s3://{bucket}/lh")
    seed(spark, s3_store)
    day_two = rows(spark, ("b2", 20, "2024-01-02"))
    s3_store.replace_partitions("silver/t", day_two, partition_column="d", days=["2024-01-02"], note='{"k": [1]}')
    expected = [("a", 1, "2024-01-01"), ("b2", 20, "2024-01-02"), ("c", 3, "2024-01-03")]
    assert content(s3_store.table_uri("silver/t"), s3) == expected
    assert s3_store.commit_notes("silver/t", "k", limit=5) == [(1, [1])] and s3_store.version("silver/t") == 1
    assert s3_store.marked_version("silver/t", "read") is None
    s3_store.set_mark("silver/t", "read", 1)
    assert s3_store.marked_version("silver/t", "read") == 1 and s3.objects(f"{bucket}/lh/_marks")
    s3_store.append_rows("monitoring/notes", [{"n": 1}])
    assert s3_store.list_tables() == ["monitoring/notes", "silver/t"]
    assert s3_store.day_rows("silver/t", partition_column="d", days=["2024-01-02"]) == {"2024-01-02": 1}

    with s3_store.staged(rows(spark, ("x", 9, "2024-01-09")), name="probe") as staged:
        assert staged.count() == 1 and s3.objects(f"{bucket}/lh/_staging")
    assert s3.objects(f"{bucket}/lh/_staging") == []

    dead = f"{bucket}/lh/_staging/otherhost-1-dead"
    s3.filesystem().open_output_stream(f"{dead}/part-0.parquet").close()
    assert s3_store.remove_dead_scratch(unowned_after_hours=24) == []  # too young to be dead
    assert s3_store.remove_dead_scratch(unowned_after_hours=0) == ["otherhost-1-dead"]
    assert s3.objects(dead) == []

    result = maintenance_job.execute_in_process(resources={"store": s3_store})
    assert result.success and s3_store.exists("monitoring/maintenance")
    done = read(s3_store.table_uri("monitoring/maintenance"), s3)
    assert set(done["table"]) == {"monitoring/notes", "silver/t"}
    assert content(s3_store.table_uri("silver/t"), s3) == expected  # vacuumed, compacted, checkpointed
    assert s3.is_file(f"{bucket}/lh/silver/t/_delta_log/_last_checkpoint")


def test_an_explicit_storage_config_reaches_sail_and_deltalake(
    spark: SparkSession, s3: MotoS3, bucket: str, environ: None
) -> None:
    """No AWS_* variable set: the typed configuration alone reaches deltalake, pyarrow and the embedded engine."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    config = S3Config(access_key_id=ACCESS_KEY, secret_access_key=SECRET, region=REGION, endpoint=s3.endpoint)
    s3_store = DeltaTableStore(
        root=f"s3://{bucket}/lh", storage_options=config, client_options=ClientConfig(allow_http=True)
    )

    @dg.asset
    def probe(store: DeltaTableStore) -> int:
        df = spark.createDataFrame([("a", 1)], "k string, v long")
        return store.overwrite("gold/probe", df).version

    assert dg.materialize([probe], resources={"store": s3_store}).success
    assert os.environ["AWS_ENDPOINT_URL"] == os.environ["AWS_ENDPOINT"] == s3.endpoint
    assert os.environ["AWS_ALLOW_HTTP"] == "true"
    assert read(s3_store.table_uri("gold/probe"), s3).to_dict("records") == [{"k": "a", "v": 1}]
    assert s3_store.history("gold/probe")[0]["operation"]

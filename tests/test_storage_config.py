"""The typed storage configuration of the lakehouse root: which provider a root selects, the ``EnvVar`` references
built from the usual variables, what deltalake, pyarrow and Sail get, and the refusals that name the setting (a bad
lakehouse root, a local root the engine cannot write below, a landing root on object storage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_deltalake.config import AzureConfig, ClientConfig, GcsConfig, LocalConfig, S3Config
from pyarrow import fs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from resources import storage
from resources.delta_store import DeltaTableStore
from resources.landing import LandingRootUnsupported, LandingZone
from resources.settings import Settings, SettingsError
from resources.storage import StorageConfigError

REPO = Path(__file__).resolve().parents[1]
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-value-1",
    "AWS_REGION": "eu-west-1",
    "AWS_ENDPOINT": "http://127.0.0.1:9000",
}


@pytest.mark.parametrize(
    ("root", "provider"),
    [
        ("/data/lakehouse", "local"),
        (".lakehouse", "local"),
        ("file:///data/lakehouse", "local"),
        ("s3://bucket/prefix", "s3"),
        ("s3a://bucket", "s3"),
        ("gs://bucket/lh", "gcs"),
        ("abfss://lake@account.dfs.core.windows.net/lh", "azure"),
    ],
)
def test_the_root_scheme_selects_the_provider(root: str, provider: str) -> None:
    assert storage.provider_of(root) == provider


@pytest.mark.parametrize(("root", "says"), [("hdfs://nn/lh", "unsupported scheme hdfs://"), ("s3:///lh", "no bucket")])
def test_a_bad_lakehouse_root_fails_the_settings_naming_the_variable(root: str, says: str) -> None:
    with pytest.raises(SettingsError, match="MEDALLION_LAKEHOUSE_ROOT") as raised:
        Settings.from_env({"MEDALLION_LAKEHOUSE_ROOT": root})
    assert says in str(raised.value)
    assert Settings.from_env({"MEDALLION_LAKEHOUSE_ROOT": "s3://bucket/lh"}).lakehouse_root == "s3://bucket/lh"


def test_s3_credentials_are_env_var_references_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    config = storage.storage_from_env("s3://bucket/lh")
    assert isinstance(config, S3Config)
    assert config.secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    assert config.endpoint == dg.EnvVar("AWS_ENDPOINT") and config.token is None  # AWS_SESSION_TOKEN unset
    assert "secret-value-1" not in repr(config)
    assert storage.client_from_env("s3://bucket/lh") == ClientConfig(allow_http=True)  # an http:// endpoint
    store = DeltaTableStore.for_root("s3://bucket/lh")
    assert store.storage == config
    assert storage.deltalake_options(store.storage, store.client) == {
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "secret-value-1",
        "region": "eu-west-1",
        "endpoint": "http://127.0.0.1:9000",
        "imdsv1_fallback": "false",
        "allow_http": "true",
    }


def test_plain_http_needs_an_explicit_choice() -> None:
    env = {"AWS_ENDPOINT_URL": "https://minio.internal:9000"}
    assert storage.client_from_env("s3://b/lh", env) is None
    assert storage.client_from_env("s3://b/lh", {**env, "AWS_ALLOW_HTTP": "true"}) == ClientConfig(allow_http=True)
    config = S3Config(endpoint="http://127.0.0.1:9000")
    with pytest.raises(StorageConfigError, match="AWS_ALLOW_HTTP"):
        storage.arrow_filesystem("s3://b/lh/_staging/x", config)


def test_sail_gets_the_variables_object_store_reads() -> None:
    config = S3Config(access_key_id="k", secret_access_key="s", region="us-east-1", endpoint="http://127.0.0.1:1")
    assert storage.engine_environment(config, ClientConfig(allow_http=True)) == {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ENDPOINT": "http://127.0.0.1:1",
        "AWS_ALLOW_HTTP": "true",
    }
    assert storage.engine_environment(LocalConfig()) == {}
    assert storage.engine_environment(AzureConfig(account_name="acct", account_key="key")) == {
        "AZURE_STORAGE_ACCOUNT_NAME": "acct",
        "AZURE_STORAGE_ACCOUNT_KEY": "key",
    }


def test_pyarrow_gets_the_same_endpoint_and_credentials() -> None:
    config = S3Config(access_key_id="k", secret_access_key="s", region="us-east-1", endpoint="http://127.0.0.1:9000")
    filesystem, path = storage.arrow_filesystem("s3://bucket/lh/_staging/x", config, ClientConfig(allow_http=True))
    assert isinstance(filesystem, fs.S3FileSystem) and path == "bucket/lh/_staging/x"
    assert filesystem.region == "us-east-1" and "127.0.0.1:9000" in repr(filesystem.__reduce__())
    local, where = storage.arrow_filesystem("/tmp/lh/_staging/x", LocalConfig())
    assert isinstance(local, fs.LocalFileSystem) and where == "/tmp/lh/_staging/x"


def test_azure_and_gcs_configs_from_their_variables() -> None:
    azure = storage.storage_from_env("abfss://lake@acct.dfs.core.windows.net/lh", {"AZURE_STORAGE_ACCOUNT_KEY": "x"})
    assert isinstance(azure, AzureConfig) and azure.account_name == "acct"
    assert azure.account_key == dg.EnvVar("AZURE_STORAGE_ACCOUNT_KEY")
    with pytest.raises(StorageConfigError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        storage.storage_from_env("az://lake/lh", {})
    gcs = storage.storage_from_env("gs://bucket/lh", {"GOOGLE_SERVICE_ACCOUNT": "/etc/sa.json"})
    assert isinstance(gcs, GcsConfig) and gcs.service_account == dg.EnvVar("GOOGLE_SERVICE_ACCOUNT")


def test_a_config_for_another_provider_is_refused() -> None:
    store = DeltaTableStore(root="gs://bucket/lh", storage_options=S3Config(region="us-east-1"))
    with pytest.raises(StorageConfigError, match="MEDALLION_LAKEHOUSE_ROOT is a gcs root"):
        store.exists("gold/x")


def test_local_roots_keep_their_behaviour(tmp_path: Path) -> None:
    store = DeltaTableStore(root=str(tmp_path / "lh"))
    assert store.storage == LocalConfig() and store.client is None and not store.is_remote
    assert storage.deltalake_options(store.storage, store.client) is None
    assert store.scratch_folder().startswith(f"{tmp_path}/lh/_staging/")
    assert (Path(store.scratch_folder()) / ".owner").exists()  # the owner lock of local roots


def test_landing_on_object_storage_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MEDALLION_LANDING_ROOT=s3://feeds/landing: landing files on object"):
        Settings.from_env({"MEDALLION_LANDING_ROOT": "s3://feeds/landing"})
    zone = LandingZone(root="s3://feeds/landing")
    for attempt in (zone.check_root, lambda: zone.listing("orders", "2024-01-01"), lambda: zone.root_path):
        with pytest.raises(LandingRootUnsupported, match="MEDALLION_LANDING_ROOT"):
            attempt()
    (tmp_path / "landing").mkdir()
    assert LandingZone(root=f"file://{tmp_path}/landing").check_root() == tmp_path / "landing"


def test_sail_escapes_a_local_path_outside_it(spark: SparkSession, tmp_path: Path) -> None:
    """Why such roots are refused: Sail 0.7 percent-escapes a space (``%``, non-ASCII…) once in the Delta log's folder
    and twice in the data files' folder, both beside the path asked for. When this fails, Sail writes below the path
    as given: ``storage.ENGINE_PATH_CHARACTERS`` can then grow."""
    spark.range(1).withColumn("d", F.lit("x")).write.format("delta").partitionBy("d").save(str(tmp_path / "a b/t"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a%20b", "a%2520b"]


@pytest.mark.parametrize(
    ("name", "character"),
    [("my lake", "' '"), ("ünï çødé", "'ü'"), ("l%41ke", "'%'"), ("a#b", "'#'"), ("a*b", "'*'"), ("a?b", "'?'"),
     ("a[b", "'['"), ("a{b}", "'{'"), ("a~b", "'~'"), ("tab\tb", "'\\t'")],
)  # fmt: skip
def test_a_local_lakehouse_root_the_engine_would_escape_is_refused_at_load(name: str, character: str) -> None:
    """``/tmp/x/my lake`` wrote its Delta log to ``/tmp/x/my%20lake`` and its data to ``/tmp/x/my%2520lake``."""
    for root in (f"/data/{name}/lh", f"file:///data/{name}/lh"):
        with pytest.raises(SettingsError, match="MEDALLION_LAKEHOUSE_ROOT") as raised:
            Settings.from_env({"MEDALLION_LAKEHOUSE_ROOT": root})
        message = str(raised.value)
        assert f"character {character}" in message and "accepted: ASCII letters, digits and" in message, message


@pytest.mark.parametrize("name", ["lake_2024-01.v2", "a+b", "a@b", "a=b", "a,b", "a:b", "a(b)"])
def test_local_roots_of_the_characters_sail_writes_as_given_load(name: str) -> None:
    assert Settings.from_env({"MEDALLION_LAKEHOUSE_ROOT": f"/data/{name}"}).lakehouse_root == f"/data/{name}"


@pytest.mark.parametrize("root", ["s3://bucket/my lake", "s3://bucket/l%41ke", "gs://bucket/ünï", "s3://bucket/lh"])
def test_object_store_roots_are_not_checked_as_local_paths(root: str) -> None:
    assert Settings.from_env({"MEDALLION_LAKEHOUSE_ROOT": root}).lakehouse_root == root
    assert DeltaTableStore(root=root).root_uri == root


def test_the_default_root_below_a_working_folder_with_a_space_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.lakehouse`` (the default) resolves below the working folder: it is checked as resolved."""
    (tmp_path / "my work").mkdir()
    monkeypatch.chdir(tmp_path / "my work")
    with pytest.raises(SettingsError, match=r"MEDALLION_LAKEHOUSE_ROOT='\.lakehouse'.*character ' '"):
        Settings.from_env({})


def test_a_store_never_hands_the_engine_a_path_it_would_escape(tmp_path: Path) -> None:
    """Whatever built the store (a test, a script): its tables' locations are refused before anything is written."""
    store = DeltaTableStore(root=str(tmp_path / "my lake"))
    for use in (lambda: store.root_uri, lambda: store.table_uri("bronze/orders"), lambda: store.exists("gold/x")):
        with pytest.raises(StorageConfigError, match=r"MEDALLION_LAKEHOUSE_ROOT.*character ' '"):
            use()
    assert list(tmp_path.iterdir()) == []


def test_medallion_run_with_such_a_root_writes_nothing_and_names_the_variable(tmp_path: Path) -> None:
    """The tester's command: exit 2 with the setting named, before anything is written anywhere."""
    (tmp_path / "landing").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MEDALLION_LANDING_ROOT": str(tmp_path / "landing"),
        "MEDALLION_LAKEHOUSE_ROOT": str(tmp_path / "my lake"),
        "MEDALLION_START_DATE": "2024-01-01",
    }
    command = [sys.executable, "-m", "medallion_assets.cli", "run", "--day", "2024-01-02", "--select", "bronze/orders"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "MEDALLION_LAKEHOUSE_ROOT" in done.stderr and "character ' '" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]

"""Where the lakehouse lives and how to reach it: one typed storage configuration for every reader and writer.

The root's scheme picks the provider: a path is local, ``s3://``/``s3a://`` is S3 (or an S3-compatible server),
``gs://``/``gcs://`` is Google Cloud Storage, ``az://``/``abfs://``/``abfss://`` is Azure. The configuration is
dagster-deltalake's ``LocalConfig``, ``S3Config``, ``GcsConfig`` or ``AzureConfig`` (with ``ClientConfig`` for the
HTTP client), built from the provider's usual variables as ``dagster.EnvVar`` references: values are resolved at
run time, never stored in run config, shown in the UI or logged.

The same configuration reaches every reader and writer:

* ``deltalake`` (history, versions, maintenance, the run log, small reads and appends): :func:`deltalake_options`;
* pyarrow (the scratch Parquet of landing files): :func:`arrow_filesystem`;
* Sail, which takes object-store settings only from its process environment (object_store's ``from_env``: ``AWS_*``,
  ``AZURE_*``, ``GOOGLE_*``) and keeps the first settings it sees per bucket for the life of the process:
  :func:`engine_environment` gives the variables, :func:`export_engine_environment` sets them in this process before
  the embedded server first reaches the bucket. A Spark Connect server elsewhere needs them in its own environment.
"""

from __future__ import annotations

import os
import string
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_deltalake.config import AzureConfig, ClientConfig, GcsConfig, LocalConfig, S3Config
from pyarrow import fs

from resources.errors import MedallionError

StorageConfig = LocalConfig | S3Config | AzureConfig | GcsConfig
ROOT_VAR = "MEDALLION_LAKEHOUSE_ROOT"
#: URI scheme → storage provider (``provider`` of the dagster-deltalake config).
SCHEMES: dict[str, str] = {
    "file": "local",
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}
#: Config field → the variables it is read from (the first one set wins) and exported to, per provider.
ENV_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "s3": {
        "access_key_id": ("AWS_ACCESS_KEY_ID",),
        "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "token": ("AWS_SESSION_TOKEN",),
        "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        "endpoint": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
        "virtual_hosted_style_request": ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST",),
    },
    "azure": {
        "account_name": ("AZURE_STORAGE_ACCOUNT_NAME",),
        "account_key": ("AZURE_STORAGE_ACCOUNT_KEY",),
        "sas_key": ("AZURE_STORAGE_SAS_KEY",),
        "client_id": ("AZURE_CLIENT_ID",),
        "client_secret": ("AZURE_CLIENT_SECRET",),
        "tenant_id": ("AZURE_TENANT_ID",),
    },
    "gcs": {
        "service_account": ("GOOGLE_SERVICE_ACCOUNT",),
        "service_account_key": ("GOOGLE_SERVICE_ACCOUNT_KEY",),
        "application_credentials": ("GOOGLE_APPLICATION_CREDENTIALS",),
    },
}
#: The characters of a local root the engine writes below as given. Sail 0.7 percent-escapes any other (a space, ``%``,
#: ``#``, ``~``, non-ASCII…) once in a table's Delta log folder and twice in its data files' folder, both beside the
#: root, and reads ``*``, ``?``, ``[``, ``{`` as a glob, writing above it (measured: ``tests/test_storage_config.py``).
ENGINE_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/._-+=@,:!$&'();")
ENGINE_PATH_ACCEPTED = "ASCII letters, digits and / . _ - + = @ , : ! $ & ' ( ) ;"
ALLOW_HTTP_VAR = "AWS_ALLOW_HTTP"
_CONFIGS: dict[str, type[StorageConfig]] = {"s3": S3Config, "azure": AzureConfig, "gcs": GcsConfig}
_TRUE = ("1", "true", "yes", "on")


class StorageConfigError(MedallionError, ValueError):
    """The lakehouse root or its storage configuration cannot be used."""


def provider_of(root: str) -> str:
    """``local``, ``s3``, ``gcs`` or ``azure`` for a root; a root with another scheme or no bucket is refused."""
    if "://" not in root:
        return "local"
    parts = urllib.parse.urlsplit(root)
    if parts.scheme.lower() == "file":
        return "local"
    provider = SCHEMES.get(parts.scheme.lower())
    if provider is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise StorageConfigError(f"{ROOT_VAR}: unsupported scheme {parts.scheme}:// (a path, or one of {known})")
    if not parts.netloc:
        raise StorageConfigError(f"{ROOT_VAR}: {parts.scheme}:// root names no bucket or container")
    return provider


def root_uri(root: str) -> str:
    """Where the tables live as the engine is given it: the URI without its trailing ``/``, or the resolved local path;
    ``StorageConfigError`` for an unsupported root, or a local one with a character the engine would escape."""
    if "://" in root:
        uri = root.rstrip("/")
        if provider_of(uri) == "local":
            _check_engine_path(root, uri.split("://", 1)[1])
        return uri
    path = str(Path(root).expanduser().resolve())
    _check_engine_path(root, path)
    return path


def _check_engine_path(root: str, path: str) -> None:
    bad = next((c for c in path if c not in ENGINE_PATH_CHARACTERS), None)
    if bad is not None:
        raise StorageConfigError(
            f"{ROOT_VAR}={root!r}: the local path {path!r} has the character {bad!r}, with which the engine (Sail) "
            f"writes the tables outside it; accepted: {ENGINE_PATH_ACCEPTED}"
        )


def _first_set(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    return next((name for name in names if env.get(name)), None)


def storage_from_env(root: str, environ: Mapping[str, str] | None = None) -> StorageConfig:
    """The storage configuration of ``root``: a ``dagster.EnvVar`` for each of the provider's variables that is set."""
    env = os.environ if environ is None else environ
    provider = provider_of(root)
    if provider == "local":
        return LocalConfig()
    fields: dict[str, Any] = {}
    for field, names in ENV_FIELDS[provider].items():
        name = _first_set(names, env)
        if name:
            fields[field] = dg.EnvVar(name)
    if provider == "azure" and "account_name" not in fields:
        fields["account_name"] = _azure_account(root)
    return _CONFIGS[provider](**fields)


def _azure_account(root: str) -> str:
    """The account of ``abfss://container@account.dfs.core.windows.net/...``; ``az://`` roots need the variable."""
    host = urllib.parse.urlsplit(root).netloc
    if "@" in host:
        return host.rpartition("@")[2].split(".", 1)[0]
    raise StorageConfigError(f"{ROOT_VAR}={root} needs AZURE_STORAGE_ACCOUNT_NAME (or a container@account root)")


def client_from_env(root: str, environ: Mapping[str, str] | None = None) -> ClientConfig | None:
    """HTTP client settings: plain HTTP only for an S3 endpoint given as ``http://`` or with ``AWS_ALLOW_HTTP``."""
    env = os.environ if environ is None else environ
    if provider_of(root) != "s3":
        return None
    endpoint = next((env[n] for n in ENV_FIELDS["s3"]["endpoint"] if env.get(n)), "")
    if env.get(ALLOW_HTTP_VAR, "").strip().lower() in _TRUE or endpoint.lower().startswith("http://"):
        return ClientConfig(allow_http=True)
    return None


def resolved(config: dg.Config | None) -> dict[str, str]:
    """The config's set fields as strings (``EnvVar`` fields read now when Dagster has not resolved them)."""
    if config is None:
        return {}
    values: dict[str, str] = {}
    for name, value in config:
        if isinstance(value, dg.EnvVar):
            value = value.get_value()
        if value is None or name == "provider":
            continue
        values[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def check_matches(root: str, storage: StorageConfig) -> None:
    """Refuse a configuration for another provider than the root's scheme (``s3://`` root with ``GcsConfig``)."""
    provider = provider_of(root)
    if storage.provider != provider:
        raise StorageConfigError(
            f"{ROOT_VAR} is a {provider} root but the store's storage_options are {type(storage).__name__}"
        )


def deltalake_options(storage: StorageConfig, client: ClientConfig | None = None) -> dict[str, str] | None:
    """``storage_options`` for ``deltalake`` (None on a local root)."""
    if storage.provider == "local":
        return None
    return {**resolved(storage), **resolved(client)}


def engine_environment(storage: StorageConfig, client: ClientConfig | None = None) -> dict[str, str]:
    """The variables Sail reads for this configuration (every name a field is read from, set to its value)."""
    values = resolved(storage)
    env: dict[str, str] = {}
    for field, names in ENV_FIELDS.get(storage.provider, {}).items():
        if field in values:
            env.update(dict.fromkeys(names, values[field]))
    if storage.provider == "s3" and resolved(client).get("allow_http") == "true":
        env[ALLOW_HTTP_VAR] = "true"
    return env


def export_engine_environment(storage: StorageConfig, client: ClientConfig | None = None) -> list[str]:
    """Set :func:`engine_environment` in this process (for the embedded Sail server); return the names changed."""
    wanted = engine_environment(storage, client)
    changed = sorted(name for name, value in wanted.items() if os.environ.get(name) != value)
    os.environ.update(wanted)
    return changed


def arrow_filesystem(uri: str, storage: StorageConfig, client: ClientConfig | None = None) -> tuple[fs.FileSystem, str]:
    """A pyarrow filesystem for ``uri`` with the store's configuration, and the path of ``uri`` on it."""
    provider = provider_of(uri)
    if provider == "local":
        return fs.LocalFileSystem(), urllib.parse.urlsplit(uri).path if "://" in uri else uri
    check_matches(uri, storage)
    parts = urllib.parse.urlsplit(uri)
    values = resolved(storage)
    if provider == "s3":
        return _s3_filesystem(values, resolved(client)), f"{parts.netloc}{parts.path}".rstrip("/")
    if provider == "gcs":  # pyarrow takes Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS)
        return fs.GcsFileSystem(), f"{parts.netloc}{parts.path}".rstrip("/")
    container = parts.netloc.partition("@")[0]
    return _azure_filesystem(values), f"{container}{parts.path}".rstrip("/")


def _s3_filesystem(values: dict[str, str], client: dict[str, str]) -> fs.S3FileSystem:
    kwargs: dict[str, Any] = {
        "access_key": values.get("access_key_id"),
        "secret_key": values.get("secret_access_key"),
        "session_token": values.get("token"),
        "region": values.get("region"),
        "force_virtual_addressing": values.get("virtual_hosted_style_request", "").lower() in _TRUE,
    }
    endpoint = values.get("endpoint")
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme == "http" and client.get("allow_http") != "true":
            raise StorageConfigError(f"the S3 endpoint is plain http: set {ALLOW_HTTP_VAR}=true to allow it")
        kwargs.update(endpoint_override=f"{parts.netloc}{parts.path}".rstrip("/"), scheme=parts.scheme)
    return fs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})


def _azure_filesystem(values: dict[str, str]) -> fs.AzureFileSystem:
    kwargs = {
        "account_key": values.get("account_key"),
        "sas_token": values.get("sas_key"),
        "client_id": values.get("client_id"),
        "client_secret": values.get("client_secret"),
        "tenant_id": values.get("tenant_id"),
    }
    return fs.AzureFileSystem(values["account_name"], **{k: v for k, v in kwargs.items() if v is not None})

"""Error types raised by medallion's resources and assets, and the redaction that keeps secrets out of them."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable

#: Variables whose values are secrets: they never belong in a log line, an error message or an alert.
SECRET_ENV_VARS = (
    "MEDALLION_SPARK_TOKEN",
    "DATABRICKS_TOKEN",
    "MEDALLION_ALERT_WEBHOOK",
    # the lakehouse's object-store credentials (resources/storage.py)
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)
REDACTED = "***"
#: Shorter strings are not scrubbed from text (they would mangle it and are no credible secret).
MIN_SECRET_CHARS = 4


class MedallionError(Exception):
    """Base class for every error medallion raises on purpose."""


class InvalidPartitionKey(MedallionError, ValueError):
    """A partition key is not a strict ``YYYY-MM-DD`` calendar date."""


class InvalidTableName(MedallionError, ValueError):
    """A table name is not ``layer/name`` in lower-case snake case."""


class EngineConfigError(MedallionError, ValueError):
    """The Spark engine configuration is incomplete or names an unknown mode."""


class EngineConnectError(EngineConfigError):
    """The configured engine endpoint cannot be reached or does not complete the handshake in time."""


def _split(url: str | None) -> urllib.parse.SplitResult | None:
    """``url`` split into parts; None for no URL or one ``urlsplit`` rejects (a bad IPv6 host)."""
    try:
        return urllib.parse.urlsplit(url) if url else None
    except ValueError:
        return None


def _host_and_rest(url: str | None) -> tuple[str, str] | None:
    """``("scheme://host[:port]", rest)`` of an absolute URL (without any ``user:password@``), else None."""
    parts = _split(url)
    if not url or parts is None or not parts.scheme or not parts.netloc:
        return None
    rest = url[url.index("//") + 2 + len(parts.netloc) :]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", rest


def redact_url(url: str | None) -> str:
    """Scheme and host of ``url`` only (``https://hooks.slack.com/…``): paths and parameters may hold tokens."""
    split = _host_and_rest(url)
    if split is None:
        return "<URL redacted>"
    host, rest = split
    return host + ("/…" if rest.strip("/") else "")


def url_secrets(url: str | None) -> list[str]:
    """The parts of ``url`` to scrub from text: the whole URL, everything after its host, any password."""
    split, parts = _host_and_rest(url), _split(url)
    return [p for p in (url, split[1] if split else None, parts.password if parts else None) if p]


def env_secrets() -> list[str]:
    """The values of :data:`SECRET_ENV_VARS` that are set, URLs expanded by :func:`url_secrets`."""
    values = [os.environ.get(var) for var in SECRET_ENV_VARS]
    return [part for value in values if value for part in (url_secrets(value) if "://" in value else [value])]


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each secret (as is or URL-quoted) and every secret variable's value replaced by ``***``."""
    candidates = {s for s in [*secrets, *env_secrets()] if s and len(s.strip("/")) >= MIN_SECRET_CHARS}
    for secret in sorted(candidates, key=len, reverse=True):
        for form in (secret, urllib.parse.quote(secret, safe="")):
            text = text.replace(form, REDACTED)
    return text

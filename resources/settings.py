"""Every tunable of the platform in one resource, read from ``MEDALLION_*`` variables when the definitions load.

A bad value fails the code location's load (or ``Settings.from_env()``) with an error that names the variable,
before any table is written. The resource shows in the Dagster UI with the values in force.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

import dagster as dg

from resources.errors import MedallionError

LAYER_DEFAULTS: dict[str, float] = {"bronze": 0.90, "silver": 0.95, "gold": 0.98}
THRESHOLD_PREFIX = "MEDALLION_THRESHOLD_"
_TRUE = ("1", "on", "true", "yes")
#: Where the gated assets run: in the run process (Sail, Connect, Databricks Connect), or submitted through Dagster
#: Pipes to a local subprocess, a Databricks job cluster or existing cluster, or Databricks serverless.
EXECUTION_MODES = ("in_process", "pipes_subprocess", "pipes_databricks", "pipes_databricks_serverless")


class SettingsError(MedallionError, ValueError):
    """A ``MEDALLION_*`` setting has a value the platform cannot use."""


def _number(name: str, raw: str, *, low: float, high: float, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise SettingsError(f"{name}={raw!r} is not {what}")
    return value


def _rate(name: str, raw: str) -> float:
    return _number(name, raw, low=0.0, high=1.0, what="a number between 0 and 1")


def _seconds(name: str, raw: str) -> float:
    return _number(name, raw, low=0.0, high=1e12, what="a non-negative number of seconds")


def _whole(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


def _day(name: str, raw: str) -> str:
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a YYYY-MM-DD date") from None


def _flag(name: str, raw: str) -> bool:
    if raw.strip().lower() not in (*_TRUE, "0", "off", "false", "no", ""):
        raise SettingsError(f"{name}={raw!r} is not on/off")
    return raw.strip().lower() in _TRUE


def _execution(name: str, raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in EXECUTION_MODES:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(EXECUTION_MODES)}")
    return mode


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(f"{name} is set but empty")
    return raw


def _lakehouse_root(name: str, raw: str) -> str:
    """An object-store URI of a supported scheme with a bucket (``s3://bucket/prefix``), or a path the engine writes
    below as given (checked as resolved: a relative path below the working folder)."""
    from resources.storage import StorageConfigError, root_uri

    try:
        root_uri(_text(name, raw))
    except StorageConfigError as exc:
        raise SettingsError(str(exc)) from None
    return raw


def _landing_root(name: str, raw: str) -> str:
    """A local folder: landing files are listed and opened with the operating system's guarantees."""
    from resources.landing import LandingRootUnsupported, check_local_root

    try:
        return check_local_root(_text(name, raw))
    except LandingRootUnsupported as exc:
        raise SettingsError(str(exc)) from None


#: variable → (Settings field, parser)
VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "MEDALLION_LANDING_ROOT": ("landing_root", _landing_root),
    "MEDALLION_LAKEHOUSE_ROOT": ("lakehouse_root", _lakehouse_root),
    "MEDALLION_START_DATE": ("start_date", _day),
    "MEDALLION_SETTLE_SECONDS": ("settle_seconds", _seconds),
    "MEDALLION_SENSOR_INTERVAL_SECONDS": ("sensor_interval_seconds", _whole),
    "MEDALLION_GATE_EVENTS_MAX_DAYS": ("gate_events_max_days", _whole),
    "MEDALLION_MIN_VOLUME_SHARE": ("min_volume_share", _rate),
    "MEDALLION_MAX_PARTITIONS_PER_RUN": ("max_partitions_per_run", _whole),
    "MEDALLION_VACUUM_RETENTION_HOURS": ("vacuum_retention_hours", _whole),
    "MEDALLION_AUTOMATION": ("automation", _flag),
    "MEDALLION_RECONCILIATION_TOLERANCE": ("reconciliation_tolerance", _rate),
    "MEDALLION_EXECUTION": ("execution", _execution),
    "MEDALLION_BLOCK_ROWS": ("block_rows", _whole),
}


#: Every ``MEDALLION_*`` name the project reads, here or elsewhere: the engine (``resources/engine.py``), the run guard,
#: the alert webhook, Dagster Pipes (``resources/pipes.py``), the production instance (``deploy/``). Any other name but
#: ``MEDALLION_THRESHOLD_*`` fails the load as a misspelling (``tests/test_settings.py`` greps the repository for them).
KNOWN_VARIABLES: frozenset[str] = frozenset(
    {
        *VARIABLES,
        "MEDALLION_POOL_WAIT_SECONDS",
        "MEDALLION_ALERT_WEBHOOK",
        "MEDALLION_ENGINE",
        "MEDALLION_SPARK_REMOTE",
        "MEDALLION_SPARK_TOKEN",
        "MEDALLION_CONNECT_TIMEOUT_SECONDS",
        "MEDALLION_SAIL_MODE",
        "MEDALLION_SAIL_WORKERS",
        "MEDALLION_SAIL_TASK_SLOTS",
        "MEDALLION_DATABRICKS_NODE_TYPE",
        "MEDALLION_DATABRICKS_SPARK_VERSION",
        "MEDALLION_DATABRICKS_WORKERS",
        "MEDALLION_DATABRICKS_VOLUME_PATH",
        "MEDALLION_DATABRICKS_WHEEL",
        "MEDALLION_DATABRICKS_SCRIPT",
        "MEDALLION_JOB_LAKEHOUSE_ROOT",
        "MEDALLION_JOB_LANDING_ROOT",
        "MEDALLION_PG_HOST",
        "MEDALLION_PG_PORT",
        "MEDALLION_PG_USER",
        "MEDALLION_PG_PASSWORD",
        "MEDALLION_PG_DB",
        "MEDALLION_PG_BIN",
        "MEDALLION_PG_OS_USER",
        "MEDALLION_CODE_SERVER_PORT",
        "MEDALLION_UI_PORT",
    }
)


class Settings(dg.ConfigurableResource):
    """Roots, the partition start, quality thresholds, publish guards, sensor settle time and run limits."""

    landing_root: str = "landing"
    lakehouse_root: str = ".lakehouse"
    start_date: str = "2024-01-01"
    #: ``layer`` or ``layer/table`` → minimum pass rate; layers default to bronze 0.90, silver 0.95, gold 0.98
    thresholds: dict[str, float] = {}
    settle_seconds: float = 30.0
    #: how often the landing sensors and declarative automation are evaluated
    sensor_interval_seconds: int = 5
    gate_events_max_days: int = 31
    #: a re-run may not shrink a published day below this share of its rows without an explicit decision
    min_volume_share: float = 0.5
    max_partitions_per_run: int | None = None
    vacuum_retention_hours: int = 7 * 24
    automation: bool = False
    #: the share of a day's sales revenue that payments captured may differ by before the check warns
    reconciliation_tolerance: float = 0.05
    #: where the gated assets run (``EXECUTION_MODES``)
    execution: str = "in_process"
    #: a multi-day step builds its staged rows in blocks of days holding at most this many upstream rows, so its
    #: memory follows the block, not the range (a day larger than this is a block alone)
    block_rows: int = 1_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in force, every ``MEDALLION_*`` variable validated; ``SettingsError`` names a bad one."""
        env = os.environ if environ is None else environ
        check_names(env)
        values: dict[str, Any] = {
            field: parse(name, env[name]) for name, (field, parse) in VARIABLES.items() if name in env
        }
        values["thresholds"] = {
            _threshold_key(name): _rate(name, raw) for name, raw in env.items() if name.startswith(THRESHOLD_PREFIX)
        }
        settings = cls(**values)
        if "MEDALLION_LAKEHOUSE_ROOT" not in env:  # the default resolves below the working folder
            _lakehouse_root("MEDALLION_LAKEHOUSE_ROOT", settings.lakehouse_root)
        return settings

    def check_thresholds(self, tables: Iterable[str]) -> None:
        """``SettingsError`` naming each ``MEDALLION_THRESHOLD_<LAYER>_<TABLE>`` whose table is not one of ``tables``
        (a mistyped name would otherwise leave the table under its layer's threshold without a word)."""
        known = list(tables)
        unknown = sorted(key for key in self.thresholds if "/" in key and key not in known)
        if unknown:
            variables = [_threshold_variable(table) for table in known]
            names = "; ".join(
                f"{v}: no such gated table{_closest(v, variables)}" for v in map(_threshold_variable, unknown)
            )
            layers = sorted({key.split("/", 1)[0] for key in unknown})
            tables_of = ", ".join(t for t in known if t.split("/", 1)[0] in layers)
            raise SettingsError(f"{names}; the {'/'.join(layers)} tables are {tables_of}")

    def threshold(self, table: str) -> float:
        """The minimum share of rows that must pass for ``layer/name`` to publish a partition."""
        layer = table.split("/", 1)[0]
        return self.thresholds.get(table, self.thresholds.get(layer, LAYER_DEFAULTS[layer]))


def check_names(env: Mapping[str, str]) -> None:
    """``SettingsError`` naming each ``MEDALLION_*`` variable the project does not read, with the closest one it does
    (a misspelled name would otherwise leave its setting at the default without a word)."""
    unknown = sorted(n for n in env if n.startswith("MEDALLION_") and n not in KNOWN_VARIABLES)
    unknown = [name for name in unknown if not name.startswith(THRESHOLD_PREFIX)]
    if unknown:
        known = sorted(KNOWN_VARIABLES)
        raise SettingsError(
            "; ".join(f"{n} is not a medallion setting{_closest(n, known, ' (README: Settings)')}" for n in unknown)
        )


def _closest(name: str, known: list[str], otherwise: str = "") -> str:
    """`` (did you mean X?)`` for the known name closest to ``name``; ``otherwise`` when none is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else otherwise


def _threshold_variable(key: str) -> str:
    """``silver/dim_customer`` → ``MEDALLION_THRESHOLD_SILVER_DIM_CUSTOMER``."""
    return THRESHOLD_PREFIX + key.replace("/", "_").upper()


def _threshold_key(name: str) -> str:
    """``MEDALLION_THRESHOLD_SILVER`` → ``silver``; ``…_SILVER_DIM_CUSTOMER`` → ``silver/dim_customer``."""
    rest = name.removeprefix(THRESHOLD_PREFIX).lower()
    layer, underscore, table = rest.partition("_")
    if layer not in LAYER_DEFAULTS:
        layers = [_threshold_variable(layer) for layer in LAYER_DEFAULTS]
        raise SettingsError(
            f"{name}: unknown layer {layer!r}; expected one of {', '.join(LAYER_DEFAULTS)}"
            f"{_closest(_threshold_variable(layer), layers)}"
        )
    if underscore and not table.strip("_"):
        raise SettingsError(f"{name}: empty table name; {_threshold_variable(layer)} sets every {layer} table")
    return f"{layer}/{table}" if table else layer

"""Mistyped settings fail the definitions load naming the variable: an unknown ``MEDALLION_*`` name (with the closest
known one), a threshold variable with an empty or unknown table, and every numeric setting read anywhere, whatever
the mode (finite, in range)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from medallion_assets.cli import _failure
from medallion_assets.definitions import SPECS, build_resources
from resources.errors import MedallionError
from resources.run_guard import RunGuard
from resources.settings import THRESHOLD_PREFIX, VARIABLES, Settings, SettingsError

REPO = Path(__file__).resolve().parents[1]
#: Where the project reads or documents its variables (its code, deployment, bench, Makefile, CI and docs).
SOURCES = ("resources", "medallion_assets", "sensors", "deploy", "bench", "tests", ".ci", "Makefile", "README.md")
NAME = re.compile(r"\bMEDALLION_[A-Z0-9_]*[A-Z0-9]\b")


def named_in_the_repo() -> set[str]:
    """Every ``MEDALLION_*`` name in the sources but this file (which spells wrong ones on purpose)."""
    files = [p for s in SOURCES for p in ([REPO / s] if (REPO / s).is_file() else (REPO / s).rglob("*"))]
    texts = (p.read_text(errors="ignore") for p in files if p.is_file() and p.suffix != ".pyc" and p != Path(__file__))
    return {name for text in texts for name in NAME.findall(text) if not name.startswith(THRESHOLD_PREFIX)}


def test_every_variable_the_project_reads_is_known() -> None:
    from resources.settings import KNOWN_VARIABLES

    named = named_in_the_repo()
    assert {"MEDALLION_POOL_WAIT_SECONDS", "MEDALLION_PG_HOST", "MEDALLION_JOB_LANDING_ROOT"} <= named
    assert named <= KNOWN_VARIABLES, sorted(named - KNOWN_VARIABLES)
    Settings.from_env(dict.fromkeys(named - set(VARIABLES), "x"))  # accepted as names (their values are not its)


@pytest.mark.parametrize(
    ("variable", "closest"),
    [("MEDALLION_LAKEHOUSE_ROOOT", "MEDALLION_LAKEHOUSE_ROOT"),
     ("MEDALLION_MIN_VOLUME_SHARES", "MEDALLION_MIN_VOLUME_SHARE"),
     ("MEDALLION_POOL_WAIT", "MEDALLION_POOL_WAIT_SECONDS"), ("MEDALLION_SAIL_WORKER", "MEDALLION_SAIL_WORKERS")],
)  # fmt: skip
def test_an_unknown_name_is_refused_with_the_closest_known_one(variable: str, closest: str) -> None:
    """``MEDALLION_LAKEHOUSE_ROOOT=...`` loaded with the default root; ``…_SHARES=0.9`` left the guard at 0.5."""
    with pytest.raises(SettingsError, match=rf"{variable} is not a medallion setting \(did you mean {closest}\?"):
        Settings.from_env({variable: "0.9"})


def test_several_unknown_names_are_named_together() -> None:
    with pytest.raises(SettingsError, match=r"MEDALLION_A is not.*; MEDALLION_ZZZ is not"):
        Settings.from_env({"MEDALLION_ZZZ": "1", "MEDALLION_A": "1", "OTHER": "1"})


@pytest.mark.parametrize("variable", ["MEDALLION_THRESHOLD_SILVER_", "MEDALLION_THRESHOLD_GOLD__"])
def test_a_threshold_with_an_empty_table_is_refused(variable: str) -> None:
    """``MEDALLION_THRESHOLD_SILVER_=0.1`` lowered every silver gate to 0.1."""
    with pytest.raises(SettingsError, match=rf"{variable}: empty table name"):
        Settings.from_env({variable: "0.1"})


def test_a_threshold_for_an_unknown_table_or_layer_suggests_the_closest() -> None:
    with pytest.raises(SettingsError, match=r"MEDALLION_THRESHOLD_SILVER_ODERS: no such gated table \(did you mean "):
        Settings.from_env({"MEDALLION_THRESHOLD_SILVER_ODERS": "0.9"}).check_thresholds(s.table for s in SPECS)
    with pytest.raises(SettingsError, match=r"MEDALLION_THRESHOLD_SILVER_ODERS.*MEDALLION_THRESHOLD_SILVER_ORDERS\?"):
        Settings.from_env({"MEDALLION_THRESHOLD_SILVER_ODERS": "0.9"}).check_thresholds(s.table for s in SPECS)
    with pytest.raises(SettingsError, match=r"unknown layer 'sliver'.*did you mean MEDALLION_THRESHOLD_SILVER\?"):
        Settings.from_env({"MEDALLION_THRESHOLD_SLIVER": "0.9"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MEDALLION_POOL_WAIT_SECONDS", "abc"), ("MEDALLION_POOL_WAIT_SECONDS", "-5"),
     ("MEDALLION_POOL_WAIT_SECONDS", "inf"), ("MEDALLION_CONNECT_TIMEOUT_SECONDS", "nan"),
     ("MEDALLION_CONNECT_TIMEOUT_SECONDS", "0"),
     ("MEDALLION_SAIL_WORKERS", "two"), ("MEDALLION_DATABRICKS_WORKERS", "-1")],
)  # fmt: skip
def test_a_bad_number_fails_the_load_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the default mode (embedded Sail, in process), where these passed the load and failed the run later."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(MedallionError, match=rf"{variable}.*{re.escape(repr(value))}"):
        build_resources()


def test_the_connect_timeout_is_checked_in_every_engine_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_ENGINE", "connect")
    monkeypatch.setenv("MEDALLION_CONNECT_TIMEOUT_SECONDS", "nan")
    with pytest.raises(MedallionError, match="MEDALLION_CONNECT_TIMEOUT_SECONDS"):
        build_resources()


def test_medallion_run_names_a_bad_setting_before_running(tmp_path: Path) -> None:
    """The run used to start and fail with "see the run's log in the UI"; now nothing runs and the variable is named."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "medallion_assets.cli", "run", "--day", "2024-01-02"]
    for variable, says in [
        ("MEDALLION_POOL_WAIT_SECONDS", "MEDALLION_POOL_WAIT_SECONDS must be a positive number of seconds, got 'abc'"),
        ("MEDALLION_LAKEHOUSE_ROOOT", "did you mean MEDALLION_LAKEHOUSE_ROOT?"),
    ]:
        done = subprocess.run(command, cwd=tmp_path, env={**env, variable: "abc"}, capture_output=True, text=True)
        assert done.returncode == 2 and says in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / ".lakehouse").exists() and not (tmp_path / "home").exists()


def test_a_run_failing_as_its_resources_start_is_explained_by_the_cli() -> None:
    """The CLI said only "see the run's log in the UI" when no step failed (a resource failed to start)."""

    @dg.asset
    def needs_the_guard(run_guard: RunGuard) -> None: ...

    result = dg.materialize(
        [needs_the_guard], resources={"run_guard": RunGuard(pool_wait_seconds=-1)}, raise_on_error=False
    )
    assert not result.success
    assert "RunGuard.pool_wait_seconds must be a positive number of seconds, got -1" in _failure(result)

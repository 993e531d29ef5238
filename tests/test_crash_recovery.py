"""kill -9 at six points of a real CLI run, then the same command again: every table readable at its last
commit, the re-run gives exactly the tables of an uninterrupted run, published data has its run-log row
(reconciled from the commit when the run died before logging), and the dead run's scratch is gone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medallion_assets.sample_data import generate, generate_customers

REPO = Path(__file__).resolve().parents[1]
DAY = "2024-01-02"
ORDERS = ["asset", "materialize", "-m", "medallion_assets.definitions", "--partition", DAY, "--select",
          "bronze/orders,silver/orders,gold/daily_sales"]  # fmt: skip
CUSTOMERS = ["asset", "materialize", "-m", "medallion_assets.definitions", "--partition", DAY, "--select",
             "bronze/customers"]  # fmt: skip
DIM = ["asset", "materialize", "-m", "medallion_assets.definitions", "--select", "silver/dim_customer"]
TABLES = ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales", "quarantine/daily_sales")
DIM_TABLES = ("bronze/customers", "silver/dim_customer", "quarantine/customers")
VOLATILE = {"_ingested_at", "_quarantined_at", "_run_id"}
#: point → (commands before the one killed, the killed command, tables it affects)
POINTS = {
    "after_commit:bronze/orders": ([], ORDERS, TABLES),
    "staged": ([], ORDERS, TABLES),
    "after_commit:quarantine/orders": ([], ORDERS, TABLES),
    "after_commit:silver/orders": ([], ORDERS, TABLES),
    "after_commit:gold/daily_sales": ([], ORDERS, TABLES),
    "merge:silver/dim_customer": ([CUSTOMERS], DIM, DIM_TABLES),
}


def run(args: list[str], env: dict[str, str], point: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.crash_points", point, *args] if point else [
        str(Path(sys.executable).parent / "dagster"), *args
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def environment(tmp: Path, landing: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPARK_")},
        "DAGSTER_HOME": str(home),
        "MEDALLION_LANDING_ROOT": str(landing),
        "MEDALLION_LAKEHOUSE_ROOT": str(tmp / "lake"),
        "MEDALLION_ENGINE": "sail",
        "MEDALLION_THRESHOLD_SILVER_DIM_CUSTOMER": "0.5",
    }


def rows(lake: Path, table: str) -> list[str]:
    df = DeltaTable(str(lake / table)).to_pandas()
    df = df.drop(columns=[c for c in df.columns if c in VOLATILE])
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in df.to_dict("records"))


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "landing"
    generate(root, days=3, orders_per_day=300, seed=13)
    generate_customers(root, days=3, customers=200, seed=13)
    return root


@pytest.fixture(scope="module")
def reference(landing: Path, tmp_path_factory) -> Path:
    """The tables of uninterrupted runs."""
    tmp = tmp_path_factory.mktemp("reference")
    env = environment(tmp, landing)
    for command in (ORDERS, CUSTOMERS, DIM):
        done = run(command, env)
        assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "lake"


@pytest.mark.parametrize("point", list(POINTS))
def test_a_kill_at_any_point_recovers_exactly(point: str, landing: Path, reference: Path, tmp_path: Path) -> None:
    before, killed, tables = POINTS[point]
    env = environment(tmp_path, landing)
    for command in before:
        assert run(command, env).returncode == 0
    crashed = run(killed, env, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    lake = tmp_path / "lake"
    for table in tables:  # readable at its last commit
        if (lake / table / "_delta_log").exists():
            DeltaTable(str(lake / table)).to_pyarrow_table()
    leftovers = [p for p in (lake / "_staging").iterdir()] if (lake / "_staging").exists() else []
    again = run(killed, env)
    assert again.returncode == 0, again.stderr[-3000:]
    for table in tables:
        assert rows(lake, table) == rows(reference, table), table
    assert not [p for p in leftovers if p.exists()], "scratch of the dead run was not removed"
    log = DeltaTable(str(lake / "monitoring" / "pipeline_runs")).to_pandas()
    for table in tables:
        if table.startswith(("quarantine/",)):
            continue
        published = log[(log.asset == table) & log.passed]
        assert len(published) >= 1, table
    committed_then_killed = point.startswith("after_commit:") and not point.endswith("quarantine/orders")
    if committed_then_killed:
        table = point.split(":", 1)[1]
        reconciled = log[(log.asset == table) & log.reconciled.fillna(False).astype(bool)]
        assert len(reconciled) == 1 and reconciled.iloc[0].passed, log[log.asset == table]

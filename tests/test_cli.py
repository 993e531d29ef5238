"""The README's plain CLI command, run as a user would: a subprocess with its own embedded Sail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from medallion_assets.sample_data import generate

REPO = Path(__file__).resolve().parents[1]
COMMAND = [
    "dagster",
    "asset",
    "materialize",
    "-m",
    "medallion_assets.definitions",
    "--select",
    "bronze/orders,silver/orders,gold/daily_sales",
    "--partition",
    "2024-01-02",
]


def test_readme_cli_materializes_a_partition(tmp_path: Path) -> None:
    assert " ".join(COMMAND) in (REPO / "README.md").read_text()
    landing, lake, home = tmp_path / "in", tmp_path / "lake", tmp_path / "home"
    generate(landing, days=3, orders_per_day=150, seed=11)
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "MEDALLION_LANDING_ROOT": str(landing),
        "MEDALLION_LAKEHOUSE_ROOT": str(lake),
        "DAGSTER_HOME": str(home),
        "MEDALLION_ENGINE": "sail",
    }
    exe = Path(sys.executable).parent / COMMAND[0]
    proc = subprocess.run([str(exe), *COMMAND[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("bronze/orders", "silver/orders", "quarantine/orders", "gold/daily_sales"):
        days = DeltaTable(str(lake / name)).to_pandas()["order_date"].astype(str).unique().tolist()
        assert days == ["2024-01-02"], name
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in (["bronze", "orders"], ["silver", "orders"], ["gold", "daily_sales"]):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.asset_materialization.partition == "2024-01-02"


def test_medallion_select_takes_comma_lists_and_names_a_bad_selection() -> None:
    """``--select`` as Dagster's CLI takes it (a comma list) or in Dagster's selection syntax; a bad one is a
    one-line usage error naming it, never a traceback."""
    import pytest

    from medallion_assets.cli import UsageError, _executable
    from medallion_assets.definitions import defs

    keys = [dg.AssetKey(["bronze", "orders"]), dg.AssetKey(["silver", "orders"])]
    assert _executable("bronze/orders,silver/orders", defs) == keys
    assert _executable("bronze/orders, silver/orders", defs) == keys
    assert _executable('key:"bronze/orders" or key:"silver/orders"', defs) == keys
    downstream = _executable("key:bronze/orders+", defs)
    assert keys[0] in downstream and dg.AssetKey(["silver", "orders"]) in downstream
    for bad in ("bronze/nothing", "bronze/orders,,", "key:(", "bronze/orders,silver/nothing"):
        with pytest.raises(UsageError, match="--select"):
            _executable(bad, defs)


def test_the_garbage_collector_is_paused_while_loading_and_runs_again_for_the_run(monkeypatch) -> None:
    """``medallion run`` pauses the collector while it loads Dagster and the definitions; it must be back on for
    the run (a year-long range would otherwise keep every cycle it makes), after a good load and a refused one."""
    import argparse
    import gc

    import pytest

    from medallion_assets import cli

    seen: dict[str, bool] = {}
    days_of = cli.days_of

    def loading(first: str, last: str | None):
        seen["loading"] = gc.isenabled()
        return days_of(first, last)

    def materialize(*args, **kwargs):
        seen["run"] = gc.isenabled()
        raise RuntimeError("stop before the engine")

    monkeypatch.setattr(cli, "days_of", loading)
    monkeypatch.setattr(cli, "_instance", dg.DagsterInstance.ephemeral)
    monkeypatch.setattr(dg, "materialize", materialize)
    args = argparse.Namespace(day="2024-01-02", first=None, last=None, select="bronze/orders", allow_shrink=False)
    try:
        with pytest.raises(RuntimeError, match="stop before the engine"):
            cli._run(args)
        assert seen == {"loading": False, "run": True} and gc.isenabled()
        with pytest.raises(cli.UsageError, match="before the first daily partition"):
            cli._run(argparse.Namespace(**{**vars(args), "day": "1900-01-01"}))
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # the test session's objects go back to being collected


def test_medallion_run_names_refused_days_and_unread_files_and_exits_3(tmp_path: Path) -> None:
    """A range whose gate refused a day (the other days published) exited 0 and printed nothing about it; files
    left unread showed only in the event log. Now each refused table day is printed with why, each unread
    file with why, and the exit code is 3."""
    landing, lake = tmp_path / "in", tmp_path / "lake"
    generate(landing, days=3, orders_per_day=150, seed=11)
    day = landing / "orders" / "date=2024-01-02"
    (day / "blob.jsonl").write_bytes(bytes(range(256)) * 80)  # not text: the day's bronze gate refuses it
    (day / "late.ndjson").write_text("{}\n")
    env = {**os.environ, "MEDALLION_LANDING_ROOT": str(landing), "MEDALLION_LAKEHOUSE_ROOT": str(lake),
           "MEDALLION_ENGINE": "sail", "PYTHONPATH": str(REPO)}  # fmt: skip
    env.pop("DAGSTER_HOME", None)
    command = [sys.executable, "-m", "medallion_assets.cli", "run", "--from", "2024-01-01", "--to", "2024-01-03"]
    proc = subprocess.run([*command, "--select", "bronze/orders"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    refused = [line for line in proc.stderr.splitlines() if line.startswith("  bronze/orders 2024-")]
    assert len(refused) == 1 and "2024-01-02" in refused[0] and "utf8_valid" in refused[0], proc.stderr
    assert "orders/date=2024-01-02/late.ndjson" in proc.stderr and "not read" in proc.stderr
    days = DeltaTable(str(lake / "bronze/orders")).to_pandas()["order_date"].astype(str).unique().tolist()
    assert sorted(days) == ["2024-01-01", "2024-01-03"]


def test_medallion_run_re_keys_fact_days_built_before_their_customers(tmp_path: Path) -> None:
    """Days run out of order (2, then 1): day 2's orders were keyed -1 for customers first delivered on day 1, and
    stayed so, exit 0. The day-1 run's dimension write now re-keys day 2 in the same command, and says so."""
    import pandas as pd

    from medallion_assets.sample_data import generate_customers

    landing, lake = tmp_path / "in", tmp_path / "lake"
    generate(landing, days=2, orders_per_day=150, seed=11)
    generate_customers(landing, days=2, customers=400, seed=11)
    env = {**os.environ, "MEDALLION_LANDING_ROOT": str(landing), "MEDALLION_LAKEHOUSE_ROOT": str(lake),
           "MEDALLION_ENGINE": "sail", "PYTHONPATH": str(REPO)}  # fmt: skip
    env.pop("DAGSTER_HOME", None)
    select = "bronze/orders,silver/orders,gold/fact_orders,bronze/customers,silver/dim_customer"
    command = [sys.executable, "-m", "medallion_assets.cli", "run", "--select", select, "--day"]

    def fact_day_2() -> pd.DataFrame:
        fact = DeltaTable(str(lake / "gold/fact_orders")).to_pandas()
        return fact[fact.order_date.astype(str) == "2024-01-02"]

    for day in ("2024-01-02", "2024-01-01"):
        proc = subprocess.run([*command, day], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        if day == "2024-01-02":
            unknown_before = int((fact_day_2().customer_sk == -1).sum())
    assert "re-keying gold/fact_orders for 2024-01-02" in proc.stdout
    fact, dim = fact_day_2(), DeltaTable(str(lake / "silver/dim_customer")).to_pandas()
    versions = dim[["customer_id", "customer_sk", "valid_from", "valid_to"]]
    pairs = fact.merge(versions, on="customer_id", suffixes=("", "_d"))
    valid = pairs[(pairs.valid_from <= pairs.order_ts) & (pairs.valid_to.isna() | (pairs.order_ts < pairs.valid_to))]
    expected = dict(zip(valid.order_id, valid.customer_sk_d, strict=True))
    assert fact.set_index("order_id").customer_sk.to_dict() == {o: expected.get(o, -1) for o in fact.order_id}
    assert (fact.customer_sk == -1).sum() < unknown_before

    # A customer version landed on day 2 but valid from before one of day 1's orders, run with the start date
    # moved past day 1: day 1 cannot be re-keyed. Named with the setting, exit 3 (was: a raw CheckError).
    everything = DeltaTable(str(lake / "gold/fact_orders")).to_pandas().merge(versions, on="customer_sk")
    day1 = everything[everything.order_date.astype(str) == "2024-01-01"]
    order = day1[day1.order_ts - day1.valid_from >= pd.Timedelta(seconds=2)].iloc[0]
    moved = (order.order_ts - pd.Timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with (landing / "customers" / "date=2024-01-02" / "customers-000.csv").open("a") as csv:
        csv.write(f"{order.customer_id_x},Moved,moved@example.com,consumer,north,{moved}\n")
    later = {**env, "MEDALLION_START_DATE": "2024-01-02"}
    proc = subprocess.run([*command, "2024-01-02"], cwd=tmp_path, env=later, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "gold/fact_orders 2024-01-01 keep(s) keys of older customer versions" in proc.stderr
    assert "MEDALLION_START_DATE=2024-01-02" in proc.stderr and "Error" not in proc.stderr

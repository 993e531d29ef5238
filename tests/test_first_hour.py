"""What a new user's first hour runs: the first build, then a real webserver and daemon with automation on.

Nothing is built twice after the first build; a day's customers landing after its orders re-key that day's fact;
the whole-table gold follows. Checked against an as-of join computed independently over all customer files.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
from deltalake import DeltaTable

from medallion_assets.customers_contract import SEGMENTS
from medallion_assets.sample_data import generate, generate_customers, generate_payments

from .services import CONNECT_ENV, DagsterServices, wait_until

REPO = Path(__file__).resolve().parents[1]
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}


def runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs())


def settled(instance: dg.DagsterInstance, count: int) -> list[dg.DagsterRun] | None:
    """All runs once at least ``count`` exist and none is queued or running."""
    found = runs(instance)
    return found if len(found) >= count and all(r.status.value not in ACTIVE for r in found) else None


def expected_versions(landing: Path) -> pd.DataFrame:
    """Customer versions from the CSV files, computed here: each customer's rows ordered by updated_at."""
    rows = []
    for path in sorted((landing / "customers").rglob("*.csv")):
        with path.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    df = pd.DataFrame(rows)
    df = df[df.customer_id.str.strip().ne("") & df.email.str.contains("@") & df.segment.isin(SEGMENTS)]
    df["updated_at"] = pd.to_datetime(df["updated_at"], utc=True).astype("datetime64[ns, UTC]")
    df = df.sort_values(["customer_id", "updated_at"]).drop_duplicates(["customer_id", "updated_at"], keep="last")
    attributes = ["name", "email", "segment", "region"]
    changed = (df[attributes] != df.groupby("customer_id")[attributes].shift()).any(axis=1)
    return df[changed]  # a re-delivery with the same attributes is not a new version


def test_first_build_then_automation_with_a_real_daemon(tmp_path: Path) -> None:
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    first, last = yesterday - timedelta(days=1), yesterday
    landing, lake, home = tmp_path / "landing", tmp_path / "lake", tmp_path / "home"
    staging = tmp_path / "later"
    generate(landing, days=2, orders_per_day=200, seed=8, start=first)
    generate_payments(landing, days=2, orders_per_day=200, seed=8, start=first)
    generate_customers(staging, days=2, customers=400, seed=8, start=first, change_rate=0.2)
    shutil.move(staging / "customers" / f"date={first}", landing / "customers" / f"date={first}")
    env = {
        "MEDALLION_AUTOMATION": "on",
        "MEDALLION_SETTLE_SECONDS": "1",
        "MEDALLION_SENSOR_INTERVAL_SECONDS": "2",
        "MEDALLION_START_DATE": str(first),
    }
    # 1. the first build, as make dev does: every table for both days in one CLI run
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    base = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
    cli = {**base, **env, "DAGSTER_HOME": str(home), "MEDALLION_LANDING_ROOT": str(landing),
           "MEDALLION_LAKEHOUSE_ROOT": str(lake)}  # fmt: skip
    medallion = str(Path(sys.executable).parent / "medallion")
    built = subprocess.run([medallion, "run", "--from", str(first), "--to", str(last)], env=cli, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    # 3: the run finished with a refused day, named: the last day's customers have not landed yet
    assert built.returncode == 3, built.stderr[-3000:]
    tables = ("  bronze/", "  silver/", "  gold/")
    refused = [line.strip() for line in built.stderr.splitlines() if line.startswith(tables)]
    assert refused == [
        f"bronze/customers {last}: no landing files in customers/date={last}; nothing was written; "
        "set the run tag medallion/allow_shrink=true to replace it on purpose"
    ], built.stderr[-3000:]
    with DagsterServices(landing, lake, home=home, env=env) as dagster:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # 2. the sensors and automation find nothing to build again
            for _ in range(10):  # about five sensor ticks
                dagster.check_alive()
                time.sleep(2)
            assert len(runs(instance)) == 1, [(r.job_name, r.tags.get("dagster/sensor_name")) for r in runs(instance)]
            # 3. the last day's customers land after its orders
            shutil.move(staging / "customers" / f"date={last}", landing / "customers" / f"date={last}")
            done = wait_until(lambda: settled(instance, 4), timeout=240, interval=2, what="the follow-up runs")
            # the sensor's run selected the customers' tables only, and ran their checks with them
            (sensor_run,) = [r for r in done if r.tags.get("dagster/sensor_name") == "landing_sensor"]
            evaluations = instance.all_logs(sensor_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            checked = {e.dagster_event.event_specific_data.asset_key.to_user_string() for e in evaluations}
        assert sensor_run.tags["medallion/sources"] == "customers"
        assert {"bronze/customers", "silver/dim_customer"} <= checked and "bronze/orders" not in checked
        assert all(r.status.value == "SUCCESS" for r in done), [(r.job_name, r.status) for r in done]
        launched = {r.tags.get("dagster/sensor_name") for r in done} - {None}
        assert {"landing_sensor", "medallion_automation", "fact_rekey_after_success"} <= launched
    fact = DeltaTable(str(lake / "gold" / "fact_orders")).to_pandas()
    dim = DeltaTable(str(lake / "silver" / "dim_customer")).to_pandas()
    versions = expected_versions(landing)
    day = fact[fact.order_date.astype(str) == str(last)].copy()
    day["order_ts"] = pd.to_datetime(day["order_ts"], utc=True).astype("datetime64[ns, UTC]")
    # the as-of join, computed here: the latest version whose updated_at is at or before the order
    valid = versions[["customer_id", "updated_at"]].rename(columns={"updated_at": "valid"}).sort_values("valid")
    expected = pd.merge_asof(
        day.sort_values("order_ts"), valid, left_on="order_ts", right_on="valid", by="customer_id",
        direction="backward",
    )  # fmt: skip
    got = day.merge(dim[["customer_sk", "valid_from"]], on="customer_sk", how="left")
    got_valid = dict(
        zip(got.order_id, pd.to_datetime(got.valid_from, utc=True).astype("datetime64[ns, UTC]"), strict=True)
    )
    changed = versions[versions.updated_at.dt.date == last].customer_id.unique()
    assert len(changed) > 0 and day.customer_id.isin(changed).any()  # some orders are by customers changed that day
    for row in expected.itertuples():
        if pd.isna(row.valid):
            assert row.customer_sk == -1, row
        else:
            assert got_valid[row.order_id] == row.valid, row
    ltv = DeltaTable(str(lake / "gold" / "customer_ltv")).history(1)[0]
    assert ltv["version"] >= 1  # rebuilt by automation after the new customers

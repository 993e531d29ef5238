"""f. Latency a user feels: one small day through the ``medallion`` CLI, and a day's files to gold with a daemon.

``small_day_run_seconds``: the sample data ``make dev`` writes (400 orders a day, with customers and payments);
one ``medallion run --day D --select <the orders tables>`` process per day, wall time of the whole process
(interpreter start, imports, engine start, run, exit), in a Dagster instance on disk. The first day warms the
OS and bytecode caches and is not counted; the figure is the median of the next days.

``file_to_gold_seconds``: ``dagster-webserver`` and ``dagster-daemon`` with automation on (as ``make dev``)
and ``MEDALLION_SETTLE_SECONDS=5``, every other setting at its default. A day's sample files (all three
feeds) are written into the landing folder; the figure runs from the last file written to the end of the run
that published the day's ``gold/daily_sales`` (its materialization's timestamp in the instance).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import REPO, Context, child_env, median, show, target, write_result
from medallion_assets.sample_data import generate, generate_customers, generate_payments
from tests.services import DagsterServices, wait_until

NAME = "latency"
START = date(2024, 1, 1)
ORDER_TABLES = "bronze/orders,silver/orders,quarantine/orders,gold/daily_sales,quarantine/daily_sales"
GOLD = dg.AssetKey(["gold", "daily_sales"])
SETTLE_SECONDS = 5


def _day(i: int) -> str:
    return (START + timedelta(days=i)).isoformat()


def write_sample(landing: Path, days: int) -> None:
    """What ``make sample-data`` writes per day: 400 orders, the customers feed, the payments feed."""
    generate(landing, days=days, orders_per_day=400, seed=42, start=START)
    generate_customers(landing, days=days, customers=2_000, seed=42, start=START)
    generate_payments(landing, days=days, orders_per_day=400, seed=42, start=START)


def small_days(base: Path, days: int) -> dict[str, Any]:
    """One CLI process per day; the first warms the caches."""
    landing, lake, home = base / "landing", base / "lakehouse", base / "home"
    write_sample(landing, days)
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = child_env(
        DAGSTER_HOME=str(home),
        MEDALLION_LANDING_ROOT=str(landing),
        MEDALLION_LAKEHOUSE_ROOT=str(lake),
        MEDALLION_START_DATE=_day(0),
    )
    medallion = str(Path(sys.executable).parent / "medallion")
    seconds = []
    for i in range(days):
        started = time.perf_counter()
        proc = subprocess.run(
            [medallion, "run", "--day", _day(i), "--select", ORDER_TABLES],
            env=env,
            cwd=base,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds.append(round(time.perf_counter() - started, 3))
        if proc.returncode != 0:
            raise RuntimeError(f"medallion run --day {_day(i)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        print(f"  medallion run --day {_day(i)}  {seconds[-1]:6.2f} s" + ("  (warm-up)" if i == 0 else ""))
    return {"warm_up_seconds": seconds[0], "seconds": seconds[1:], "small_day_run_seconds": median(seconds[1:])}


def gold_published(instance: dg.DagsterInstance, day: str) -> dg.EventLogRecord | None:
    """The day's last gold materialization, or None."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=GOLD, asset_partitions=[day]), limit=1)
    return records.records[0] if records.records else None


def phases(instance: dg.DagsterInstance, landed: float, record: dg.EventLogRecord) -> dict[str, float]:
    """Where a day's latency went, from the run that published its gold: waiting for the sensor to request the run
    (settle time included), from the request to the worker's start (queue, run slots, worker launch), and the run up
    to gold's materialization."""
    run = instance.get_run_record_by_id(record.run_id)
    if run is None or run.start_time is None:
        return {}
    return {
        "landed_to_run_created": round(run.create_timestamp.timestamp() - landed, 2),
        "run_created_to_started": round(run.start_time - run.create_timestamp.timestamp(), 2),
        "run_started_to_gold": round(record.timestamp - run.start_time, 2),
    }


def file_to_gold(base: Path, days: int) -> dict[str, Any]:
    """Days 1.. are loaded first; then each further day's files land and are timed to gold."""
    landing, staging, lake, home = base / "landing", base / "staging", base / "lakehouse", base / "home"
    write_sample(staging, days + 1)
    landing.mkdir(parents=True)
    env = {
        "MEDALLION_AUTOMATION": "on",
        "MEDALLION_SETTLE_SECONDS": str(SETTLE_SECONDS),
        "MEDALLION_START_DATE": _day(0),
    }
    samples: list[float] = []
    parts: list[dict[str, float]] = []
    with (
        DagsterServices(landing, lake, home=home, env=env) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        for i in range(days + 1):
            day = _day(i)
            for source in sorted(staging.glob(f"*/date={day}")):  # every feed's files of the day
                target_dir = landing / source.parent.name / source.name
                target_dir.mkdir(parents=True)
                for path in sorted(source.iterdir()):  # each file written whole under a temporary name, then renamed
                    tmp = target_dir / f"{path.name}.tmp"
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, target_dir / path.name)
            landed = time.time()

            def published(day: str = day) -> dg.EventLogRecord | None:
                dagster.check_alive()
                return gold_published(instance, day)

            record = wait_until(published, timeout=300, interval=0.2, what=f"gold/daily_sales for {day}")
            samples.append(round(record.timestamp - landed, 3))
            parts.append(phases(instance, landed, record))
            print(
                f"  {day}: files landed → gold published {samples[-1]:6.2f} s {parts[-1]}"
                + ("  (warm-up)" if i == 0 else "")
            )
    return {
        "warm_up_seconds": samples[0],
        "seconds": samples[1:],
        "phases": parts[1:],
        "file_to_gold_seconds": median(samples[1:]),
    }


def run(ctx: Context) -> dict[str, Any]:
    base = ctx.workdir / NAME
    shutil.rmtree(base, ignore_errors=True)
    repeats = 2 if ctx.quick else 4
    small = small_days(base / "small", repeats + 1)
    gold = file_to_gold(base / "gold", repeats)
    small_s, gold_s = small["small_day_run_seconds"], gold["file_to_gold_seconds"]
    result = {
        "scenario": NAME,
        "small_day": small,
        "file_to_gold": {**gold, "settle_seconds": SETTLE_SECONDS},
        "small_day_run_seconds": small_s,
        "file_to_gold_seconds": gold_s,
        "targets": {
            "small_day_run_seconds": target(small_s, 4, "<=", "≤ 4 s"),
            "file_to_gold_seconds": target(gold_s, SETTLE_SECONDS + 15, "<=", f"≤ {SETTLE_SECONDS + 15} s"),
        },
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        "f. latency: a small day through the CLI; a day's files to gold with a real daemon",
        [
            ("medallion run, one sample day", f"{small_s:.2f} s  (median of {small['seconds']}; target ≤ 4 s)"),
            ("files landed → gold", f"{gold_s:.2f} s  (median of {gold['seconds']}; target ≤ {SETTLE_SECONDS + 15} s)"),
        ],
    )
    return result

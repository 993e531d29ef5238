"""h. Dagster's bookkeeping: milliseconds per event written to the dev instance, stock SQLite storage vs pooled.

Each round opens a fresh instance folder twice, once with Dagster's default SQLite storage and once with the
repo's ``dagster.yaml`` (``PooledSqliteInstance``, ``resources/instance_storage.py``), and writes the same
per-partition ``ASSET_MATERIALIZATION`` events through ``DagsterInstance.handle_new_event``, as a run worker
does. Rounds alternate the two; the figure is each one's median. A 365-day range run writes about 2,200 such
events (planned and materialized, per day and table).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.test_utils import create_run_for_test

from bench.common import REPO, Context, median, show, write_result

NAME = "instance_events"
ASSET = dg.AssetKey(["bench", "events"])


def ms_per_event(home: Path, events: int) -> float:
    """Write ``events`` materializations of one run into the instance in ``home``; milliseconds per event."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = create_run_for_test(instance, job_name="bench_events")
        started = time.perf_counter()
        for i in range(events):
            materialization = dg.AssetMaterialization(ASSET, partition=f"day-{i:04d}")
            event = DagsterEvent(
                DagsterEventType.ASSET_MATERIALIZATION.value,
                run.job_name,
                event_specific_data=StepMaterializationData(materialization),
            )
            instance.handle_new_event(
                dg.EventLogEntry(
                    error_info=None,
                    level=20,
                    user_message="",
                    run_id=run.run_id,
                    timestamp=time.time(),
                    dagster_event=event,
                    job_name=run.job_name,
                )
            )
        seconds = time.perf_counter() - started
        written = len(instance.fetch_materializations(ASSET, limit=events + 1).records)
    if written != events:
        raise RuntimeError(f"{home}: {written} materializations stored, {events} written")
    return seconds / events * 1000


def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    base = ctx.workdir / NAME
    shutil.rmtree(base, ignore_errors=True)
    instance_files = {"stock": "telemetry:\n  enabled: false\n", "pooled": (REPO / "dagster.yaml").read_text()}
    times: dict[str, list[float]] = {name: [] for name in instance_files}
    for r in range(sizes.instance_event_rounds):
        for name, config in instance_files.items():
            home = base / f"{name}-{r}"
            home.mkdir(parents=True)
            (home / "dagster.yaml").write_text(config)
            times[name].append(round(ms_per_event(home, sizes.instance_events), 2))
    stock, pooled = round(median(times["stock"]), 2), round(median(times["pooled"]), 2)
    result = {
        "scenario": NAME,
        "events": sizes.instance_events,
        "rounds": sizes.instance_event_rounds,
        "stock_sqlite_ms_per_event_all": times["stock"],
        "pooled_sqlite_ms_per_event_all": times["pooled"],
        "stock_sqlite_ms_per_event": stock,
        "instance_event_ms": pooled,
        "stock_vs_pooled_ratio": round(stock / pooled, 2),
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"h. instance events: {sizes.instance_events} materializations per round (median of {len(times['stock'])})",
        [
            ("Dagster's SQLite storage", f"{stock:.2f} ms an event"),
            ("pooled (dagster.yaml)", f"{pooled:.2f} ms an event ({result['stock_vs_pooled_ratio']}x faster)"),
        ],
    )
    return result

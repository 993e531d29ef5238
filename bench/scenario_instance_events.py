"""h. Dagster's bookkeeping: milliseconds per event written to the dev instance, stock SQLite storage vs medallion's.

Each round opens three fresh instance folders and writes the same per-partition ``ASSET_MATERIALIZATION`` events
through ``DagsterInstance.handle_new_event``, as a run worker does: Dagster's default SQLite storage, event by
event; the repo's ``dagster.yaml`` (``MedallionInstance``, ``resources/instance_storage.py``) event by event (what
a day run's events cost); and the repo's instance with the events handed over as one batch, as Dagster hands over
a range run's per-partition events. Rounds alternate the three; each figure is the median. A 365-day range run
writes about 2,200 such events (planned and materialized, per day and table).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, DagsterEventType, StepMaterializationData
from dagster._core.test_utils import create_run_for_test

from bench.common import REPO, Context, median, show, write_result

NAME = "instance_events"
ASSET = dg.AssetKey(["bench", "events"])


def ms_per_event(home: Path, events: int, *, batched: bool) -> float:
    """Write ``events`` materializations of one run into the instance in ``home``; milliseconds per event."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = create_run_for_test(instance, job_name="bench_events")
        started = time.perf_counter()
        for i in range(events):
            batch = DagsterEventBatchMetadata(f"bench-{run.run_id}", i == events - 1) if batched else None
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
                ),
                batch_metadata=batch,
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
    stock, medallion = "telemetry:\n  enabled: false\n", (REPO / "dagster.yaml").read_text()
    variants = {"stock": (stock, False), "medallion": (medallion, False), "medallion_batched": (medallion, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(sizes.instance_event_rounds):
        for name, (config, batched) in variants.items():
            home = base / f"{name}-{r}"
            home.mkdir(parents=True)
            (home / "dagster.yaml").write_text(config)
            times[name].append(round(ms_per_event(home, sizes.instance_events, batched=batched), 2))
    ms = {name: round(median(values), 2) for name, values in times.items()}
    result = {
        "scenario": NAME,
        "events": sizes.instance_events,
        "rounds": sizes.instance_event_rounds,
        "ms_per_event_all": times,
        "stock_sqlite_ms_per_event": ms["stock"],
        "instance_event_ms": ms["medallion"],
        "instance_batched_event_ms": ms["medallion_batched"],
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"h. instance events: {sizes.instance_events} materializations per round (median of {len(times['stock'])})",
        [
            ("Dagster's SQLite storage, one by one", f"{ms['stock']:.2f} ms an event"),
            ("medallion's instance, one by one", f"{ms['medallion']:.2f} ms an event"),
            ("medallion's instance, one batch", f"{ms['medallion_batched']:.2f} ms an event"),
        ],
    )
    return result

"""b. Incremental cost: the time of one new day once a year is loaded, divided by the time of day 1.

Both are single-partition runs of the full graph through Dagster, each in its own process. Days 2..N are first
loaded into one lakehouse with one range run; then each repeat runs day 1 on a fresh, empty lakehouse and a
further new day on the loaded one, back to back, so that the machine's drift hits both alike.
Ratio = median(new day) / median(day 1).
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from typing import Any

from bench import datagen
from bench.common import Context, median, run_worker, show, target, write_result

NAME = "incremental"
START = date(2024, 1, 1)


def _day(i: int) -> str:
    return (START + timedelta(days=i)).isoformat()


def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    days, repeats = sizes.incremental_days, sizes.incremental_repeats
    base = ctx.workdir / NAME
    shutil.rmtree(base, ignore_errors=True)
    landing = base / "landing"
    gen = datagen.generate(landing, days=days + repeats, orders_per_day=sizes.incremental_orders_per_day, start=START)

    def materialize(lakehouse: str, instance: str, first: str, last: str, label: str) -> dict[str, Any]:
        args = {"landing": str(landing), "lakehouse": lakehouse, "instance_dir": instance, "first": first, "last": last}
        result = run_worker("dagster", args, workdir=ctx.workdir, label=f"{NAME}-{label}")
        if not result["success"]:
            raise RuntimeError(f"{label} failed: {result}")
        print(f"  {label:14s} {first}..{last}  {result['seconds']:8.2f} s")
        return result

    lake, inst = str(base / "lakehouse-0"), str(base / "dagster-0")
    load = materialize(lake, inst, _day(0), _day(days - 1), "load-range")
    day1, new = [], []
    for r in range(repeats):
        fresh, fresh_inst = str(base / f"lakehouse-day1-{r}"), str(base / f"dagster-day1-{r}")
        day1.append(materialize(fresh, fresh_inst, _day(0), _day(0), f"day1-{r}"))
        new.append(materialize(lake, inst, _day(days + r), _day(days + r), f"new-day-{r}"))
    t_day1, t_new = median(r["seconds"] for r in day1), median(r["seconds"] for r in new)
    ratio = round(t_new / t_day1, 3)
    result = {
        "scenario": NAME,
        "data": {**gen.__dict__, "orders_per_day": sizes.incremental_orders_per_day},
        "loaded_days": days,
        "day1_seconds": [r["seconds"] for r in day1],
        "new_day_seconds": [r["seconds"] for r in new],
        "day1_breakdown": day1[0]["asset_seconds"],
        "new_day_breakdown": new[0]["asset_seconds"],
        "day1_steps": day1[0]["step_seconds"],
        "new_day_steps": new[0]["step_seconds"],
        "load_range_seconds": load["seconds"],
        "incremental_day365_vs_day1_ratio": ratio,
        "targets": {"incremental_day365_vs_day1_ratio": target(ratio, 1.1, "<=", "≤ 1.1")},
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"b. incremental: {days} days × {sizes.incremental_orders_per_day:,} orders loaded",
        [
            ("day 1 (median)", f"{t_day1:.2f} s"),
            (f"day {days + 1} (median)", f"{t_new:.2f} s"),
            ("ratio", f"{ratio:.2f}  (target ≤ 1.1)"),
            (f"range load of {days} days", f"{load['seconds']:.2f} s"),
        ],
    )
    return result

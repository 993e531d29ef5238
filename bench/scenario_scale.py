"""g. Scale: the throughput job (Dagster, one range run) and polars + deltalake at growing line counts.

Not part of the default run (the 20M-line step alone takes several minutes): ``python -m bench.run --only scale``.
Each size gets fresh data (30 days) and a fresh lakehouse; each contender runs once in its own process, so its
seconds and peak RSS are its own. The result shows which part grows fastest: each Dagster asset's seconds next to
polars' stages, and the seconds per million lines at each size.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from typing import Any

from bench import datagen
from bench.common import Context, run_worker, show, write_result

NAME = "scale"
START = date(2024, 1, 1)
DAYS = 30
LINES = (1_000_000, 5_000_000, 20_000_000)
QUICK_LINES = (50_000, 100_000, 200_000)


def run(ctx: Context) -> dict[str, Any]:
    base = ctx.workdir / NAME
    first, last = START.isoformat(), (START + timedelta(days=DAYS - 1)).isoformat()
    steps = []
    for lines in QUICK_LINES if ctx.quick else LINES:
        shutil.rmtree(base, ignore_errors=True)
        landing = base / "landing"
        gen = datagen.generate(landing, days=DAYS, total_lines=lines, start=START)
        step: dict[str, Any] = {"lines": gen.lines, "bytes": gen.bytes}
        for name in ("dagster", "polars"):
            args: dict[str, Any] = {"landing": str(landing), "lakehouse": str(base / f"lake-{name}"), "first": first}
            args["last"] = last
            if name == "dagster":
                args["instance_dir"] = str(base / "dagster")
            result = run_worker(name, args, workdir=ctx.workdir, label=f"{NAME}-{lines}-{name}")
            if not result.get("success"):
                raise RuntimeError(f"{name} at {lines:,} lines did not succeed: {result}")
            step[name] = {
                "seconds": result["seconds"],
                "seconds_per_million_lines": round(result["seconds"] / (gen.lines / 1e6), 2),
                "peak_rss_mb": result["peak_rss_mb"],
                "breakdown": result.get("asset_seconds") or result.get("stage_seconds"),
            }
            print(
                f"  {lines:>11,} lines {name:8s} {result['seconds']:8.2f} s  peak RSS {result['peak_rss_mb']:.0f} MiB"
            )
        step["dagster_vs_polars_ratio"] = round(step["dagster"]["seconds"] / step["polars"]["seconds"], 3)
        steps.append(step)
    shutil.rmtree(base, ignore_errors=True)
    result = {"scenario": NAME, "days": DAYS, "steps": steps}
    write_result(ctx.results_dir, NAME, result)
    show(
        "g. scale: Dagster range run vs polars + deltalake",
        [
            (
                f"{s['lines']:,} lines",
                f"dagster {s['dagster']['seconds']:.1f} s / {s['dagster']['peak_rss_mb']:.0f} MiB, "
                f"polars {s['polars']['seconds']:.1f} s / {s['polars']['peak_rss_mb']:.0f} MiB, "
                f"ratio {s['dagster_vs_polars_ratio']:.2f}",
            )
            for s in steps
        ],
    )
    return result

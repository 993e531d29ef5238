"""a. Throughput: N order versions over D days, one single-run range materialization of the full graph through
Dagster, versus a bare Sail script (no Dagster, no checks) and polars + deltalake doing the same job.

Each contender runs in its own process on a fresh lakehouse; with several rounds they are interleaved
(D, S, P, D, S, P, …) and each contender's fastest round is its figure, so machine noise hits all alike.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from typing import Any

from bench import datagen
from bench.common import Context, rate, run_worker, show, target, write_result

NAME = "throughput"
CONTENDERS = ("dagster", "bare_sail", "polars")
START = date(2024, 1, 1)


def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    base = ctx.workdir / NAME
    landing = base / "landing"
    shutil.rmtree(base, ignore_errors=True)
    t0 = time.perf_counter()
    gen = datagen.generate(landing, days=sizes.throughput_days, total_lines=sizes.throughput_versions, start=START)
    gen_seconds = time.perf_counter() - t0
    first, last = START.isoformat(), (START + timedelta(days=sizes.throughput_days - 1)).isoformat()
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    for r in range(sizes.throughput_rounds):
        for name in CONTENDERS:
            lakehouse = base / f"lakehouse-{name}-{r}"
            args: dict[str, Any] = {"landing": str(landing), "lakehouse": str(lakehouse), "first": first, "last": last}
            if name == "dagster":
                args["instance_dir"] = str(base / f"dagster-{r}")
            result = run_worker(name, args, workdir=ctx.workdir, label=f"{NAME}-{name}-{r}")
            if not result.get("success"):
                raise RuntimeError(f"{name} round {r} did not succeed: {result}")
            samples[name].append(result)
            print(f"  round {r} {name:9s} {result['seconds']:8.2f} s  peak RSS {result['peak_rss_mb']:.0f} MiB")
            shutil.rmtree(lakehouse, ignore_errors=True)
    best = {name: min(samples[name], key=lambda s: s["seconds"]) for name in CONTENDERS}
    seconds = {name: best[name]["seconds"] for name in CONTENDERS}
    contenders = {
        name: {
            "seconds": seconds[name],
            "seconds_all_rounds": [s["seconds"] for s in samples[name]],
            "rows_per_second": rate(gen.lines, seconds[name]),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in samples[name]),
            "process_seconds": best[name]["process_seconds"],
            "breakdown": best[name].get("asset_seconds") or best[name].get("stage_seconds"),
            **({"step_seconds": best[name]["step_seconds"]} if "step_seconds" in best[name] else {}),
        }
        for name in CONTENDERS
    }
    vs_bare = round(seconds["dagster"] / seconds["bare_sail"], 3)
    vs_polars = round(seconds["dagster"] / seconds["polars"], 3)
    bronze = {
        "dagster": best["dagster"]["asset_seconds"]["bronze/orders"],
        "polars": best["polars"]["stage_seconds"]["bronze"],
    }
    bronze_vs_polars = round(bronze["dagster"] / bronze["polars"], 3)
    result = {
        "scenario": NAME,
        "data": {**gen.__dict__, "generate_seconds": round(gen_seconds, 2), "first": first, "last": last},
        "rounds": sizes.throughput_rounds,
        "contenders": contenders,
        "dagster_vs_bare_sail_ratio": vs_bare,
        "dagster_vs_polars_ratio": vs_polars,
        "bronze_seconds": bronze,
        "bronze_vs_polars_ratio": bronze_vs_polars,
        "throughput_rows_per_second": contenders["dagster"]["rows_per_second"],
        "peak_rss_mb": contenders["dagster"]["peak_rss_mb"],
        "targets": {
            "dagster_vs_bare_sail_ratio": target(vs_bare, 1.1, "<=", "≤ 1.1"),
            "dagster_vs_polars_ratio": target(vs_polars, 1.5, "<=", "≤ 1.5 (aim: < 1)"),
            "bronze_vs_polars_ratio": target(bronze_vs_polars, 1.5, "<=", "≤ 1.5"),
            "peak_rss_mb": target(contenders["dagster"]["peak_rss_mb"], 2_500, "<=", "≤ 2,500 MiB"),
        },
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"a. throughput: {gen.lines:,} order versions, {sizes.throughput_days} days, {gen.files} files",
        [
            *(
                (
                    name,
                    f"{c['seconds']:.2f} s  {c['rows_per_second']:,.0f} rows/s  peak RSS {c['peak_rss_mb']:.0f} MiB",
                )
                for name, c in contenders.items()
            ),
            ("dagster / bare sail", f"{vs_bare:.2f}  (target ≤ 1.1)"),
            ("dagster / polars", f"{vs_polars:.2f}  (target ≤ 1.5)"),
            (
                "bronze: dagster / polars",
                f"{bronze_vs_polars:.2f}  ({bronze['dagster']:.1f} s ÷ {bronze['polars']:.1f} s; target ≤ 1.5)",
            ),
        ],
    )
    return result

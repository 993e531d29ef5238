"""d. Engine start: embedded Sail (server start + Connect session + first query) versus classic JVM Spark
``local[2]`` (session + first query). Each start is a fresh process; the JVM child gets no Connect variables.
"""

from __future__ import annotations

from typing import Any

from bench.common import Context, child_env, median, run_worker, show, write_result

NAME = "engine_start"


def run(ctx: Context) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {"sail": [], "jvm": []}
    for r in range(ctx.sizes.start_repeats):
        for engine in samples:
            result = run_worker(
                f"{engine}_start", {}, workdir=ctx.workdir, label=f"{NAME}-{engine}-{r}", env=child_env()
            )
            samples[engine].append(result)
    figures = {
        engine: {
            "start_seconds": round(median(s["start_seconds"] for s in runs), 3),
            "start_seconds_all": [s["start_seconds"] for s in runs],
            "import_seconds": round(median(s["import_seconds"] for s in runs), 3),
            "first_query_seconds": round(median(s["first_query_seconds"] for s in runs), 3),
            "process_seconds": round(median(s["process_seconds"] for s in runs), 3),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in runs),
        }
        for engine, runs in samples.items()
    }
    result = {
        "scenario": NAME,
        "repeats": ctx.sizes.start_repeats,
        "engines": figures,
        "jvm_session_class": samples["jvm"][0].get("session_class"),
        "sail_start_seconds": figures["sail"]["start_seconds"],
        "jvm_spark_start_seconds": figures["jvm"]["start_seconds"],
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        "d. engine start (median; imports apart)",
        [
            (
                engine,
                f"start + first query {f['start_seconds']:.2f} s (import {f['import_seconds']:.2f} s, "
                f"whole process {f['process_seconds']:.2f} s, peak RSS {f['peak_rss_mb']:.0f} MiB)",
            )
            for engine, f in figures.items()
        ],
    )
    return result

"""Run every benchmark scenario in one invocation and write ``bench/results/`` (``summary.json`` included).

    python -m bench.run            # full sizes (make bench); 10-20 min on 2 cores
    python -m bench.run --quick    # small sizes, a smoke run; results under bench/results/quick/
    python -m bench.run --only throughput,engine_start
    python -m bench.run --only scale   # 1, 5 and 20 million lines (not in the default run)

Scenarios: a. throughput, b. incremental, c. backfill, d. engine_start, e. sensor_scan, f. latency, g. scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import (
    scenario_backfill,
    scenario_engine_start,
    scenario_incremental,
    scenario_instance_events,
    scenario_latency,
    scenario_scale,
    scenario_sensor_scan,
    scenario_throughput,
)
from bench.common import QUICK, RESULTS, Context, Sizes, git_state, machine, sizes_dict, write_result

SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "throughput": scenario_throughput.run,
    "incremental": scenario_incremental.run,
    "backfill": scenario_backfill.run,
    "engine_start": scenario_engine_start.run,
    "sensor_scan": scenario_sensor_scan.run,
    "instance_events": scenario_instance_events.run,
    "latency": scenario_latency.run,
    "scale": scenario_scale.run,
}
#: What a plain ``make bench`` runs (scale takes long; ``--only scale`` runs it).
DEFAULT = [name for name in SCENARIOS if name != "scale"]
#: summary key → (scenario, key in that scenario's result)
SUMMARY = {
    "dagster_vs_bare_sail_ratio": ("throughput", "dagster_vs_bare_sail_ratio"),
    "dagster_vs_polars_ratio": ("throughput", "dagster_vs_polars_ratio"),
    "bronze_vs_polars_ratio": ("throughput", "bronze_vs_polars_ratio"),
    "incremental_day365_vs_day1_ratio": ("incremental", "incremental_day365_vs_day1_ratio"),
    "backfill_365_days_seconds": ("backfill", "backfill_365_days_seconds"),
    "backfill_365_days_postgres_seconds": ("backfill", "backfill_365_days_postgres_seconds"),
    "daemon_backfill_365_days_seconds": ("backfill", "daemon_backfill_365_days_seconds"),
    "small_day_run_seconds": ("latency", "small_day_run_seconds"),
    "file_to_gold_seconds": ("latency", "file_to_gold_seconds"),
    "sail_start_seconds": ("engine_start", "sail_start_seconds"),
    "jvm_spark_start_seconds": ("engine_start", "jvm_spark_start_seconds"),
    "sensor_scan_10k_files_seconds": ("sensor_scan", "sensor_scan_10k_files_seconds"),
    "instance_event_ms": ("instance_events", "instance_event_ms"),
    "instance_batched_event_ms": ("instance_events", "instance_batched_event_ms"),
    "stock_sqlite_instance_event_ms": ("instance_events", "stock_sqlite_ms_per_event"),
    "throughput_rows_per_second": ("throughput", "throughput_rows_per_second"),
    "peak_rss_mb": ("throughput", "peak_rss_mb"),
}


def summary(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Exactly the summary keys; None where the scenario has no result."""
    return {key: results.get(scenario, {}).get(field) for key, (scenario, field) in SUMMARY.items()}


def earlier(results_dir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Results of scenarios not run now, from an earlier invocation's files (``--only`` keeps the rest)."""
    found = {}
    for name in names:
        path = results_dir / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", default=",".join(DEFAULT), help="comma-separated scenarios to run")
    parser.add_argument("--workdir", help="where data and lakehouses go (default: a temp dir, removed after)")
    parser.add_argument("--results", help="results directory (default bench/results, or bench/results/quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--rounds", type=int, help="throughput rounds (interleaved; fastest counts)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    # Deployment overrides (thresholds, roots, engine) must not leak into the figures or the services.
    for key in [k for k in os.environ if k.startswith("MEDALLION_")]:
        del os.environ[key]
    # Python's default bytecode cache, as on a user's machine (a sandbox may switch it off for every process).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sizes = QUICK if args.quick else Sizes()
    if args.rounds:
        sizes = replace(sizes, throughput_rounds=args.rounds)
    results_dir = Path(args.results) if args.results else (RESULTS / "quick" if args.quick else RESULTS)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="medallion-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(workdir=workdir, results_dir=results_dir, sizes=sizes, quick=args.quick)
    info = {
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "git": git_state(),
        "sizes": sizes_dict(sizes),
        "workdir": str(workdir),
        "scenarios": {},
    }
    print(f"medallion bench: {', '.join(chosen)} ({'quick' if args.quick else 'full'}) in {workdir}")
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    try:
        for name in chosen:
            started = time.perf_counter()
            try:
                results[name] = SCENARIOS[name](ctx)
                info["scenarios"][name] = {"seconds": round(time.perf_counter() - started, 1), "ok": True}
            except Exception as exc:  # one broken scenario must not lose the others' figures
                traceback.print_exc()
                failed.append(name)
                info["scenarios"][name] = {"seconds": round(time.perf_counter() - started, 1), "error": repr(exc)}
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    reused = earlier(results_dir, [n for n in SCENARIOS if n not in chosen])
    info["reused_from_earlier_run"] = sorted(reused)
    results = {**reused, **results}
    write_result(results_dir, "summary", summary(results))
    write_result(results_dir, "run", info)
    print(f"\nsummary → {results_dir / 'summary.json'}")
    for key, value in summary(results).items():
        print(f"  {key:34s} {value}")
    if failed:
        print(f"FAILED scenarios: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

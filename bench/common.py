"""Shared helpers: sizes, result files, child processes with their own peak RSS, small statistics."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
#: Variables that would make a child start a Spark Connect (or remote) session instead of what it asks for.
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "MASTER")


@dataclass(frozen=True)
class Sizes:
    """Data sizes and repeats of every scenario."""

    throughput_versions: int = 5_000_000
    throughput_days: int = 30
    throughput_rounds: int = 1
    incremental_days: int = 365
    incremental_orders_per_day: int = 2_000
    incremental_repeats: int = 5
    backfill_days: int = 365
    backfill_orders_per_day: int = 1_000
    start_repeats: int = 3
    sensor_files: int = 10_000
    sensor_files_per_day: int = 25
    sensor_repeats: int = 5
    instance_events: int = 300
    instance_event_rounds: int = 3


QUICK = Sizes(
    throughput_versions=100_000,
    throughput_days=5,
    throughput_rounds=1,
    incremental_days=10,
    incremental_orders_per_day=300,
    incremental_repeats=1,
    backfill_days=10,
    backfill_orders_per_day=200,
    start_repeats=1,
    sensor_files=1_000,
    sensor_files_per_day=25,
    sensor_repeats=3,
    instance_events=50,
    instance_event_rounds=2,
)


def sizes_dict(sizes: Sizes) -> dict[str, int]:
    return asdict(sizes)


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a benchmark child: no Connect switches, no medallion overrides, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV and not k.startswith("MEDALLION_")}
    env.update(overrides)
    return env


def run_worker(
    job: str,
    args: Mapping[str, Any],
    *,
    workdir: Path,
    label: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 3_600,
) -> dict[str, Any]:
    """Run ``bench.worker JOB`` in its own process; return its result plus the process's wall time.

    The child reports its own peak RSS (``ru_maxrss`` of itself and its children), so each contender is
    measured alone however many ran before it.
    """
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = logs / f"{label}.json"
    log = logs / f"{label}.log"
    cmd = [sys.executable, "-m", "bench.worker", job, "--args", json.dumps(dict(args)), "--out", str(out)]
    started = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run(
            cmd, cwd=REPO, env=dict(env or child_env()), stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
        )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"worker {job} ({label}) exited {proc.returncode}; log {log}:\n{tail}")
    result = json.loads(out.read_text())
    result["process_seconds"] = round(wall, 3)
    return result


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil comes with the bench extra
        pass
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def git_state() -> dict[str, Any]:
    """The commit measured and the tracked files changed on top of it (the working tree is what runs)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.rstrip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified": git("status", "--short", "--untracked-files=no").splitlines(),
    }


def write_result(results_dir: Path, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``<results_dir>/<name>.json`` (atomically) and return its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(data), indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def show(title: str, rows: Sequence[tuple[str, Any]]) -> None:
    """Print a scenario's figures as aligned ``name  value`` lines."""
    print(f"\n== {title}")
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()


@dataclass(frozen=True)
class Context:
    """Where a scenario works and writes, and how big it runs."""

    workdir: Path
    results_dir: Path
    sizes: Sizes
    quick: bool


def target(value: float | None, limit: float, op: str, text: str) -> dict[str, Any]:
    """A figure next to its target: ``op`` is ``<=``, ``<`` or ``>=``."""
    checks = {"<=": lambda v: v <= limit, "<": lambda v: v < limit, ">=": lambda v: v >= limit}
    return {"value": value, "target": text, "met": None if value is None else bool(checks[op](value))}

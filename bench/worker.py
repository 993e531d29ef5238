"""One benchmark job in its own process: ``python -m bench.worker JOB --args JSON --out FILE``.

The result JSON gets the job's peak RSS (its own ``VmHWM`` plus its live children's, e.g. the JVM), so each
contender's memory is measured alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

#: job name → "module:function"; each function takes keyword arguments and returns a JSON-able dict.
JOBS = {
    "dagster": "bench.contender_dagster:run",
    "bare_sail": "bench.contender_sail:run",
    "polars": "bench.contender_polars:run",
    "sail_start": "bench.engine_start:sail",
    "jvm_start": "bench.engine_start:jvm",
}


def vm_hwm_kib(pid: int | str = "self") -> int:
    """A process's own peak RSS (``VmHWM``): unlike ``ru_maxrss`` it does not inherit the parent's across exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_rss_mb() -> dict[str, float]:
    """Peak RSS in MiB: this process's own ``VmHWM`` plus that of its live descendants (e.g. the JVM).

    ``ru_maxrss`` is not used: Linux keeps the pre-exec (and pre-fork) high-water mark, so this process would
    report at least its parent's size and any short-lived forked child at least this process's size.
    """
    own = vm_hwm_kib()
    try:
        import psutil

        live = sum(vm_hwm_kib(c.pid) for c in psutil.Process().children(recursive=True))
    except ImportError:  # pragma: no cover - psutil comes with the bench extra
        live = 0
    return {
        "peak_rss_mb": round((own + live) / 1024, 1),
        "own_peak_rss_mb": round(own / 1024, 1),
        "children_peak_rss_mb": round(live / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--args", default="{}")
    parser.add_argument("--out", required=True)
    ns = parser.parse_args(argv)
    module, func = JOBS[ns.job].split(":")
    result: dict[str, Any] = getattr(importlib.import_module(module), func)(**json.loads(ns.args))
    result.update(peak_rss_mb())
    Path(ns.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str)[:2000])
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Profile one benchmark job with pyinstrument: ``python -m bench.profile JOB --args JSON [--out DIR]``.

Writes ``<out>/<label>.txt`` (call tree; time in Spark actions shows as the waiting PySpark call),
``<label>.flat.txt`` (every function with its total time), ``<label>.html`` and ``<label>.pyisession``
(reload with ``pyinstrument --load``). Jobs are those of ``bench.worker``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from pyinstrument import Profiler

from bench.common import RESULTS
from bench.worker import JOBS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--args", default="{}")
    parser.add_argument("--out", default=str(RESULTS / "profiles"))
    parser.add_argument("--label", help="file name stem (default: the job)")
    parser.add_argument("--interval", type=float, default=0.005, help="sampling interval in seconds")
    ns = parser.parse_args(argv)
    module, func = JOBS[ns.job].split(":")
    target = getattr(importlib.import_module(module), func)
    profiler = Profiler(interval=ns.interval, async_mode="disabled")
    profiler.start()
    result = target(**json.loads(ns.args))
    profiler.stop()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = ns.label or ns.job
    (out / f"{stem}.txt").write_text(profiler.output_text(unicode=True, show_all=False, timeline=False))
    (out / f"{stem}.flat.txt").write_text(
        profiler.output_text(unicode=True, show_all=True, flat=True, flat_time="total")
    )
    (out / f"{stem}.html").write_text(profiler.output_html())
    if profiler.last_session is not None:
        profiler.last_session.save(str(out / f"{stem}.pyisession"))
    print(json.dumps(result, default=str)[:2000])
    print(f"profile → {out / stem}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

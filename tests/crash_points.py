"""Run the Dagster CLI and SIGKILL it at a chosen point of the pipeline (test harness only, never imported by
the project): ``python -m tests.crash_points <point> <dagster CLI arguments...>``.

Points: ``after_commit:<table>`` (the table's Delta commit landed, nothing after it ran),
``before_commit:<table>`` (the rows are computed, the commit has not started), ``staged`` (silver's scratch
Parquet is written), ``merge:<table>`` (during the MERGE, right after it committed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from resources.delta_store import DeltaTableStore


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    kind, _, table = point.partition(":")
    if kind == "staged":
        original_staged = DeltaTableStore.staged

        @contextlib.contextmanager
        def staged(self, df, *, name):
            with original_staged(self, df, name=name) as frame:
                _die()
                yield frame  # pragma: no cover - the process is gone

        DeltaTableStore.staged = staged  # type: ignore[method-assign]
        return
    for verb in ("replace_partitions", "overwrite", "merge"):
        original = getattr(DeltaTableStore, verb)

        def wrapped(self, name, *args, _original=original, **kwargs):
            if name == table and kind == "before_commit":
                _die()
            result = _original(self, name, *args, **kwargs)
            if name == table and kind in ("after_commit", "merge"):
                _die()
            return result

        setattr(DeltaTableStore, verb, wrapped)


def main() -> None:
    point, *cli = sys.argv[1:]
    install(point)
    from dagster._cli import main as dagster_main

    sys.argv = ["dagster", *cli]
    dagster_main()


if __name__ == "__main__":
    main()

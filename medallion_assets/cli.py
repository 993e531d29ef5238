"""``medallion``: the command line for the common cases, where Dagster's CLI is clumsy.

    medallion run --day 2024-01-02                 # every table, one day, one run
    medallion run --from 2024-01-01 --to 2024-01-07
    medallion run --day 2024-01-02 --select 'bronze/orders,silver/orders'
    medallion status                               # rows, quarantined rows and Delta version per table

A run covers every selected table in one Dagster run in lineage order — customers before the orders fact that
looks them up, a whole range in one engine pass — recorded in the instance at ``DAGSTER_HOME`` (so it shows in
the UI), with one progress line per step and a one-line error for a day outside the partitions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date

from resources.errors import MedallionError
from resources.partition_keys import day_blocks, parse_day

EXIT_USAGE = 2
#: The run finished, but quality gates or publish guards refused days (each printed with why; published versions
#: are kept, the other days published).
EXIT_REFUSED = 3
#: Refused table days printed at most (the run log holds them all).
SHOWN_REFUSALS = 20
INVOCATION_TAG = "medallion/cli_invocation"


class UsageError(MedallionError):
    """A command-line argument the run cannot use (printed as one line)."""


def main(argv: Sequence[str] | None = None) -> int:
    """The ``medallion`` console script: run the command, return the exit code for the process to exit with."""
    os.environ.setdefault("RUST_LOG", "warn")  # the embedded engine's start-up chatter
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except (UsageError, MedallionError) as exc:
        print(f"medallion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        # The process exits next. Without this, the interpreter's last collections walk every object Dagster,
        # pyspark and pandas loaded: 1.7-1.8 s after a day's run here, 0.75 s after `import dagster` alone.
        gc.freeze()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medallion", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="command")
    run = commands.add_parser("run", help="materialize the tables for a day or a range of days, in one run")
    when = run.add_mutually_exclusive_group(required=True)
    when.add_argument("--day", type=str, help="one day, YYYY-MM-DD")
    when.add_argument("--from", dest="first", type=str, help="the first day of a range, YYYY-MM-DD (with --to)")
    run.add_argument("--to", dest="last", type=str, help="the last day of the range, YYYY-MM-DD")
    run.add_argument("--select", default="*", help="a Dagster asset selection (default '*': every table)")
    run.add_argument(
        "--allow-shrink",
        action="store_true",
        help="let this run replace a published day with an empty or much smaller one (tag medallion/allow_shrink)",
    )
    run.set_defaults(command=_run)
    status = commands.add_parser("status", help="rows, quarantined rows and Delta version of every table")
    status.set_defaults(command=_status)
    return parser


@contextlib.contextmanager
def _loading() -> Iterator[None]:
    """The command's imports (Dagster, pyspark, pandas, the definitions) with the cyclic garbage collector paused,
    then their objects frozen out of later collections: the collector would otherwise walk the millions of objects
    they allocate again and again while they load, and during the run after."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def days_of(first: str, last: str | None) -> tuple[date, date]:
    """The run's first and last day, validated against the daily partitions (one-line errors)."""
    from medallion_assets.partitions import DAILY, SETTINGS

    start, end = parse_day(first), parse_day(last or first)
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    lowest, highest = parse_day(DAILY.get_first_partition_key()), parse_day(DAILY.get_last_partition_key())
    if start < lowest:
        raise UsageError(
            f"{start} is before the first daily partition {lowest}: set MEDALLION_START_DATE (now "
            f"{SETTINGS.start_date}) to {start} or earlier to build older days"
        )
    if end > highest:
        raise UsageError(f"{end} is after the last daily partition {highest} (today, UTC)")
    return start, end


def _run(args: argparse.Namespace) -> int:
    if args.first and not args.last:
        raise UsageError("--from needs --to")
    with _loading():
        start, end = days_of(args.day or args.first, args.last)

        from medallion_assets.definitions import ASSETS, CHECKS, defs
        from medallion_assets.quiet import chosen_dagster_apis

        instance = _instance()
    print(f"medallion: {args.select} for {_span(start, end)} ({_where(instance)})")
    extra = {"medallion/allow_shrink": "true"} if args.allow_shrink else {}
    run = _Materialize(instance, defs, [*ASSETS, *CHECKS], chosen_dagster_apis)
    result, seconds = run(_executable(args.select, defs), start, end, extra)
    for entry in _unread_files(result):
        print(f"medallion: not read: {entry['file']} {entry['reason']}", file=sys.stderr)
    code = _outcome(result, seconds, _report_refusals(defs.resources["store"], result.run_id))
    return _worse(code, _rekey(run, result, extra))


def _outcome(result, seconds: float, refused: list[dict]) -> int:
    """Print how ``result``'s run ended; its exit code."""
    if result.success and not refused:
        print(f"medallion: run {result.run_id} succeeded in {seconds:.1f} s")
        return 0
    if result.success:
        print(f"medallion: run {result.run_id} finished in {seconds:.1f} s with the refused days above")
        return EXIT_REFUSED
    print(f"medallion: run {result.run_id} failed after {seconds:.1f} s: {_failure(result)}", file=sys.stderr)
    return 1


def _worse(a: int, b: int) -> int:
    """The exit code that says more is wrong: a failure (1) over refused days (3) over success (0)."""
    return max(a, b, key=[0, EXIT_REFUSED, 1].index)


def _span(start: date | str, end: date | str) -> str:
    return f"{start}" + (f"..{end}" if end != start else "")


class _Materialize:
    """One Dagster run of ``selection`` over a day range, recorded in the instance, one progress line per step."""

    def __init__(self, instance, defs, assets, apis) -> None:
        self.instance, self.defs, self.assets, self.apis = instance, defs, assets, apis

    def __call__(self, selection, start, end, extra_tags: dict[str, str]):
        import dagster as dg

        invocation = uuid.uuid4().hex
        tags = {
            "dagster/asset_partition_range_start": str(start),
            "dagster/asset_partition_range_end": str(end),
            INVOCATION_TAG: invocation,
            **extra_tags,
        }
        progress = Progress(self.instance, invocation)
        progress.start()
        started = time.perf_counter()
        try:
            with self.apis():
                result = dg.materialize(
                    self.assets,
                    instance=self.instance,
                    resources=self.defs.resources,
                    selection=selection,
                    tags=tags,
                    raise_on_error=False,
                    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
                )
        finally:
            progress.stop()
        return result, time.perf_counter() - started


def _rekey(run: _Materialize, result, extra: dict[str, str]) -> int:
    """Rebuild the fact days the run's dimension write left keyed to other customer versions, one run per block
    of consecutive days; print each, and each day left as it is with why; the exit code."""
    import dagster as dg

    from medallion_assets.partitions import SETTINGS
    from medallion_assets.rekey import REKEY_AFTER, TABLES, days_to_rekey, within_partitions

    inside, outside = within_partitions(days_to_rekey(result.all_events))
    code = 0
    if outside:
        print(
            f"medallion: gold/fact_orders {', '.join(outside)} keep(s) keys of older customer versions: before the "
            f"first daily partition (MEDALLION_START_DATE={SETTINGS.start_date}); set it to {outside[0]} or earlier "
            "and run those days with --select gold/fact_orders",
            file=sys.stderr,
        )
        code = EXIT_REFUSED
    selection = [dg.AssetKey(table.split("/")) for table in TABLES]
    for first, last in day_blocks(inside):
        print(f"medallion: re-keying gold/fact_orders for {_span(first, last)}: customers changed since it was built")
        again, seconds = run(selection, first, last, {**extra, REKEY_AFTER: result.run_id})
        done = _outcome(again, seconds, _report_refusals(run.defs.resources["store"], again.run_id))
        if done:
            print(
                f"medallion: gold/fact_orders {_span(first, last)} keeps keys of older customer versions: once the "
                f"above is fixed, run `medallion run --from {first} --to {last} --select gold/fact_orders`",
                file=sys.stderr,
            )
        code = _worse(code, done)
    return code


def _unread_files(result) -> list[dict[str, str]]:
    """The landing entries the run's bronze steps did not read (``skipped_files``), each once."""
    seen: dict[str, dict[str, str]] = {}
    for event in result.get_asset_materialization_events():
        entry = event.materialization.metadata.get("skipped_files")
        for item in entry.value if entry is not None else []:
            seen.setdefault(item["file"], item)
    return list(seen.values())


def _report_refusals(store, run_id: str) -> list[dict]:
    """Print the table days the run refused, with the first line of why; return them all."""
    from medallion_assets import run_log

    refused = sorted(run_log.refused_in_run(store, run_id), key=lambda r: (r["asset"], r["partition"]))
    if refused:
        print(f"medallion: {len(refused)} table day(s) refused; their published versions are kept:", file=sys.stderr)
    for r in refused[:SHOWN_REFUSALS]:
        why = (r["error_message"] or "refused").strip().splitlines()[0][:300]
        print(f"  {r['asset']} {r['partition']}: {why}", file=sys.stderr)
    if len(refused) > SHOWN_REFUSALS:
        print(f"  … and {len(refused) - SHOWN_REFUSALS} more (monitoring/pipeline_runs)", file=sys.stderr)
    return refused


def _executable(select: str, defs) -> list:
    """The tables ``select`` names that a run can build (the run log is written by the others, not built).

    ``select`` is Dagster's selection syntax or, as Dagster's own CLI takes it, a comma list of selections.
    """
    import dagster as dg
    from dagster._core.errors import DagsterError

    from medallion_assets.quiet import chosen_dagster_apis

    graph = defs.resolve_asset_graph()
    parts = [select] if "," not in select else [part.strip() for part in select.split(",")]
    try:
        if not all(parts):
            raise UsageError(f"--select {select!r} has an empty item")
        with chosen_dagster_apis():  # '*' parses to AssetSelection.all(include_sources=…), a beta parameter
            keys = set().union(*(dg.AssetSelection.from_coercible(part).resolve(graph) for part in parts))
    except DagsterError as exc:
        raise UsageError(f"--select {select!r}: {str(exc).splitlines()[0]}") from None
    chosen = sorted(k for k in keys if graph.get(k).is_executable)
    if not chosen:
        raise UsageError(f"--select {select!r} names no table")
    return chosen


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if home:
        os.makedirs(home, exist_ok=True)
        return dg.DagsterInstance.get()
    print("medallion: DAGSTER_HOME is not set: this run is not recorded (make dev uses ./.dagster_home)")
    return dg.DagsterInstance.ephemeral()


def _where(instance) -> str:
    home = os.environ.get("DAGSTER_HOME")
    return f"recorded in {home}" if home and not instance.is_ephemeral else "not recorded"


def _failure(result) -> str:
    """The first failed step and its error's message: medallion's own (a ``Failure``), else the innermost; with no
    failed step, the run's first error (a resource that failed to start)."""
    failed = [e for e in result.all_events if e.is_step_failure and e.event_specific_data.error]
    errors = [e for e in result.all_events if getattr(e.event_specific_data, "error", None)]
    for event in failed[:1] or errors[:1]:
        error = event.event_specific_data.error
        while error.cause is not None and error.cls_name != "Failure":
            error = error.cause
        where = event.step_key or event.event_type_value
        if error.cls_name == "Failure":  # its message starts with the class's dotted path
            return f"{where}: {error.message.split(': ', 1)[-1].strip().splitlines()[0]}"
        return f"{where}: {error.message.strip().splitlines()[0]}"
    return "see the run's log in the UI"


class Progress:
    """Prints one line per finished step of this invocation's run, polling the instance's event log."""

    def __init__(self, instance, invocation: str, interval: float = 0.5) -> None:
        self._instance = instance
        self._invocation = invocation
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cursor: str | None = None
        self._run_id: str | None = None
        self._started = time.perf_counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._report()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._report()

    def _report(self) -> None:
        import dagster as dg

        if self._run_id is None:
            runs = self._instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: self._invocation}), limit=1)
            if not runs:
                return
            self._run_id = runs[0].run_id
        ended = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
        page = self._instance.get_records_for_run(self._run_id, cursor=self._cursor, of_type=ended)
        self._cursor = page.cursor
        for record in page.records:
            event = record.event_log_entry.dagster_event
            mark = "ok" if event.event_type == dg.DagsterEventType.STEP_SUCCESS else "FAILED"
            elapsed = time.perf_counter() - self._started
            print(f"  {mark:<6} {event.step_key.replace('__', '/'):<40} {elapsed:6.1f} s", flush=True)


def _status(args: argparse.Namespace) -> int:
    from medallion_assets import summary

    return summary.main()


if __name__ == "__main__":
    raise SystemExit(main())

"""The gated tables as a Dagster Pipes job: ``python -m medallion_assets.pipes_job`` (the local subprocess), or
this file as a Databricks ``spark_python_task`` run with ``--transport dbfs`` (job or existing cluster) or
``--transport volumes`` (serverless).

It opens Dagster Pipes, reads which tables and days to build (the extras ``tables`` and ``partition_key_range``,
else Pipes' own partition range), builds its resources — the engine (Sail or ``MEDALLION_ENGINE`` locally, the
cluster's ``SparkSession`` on Databricks), the store, the landing zone and the settings (from the extras, else the
``MEDALLION_*`` variables) — and runs ``factory.publish`` for each table through a ``factory.PipesStep``, which
reports the results back. A refusal (no day could be published) is reported for the Dagster side to raise.

Without Dagster (the bundle's job, or by hand) ``--tables`` and ``--from``/``--to`` say what to build; what
would go to Dagster is printed as JSON lines, and a refusal exits with status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as an uploaded file: its own folder (``pipes.py``, ``jobs.py``, …) must not shadow installed modules.
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != Path(__file__).resolve().parent]

import argparse
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT,
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    PipesCliArgsParamsLoader,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesEnvVarParamsLoader,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)
from pyspark.sql import SparkSession

from medallion_assets import pipes_wire
from medallion_assets.factory import PipesStep, Run, TableSpec, publish
from medallion_assets.maintenance import LOG_TABLE, maintain_tables, maintainer
from medallion_assets.specs import BY_TABLE
from resources.delta_store import DeltaTableStore
from resources.engine import SparkEngine
from resources.landing import LandingZone
from resources.partition_keys import day_range
from resources.settings import Settings

TRANSPORTS = ("local", "dbfs", "volumes")
log = logging.getLogger("medallion.pipes_job")


@dataclass(frozen=True)
class Request:
    """What one job run builds, and with which settings."""

    tables: list[str]
    days: list[str] | None
    tags: Mapping[str, str]
    settings: Settings

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], pipes_range: Mapping[str, str] | None) -> Request:
        """The request the Dagster side sent; the days from its extra, else from Pipes' partition range."""
        unknown = [t for t in extras.get("tables", []) if t not in BY_TABLE]
        if unknown or not extras.get("tables"):
            raise ValueError(f"unknown or no tables {unknown or extras.get('tables')!r}; known: {sorted(BY_TABLE)}")
        span = extras.get("partition_key_range") or pipes_range
        base = Settings(**extras["settings"]) if extras.get("settings") else Settings.from_env()
        roots = {k: extras[k] for k in ("lakehouse_root", "landing_root") if extras.get(k)}
        return cls(
            tables=list(extras["tables"]),
            days=[d.isoformat() for d in day_range(span["start"], span["end"])] if span else None,
            tags=dict(extras.get("run_tags") or {}),
            settings=base.model_copy(update=roots),
        )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """This job's options; Pipes' own ``--dagster-pipes-*`` arguments (existing cluster, serverless) pass through."""
    parser = argparse.ArgumentParser(prog="medallion_assets.pipes_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORTS, default="local")
    parser.add_argument("--tables", help="without Dagster: comma-separated tables, in lineage order")
    parser.add_argument("--from", dest="first", help="without Dagster: the first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="last", help="without Dagster: the last day (default: --from)")
    parser.add_argument(
        "--maintenance", action="store_true", help="without Dagster: vacuum and compact every table instead"
    )
    return parser.parse_known_args(argv)[0]


def pipes_io(transport: str, argv: Sequence[str]) -> dict[str, Any]:
    """``open_dagster_pipes`` arguments: where the context is read and the messages written. An existing cluster
    and serverless get Pipes' bootstrap as CLI parameters, a new job cluster as environment variables."""
    if transport == "local":
        return {}
    params = PipesCliArgsParamsLoader() if DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT in argv else PipesEnvVarParamsLoader()
    if transport == "dbfs":
        return {
            "context_loader": PipesDbfsContextLoader(),
            "message_writer": PipesDbfsMessageWriter(),
            "params_loader": params,
        }
    return {
        "context_loader": PipesUnityCatalogVolumesContextLoader(),
        "message_writer": PipesUnityCatalogVolumesMessageWriter(),
        "params_loader": params,
    }


def launched_by_dagster(argv: Sequence[str]) -> bool:
    return DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ or DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT in argv


@contextlib.contextmanager
def engine(transport: str) -> Iterator[tuple[SparkSession, str]]:
    """The session and the engine's name: on Databricks the cluster's own session (never stopped here), locally
    the ``MEDALLION_ENGINE`` engine (Sail by default), stopped at the end."""
    if transport != "local":
        session = SparkSession.builder.getOrCreate()
        session.conf.set("spark.sql.session.timeZone", "UTC")
        yield session, "databricks"
        return
    local = SparkEngine.from_env()
    try:
        yield local.get_session(), local.resolved_mode
    finally:
        local.stop()


def build(spec: TableSpec, step: Any, request: Request, spark: SparkSession, engine_mode: str) -> Run:
    """The ``Run`` of one table, as ``factory.gated_asset`` makes it in process."""
    return Run(
        spec=spec,
        context=step,
        spark=spark,
        store=DeltaTableStore(root=request.settings.lakehouse_root),
        settings=request.settings,
        landing=LandingZone(root=request.settings.landing_root),
        engine_mode=engine_mode,
        started_at=datetime.now(timezone.utc),
        days=list(request.days or []) if spec.partitioned else None,
    )


def publish_all(pipes: Any, request: Request, spark: SparkSession, engine_mode: str) -> bool:
    """``publish`` each table in order through a ``PipesStep``; False at the first refusal (reported)."""
    for table in request.tables:
        step = PipesStep(pipes, request.tags)
        try:
            results = list(publish(build(BY_TABLE[table], step, request, spark, engine_mode)))
        except dg.Failure as failure:
            step.fail(failure)
            return False
        step.report(results)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not launched_by_dagster(argv):
        return standalone(args)
    # On Databricks the cluster's session exists before Pipes opens (its DBFS message writer reads it).
    with engine(args.transport) as (spark, engine_mode), open_dagster_pipes(**pipes_io(args.transport, argv)) as pipes:
        pipes_range = pipes.partition_key_range if pipes.is_partition_step else None
        request = Request.from_extras(pipes.extras, pipes_range)
        publish_all(pipes, request, spark, engine_mode)  # a refusal is raised by the Dagster side
    return 0


# -- without Dagster ------------------------------------------------------------------------------------------
class PrintedPipes:
    """A stand-in for ``PipesContext`` when no Dagster launched the job: every report printed as a JSON line."""

    def __init__(self, tables: Sequence[str]) -> None:
        self.run_id = f"standalone-{uuid.uuid4()}"
        keys = [BY_TABLE[t].key for t in tables]
        keys += [dg.AssetKey(q.split("/")) for t in tables if (q := BY_TABLE[t].quarantine)]
        self.asset_keys = [pipes_wire.key_string(k) for k in keys]
        self.log = log

    def _print(self, kind: str, **payload: Any) -> None:
        print(json.dumps({kind: payload}, default=str), flush=True)

    def report_asset_materialization(self, metadata: Mapping[str, Any], asset_key: str) -> None:
        self._print("materialization", asset_key=asset_key, metadata={k: v["raw_value"] for k, v in metadata.items()})

    def report_asset_check(self, check_name: str, passed: bool, severity: str, metadata: Any, asset_key: str) -> None:
        self._print("check", asset_key=asset_key, check_name=check_name, passed=passed, severity=severity)

    def report_custom_message(self, payload: Any) -> None:
        self._print("message", **payload)


def standalone(args: argparse.Namespace) -> int:
    """Build ``--tables`` for ``--from``..``--to`` with the ``MEDALLION_*`` settings (1 on a refusal), or run the
    weekly maintenance (delta-spark on Databricks)."""
    if args.maintenance:
        return maintenance(args.transport)
    if not args.tables:
        print("not launched by Dagster: give --tables (and --from/--to for daily tables)", file=sys.stderr)
        return 2
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    span = {"start": args.first, "end": args.last or args.first} if args.first else None
    request = Request.from_extras({"tables": tables, "partition_key_range": span}, None)
    with engine(args.transport) as (spark, engine_mode):
        return 0 if publish_all(PrintedPipes(tables), request, spark, engine_mode) else 1


def maintenance(transport: str) -> int:
    """``maintenance.maintain_tables`` on this job's engine: delta-spark on Databricks, deltalake elsewhere."""
    settings = Settings.from_env()
    store = DeltaTableStore(root=settings.lakehouse_root)
    tables = [t for t in store.list_tables() if t != LOG_TABLE]
    with engine(transport) as (spark, engine_mode):
        backend = maintainer(store, engine_mode, lambda: spark)
        done = maintain_tables(store, backend, tables, settings.vacuum_retention_hours, log)
    print(json.dumps({"maintenance": done}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

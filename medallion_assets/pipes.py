"""The gated assets submitted through Dagster Pipes (``MEDALLION_EXECUTION=pipes_*``).

Each is the same multi-asset as in process (``factory.asset_args``: keys, checks, partitions, pool, backfill
policy, freshness, automation); its body hands the step to the job script (``medallion_assets.pipes_job``) through
the ``pipes`` resource and relays what the job reported, expanded back per partition (``pipes_wire.expand``).
The sequence itself runs in the job: ``factory.publish``, nowhere else.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from medallion_assets import pipes_wire
from medallion_assets.factory import RUN_LOG_KEY, TableSpec, asset_args
from medallion_assets.partitions import run_days
from medallion_assets.quiet import chosen_dagster_apis
from resources.delta_store import DeltaTableStore
from resources.landing import LandingZone
from resources.pipes import PipesLauncher
from resources.run_guard import RunGuard
from resources.settings import Settings

#: Assets outside a step whose materializations a job may report (the run log every commit appends to).
RELAYED = (RUN_LOG_KEY,)


def pipes_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """``spec``'s multi-asset whose body submits the step through Dagster Pipes."""
    with chosen_dagster_apis():

        @dg.multi_asset(**asset_args(spec))
        def _asset(
            context: dg.AssetExecutionContext,
            pipes: PipesLauncher,
            store: DeltaTableStore,
            settings: Settings,
            landing: LandingZone,
            run_guard: RunGuard,  # reaps dead runs, bounds pool waits, as in process
        ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
            extras = job_extras(context, spec, pipes, store, landing, settings)
            invocation = pipes.run(context, spec.table, extras)
            results = invocation.get_results(implicit_materializations=False)
            yield from pipes_wire.expand(context, results, invocation.get_custom_messages(), RELAYED)
            _require_materializations(context, results)

    return _asset


def job_extras(
    context: dg.AssetExecutionContext,
    spec: TableSpec,
    pipes: PipesLauncher,
    store: DeltaTableStore,
    landing: LandingZone,
    settings: Settings,
) -> dict[str, Any]:
    """What the job needs besides Pipes' own context: the table, the run's days (Pipes 1.13 sends no partition
    range for a multi-partition step), the run's tags, the roots as the job sees them, the settings in force."""
    days = run_days(context) if spec.partitioned else None
    return {
        "tables": [spec.table],
        "partition_key_range": {"start": days[0], "end": days[-1]} if days else None,
        "run_tags": dict(context.run.tags),
        "lakehouse_root": pipes.job_lakehouse_root or store.root,
        "landing_root": pipes.job_landing_root or landing.root,
        "settings": settings.model_dump(),
    }


def _require_materializations(context: dg.AssetExecutionContext, results: Any) -> None:
    reported = {r.asset_key for r in results if isinstance(r, dg.MaterializeResult)}
    if missing := set(context.selected_asset_keys) - reported:
        raise dg.Failure(
            f"the Pipes job ended without reporting {sorted(k.to_user_string() for k in missing)}: see its log"
        )

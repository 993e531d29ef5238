"""The daemon's re-keying of ``gold/fact_orders``: after a run whose dimension write moved customers' versions
(succeeded, or failed in a later step), one run per fact day it left keyed to other versions."""

from __future__ import annotations

import dagster as dg

from medallion_assets.cli import INVOCATION_TAG
from medallion_assets.jobs import fact_rekey_job
from medallion_assets.partitions import SETTINGS
from medallion_assets.rekey import REKEY_AFTER, days_to_rekey, within_partitions
from sensors.landing_sensors import automation_status

_EVENTS = {dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.ASSET_MATERIALIZATION}


def rekey_requests(instance: dg.DagsterInstance, run: dg.DagsterRun, log=None) -> list[dg.RunRequest]:
    """A run of the fact job per day ``run`` left to re-key (its run key: that run and day, so once); days outside
    the partitions are logged, and days with a re-key run still queued are left to it."""
    if INVOCATION_TAG in run.tags:  # `medallion run` re-keys in the same command
        return []
    records = instance.get_records_for_run(run.run_id, of_type=_EVENTS).records
    found = days_to_rekey(r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event)
    days, outside = within_partitions(found)
    if outside and log is not None:
        log.warning(
            f"run {run.run_id}: gold/fact_orders {', '.join(outside)} keep(s) keys of older customer versions: "
            f"before the first daily partition (MEDALLION_START_DATE={SETTINGS.start_date}); not requested"
        )
    waiting = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=fact_rekey_job.name, statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
        )
    )
    queued = {r.tags.get("dagster/partition") for r in waiting}  # they read the dimension when they start
    return [
        dg.RunRequest(run_key=f"rekey:{run.run_id}:{day}", partition_key=day, tags={REKEY_AFTER: run.run_id})
        for day in days
        if day not in queued
    ]


def _sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=f"fact_rekey_after_{status.value.lower()}",
        request_job=fact_rekey_job,
        default_status=automation_status(),
        description="Re-keys the gold/fact_orders days a run's customer-dimension write left keyed to other "
        "customer versions (its check fact_orders_keys_current names them).",
    )
    def rekey(context: dg.RunStatusSensorContext):
        requests = rekey_requests(context.instance, context.dagster_run, context.log)
        return requests or dg.SkipReason(f"run {context.dagster_run.run_id} left no fact day to re-key")

    return rekey


REKEY_SENSORS = [_sensor(dg.DagsterRunStatus.SUCCESS), _sensor(dg.DagsterRunStatus.FAILURE)]

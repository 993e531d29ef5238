"""Failure alerts: failed runs and refused quality gates, posted to the alert webhook and always logged."""

import dagster as dg

from medallion_assets import run_log
from medallion_assets.partitions import tagged_range
from resources.alerts import AlertWebhook
from resources.delta_store import DeltaTableStore
from sensors.landing_sensors import automation_status


def run_partitions(run: dg.DagsterRun) -> list[str]:
    """``[day]`` or ``["first...last"]`` for a partitioned run, ``[]`` otherwise."""
    tagged = tagged_range(run.tags)
    if tagged is None:
        return []
    return [tagged[0]] if tagged[0] == tagged[1] else [f"{tagged[0]}...{tagged[1]}"]


def step_asset(step_key: str) -> str:
    """``silver__orders`` → ``silver/orders`` (asset step keys join the key path with ``__``)."""
    return step_key.replace("__", "/")


def failure_payload(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps = context.get_step_failure_events()
    return {
        "kind": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_assets": sorted({step_asset(e.step_key) for e in steps if e.step_key}),
        "partitions": run_partitions(run),
        "error": "\n".join(e.event_specific_data.error.message for e in steps if e.event_specific_data.error)
        or context.failure_event.message,
    }


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=automation_status(),
    description="Posts a JSON alert (run id, job, failed assets and partitions, error) for every failed run.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertWebhook) -> None:
    alerts.send(failure_payload(context))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="quality_gate_alert",
    default_status=automation_status(),
    description="Posts a JSON alert for partitions a quality gate refused in a run that otherwise succeeded.",
)
def quality_gate_alert(context: dg.RunStatusSensorContext, alerts: AlertWebhook, store: DeltaTableStore) -> None:
    refused = run_log.refused_in_run(store, context.dagster_run.run_id)
    if refused:
        alerts.send(
            {
                "kind": "quality_gate_refused",
                "run_id": context.dagster_run.run_id,
                "job": context.dagster_run.job_name,
                "failed_assets": sorted({r["asset"] for r in refused}),
                "partitions": sorted({r["partition"] for r in refused}),
                "error": "\n".join(f"{r['asset']} {r['partition']}: {r['error_message']}" for r in refused),
            }
        )

"""Failure alerts: failed runs and refused quality gates, posted to the alert webhook and always logged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from medallion_assets import run_log
from medallion_assets.partitions import tagged_range
from resources.alerts import AlertWebhook
from resources.delta_store import DeltaTableStore
from sensors.landing_sensors import automation_status

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

#: Bounds of the alert's ``error``: per message in an error's cause chain, in total, and chain depth followed.
MAX_MESSAGE_CHARS = 800
MAX_ERROR_CHARS = 4000
MAX_CHAIN = 20


def run_partitions(run: dg.DagsterRun) -> list[str]:
    """``[day]`` or ``["first...last"]`` for a partitioned run, ``[]`` otherwise."""
    tagged = tagged_range(run.tags)
    if tagged is None:
        return []
    return [tagged[0]] if tagged[0] == tagged[1] else [f"{tagged[0]}...{tagged[1]}"]


def step_asset(step_key: str) -> str:
    """``silver__orders`` → ``silver/orders`` (asset step keys join the key path with ``__``)."""
    return step_key.replace("__", "/")


def error_chain(error: SerializableErrorInfo | None) -> list[SerializableErrorInfo]:
    """``error`` and what caused it (``cause``, else ``context``), outermost first."""
    chain: list[SerializableErrorInfo] = []
    while error is not None and len(chain) < MAX_CHAIN:
        chain.append(error)
        error = error.cause or error.context
    return chain


def is_wrapper(error: SerializableErrorInfo) -> bool:
    """Dagster's own wrapper around a user-code error (``Error occurred while executing op …``)."""
    return error.cls_name.startswith("Dagster") and (error.cause or error.context) is not None


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_summary(error: SerializableErrorInfo | None) -> str:
    """The messages of ``error``'s chain without Dagster's wrappers: the first and the innermost two, clipped."""
    chain = error_chain(error)
    messages = [clip(e.message.strip(), MAX_MESSAGE_CHARS) for e in chain if not is_wrapper(e)]
    messages = messages or [clip(e.message.strip(), MAX_MESSAGE_CHARS) for e in chain[:1]]
    if len(messages) > 3:
        messages = [messages[0], "…", *messages[-2:]]
    return "\ncaused by: ".join(dict.fromkeys(messages))


def failure_payload(context: dg.RunFailureSensorContext) -> dict:
    """The alert for a failed run; ``error`` holds each failed step's cause, not only Dagster's wrapper."""
    run = context.dagster_run
    steps = context.get_step_failure_events()
    errors = [error_summary(e.event_specific_data.error) for e in steps if e.event_specific_data.error]
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    return {
        "kind": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_assets": sorted({step_asset(e.step_key) for e in steps if e.step_key}),
        "partitions": run_partitions(run),
        "error": clip(
            "\n".join(errors) or error_summary(run_error) or context.failure_event.message or "", MAX_ERROR_CHARS
        ),
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
                "error": clip(
                    "\n".join(f"{r['asset']} {r['partition']}: {r['error_message']}" for r in refused), MAX_ERROR_CHARS
                ),
            }
        )

"""A step's per-day check evaluations logged as one batch of Dagster events.

``context.log_event`` stores each evaluation on its own: two or three storage transactions an event, about 7 ms on
the dev instance, and a 30-day range run logs about 360 of them. Dagster marks a range run's per-partition
materializations as one event batch, which an instance with event batches (``MedallionInstance``) stores in one
transaction per shard; it has no such path for check evaluations. ``log_evaluations`` builds the events
``log_event`` builds, marked as one batch. On an instance without batches they are stored one by one, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, DagsterEventType, generate_event_batch_id


def log_evaluations(context: Any, evaluations: Sequence[dg.AssetCheckEvaluation]) -> None:
    """Log ``evaluations`` as ``context.log_event`` does each, as one event batch when ``context`` is Dagster's
    asset step context (another step context, such as a Pipes step, gets them one by one)."""
    if len(evaluations) < 2 or not isinstance(context, dg.AssetExecutionContext):
        for evaluation in evaluations:
            context.log_event(evaluation)
        return
    op_context = context.op_execution_context
    step = op_context._step_execution_context  # what log_event passes to DagsterEvent
    batch_id, last = generate_event_batch_id(), len(evaluations) - 1
    for i, evaluation in enumerate(evaluations):
        event = DagsterEvent.from_step(  # stores the event (at the batch's end, on an instance with batches)
            DagsterEventType.ASSET_CHECK_EVALUATION,
            step,
            event_specific_data=evaluation,
            message=_message(evaluation),
            batch_metadata=DagsterEventBatchMetadata(batch_id, i == last),
        )
        op_context._events.append(event)  # as log_event: the step yields its logged events


def _message(evaluation: dg.AssetCheckEvaluation) -> str:
    """The message Dagster gives a check evaluation event."""
    outcome = "passed." if evaluation.passed else "did not pass."
    described = "" if evaluation.description is None else f" Description: '{evaluation.description}'"
    return f"Asset check '{evaluation.check_name}' on '{evaluation.asset_key.to_user_string()}' {outcome}{described}"

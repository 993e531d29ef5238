"""Run the failure-alert sensor on a failed run, as the daemon does after the run ends."""

import dagster as dg

from resources.alerts import AlertWebhook
from sensors.alert_sensors import run_failure_alert


def alert_failed_run(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, alerts: AlertWebhook) -> None:
    """Evaluate ``run_failure_alert`` for the failed run of ``result`` with ``alerts`` as its webhook."""
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=failure,
        resources={"alerts": alerts},
    ).for_run_failure()
    run_failure_alert(context)

"""The daemon side of the run guard: frees the slots of runs whose worker died, so queued runs can start.

Runs reap dead runs when they start; a run waiting in the queue behind a dead run's pool slot never starts,
so this sensor does the same every 30 s from the daemon (runs on other hosts are left alone).
"""

import dagster as dg

from resources.run_guard import reap_dead_runs
from sensors.landing_sensors import automation_status

SENSOR_NAME = "run_guard_sensor"


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=automation_status(),
    description=(
        "Marks in-progress runs whose worker process died as failed; frees the pool slots of any run whose worker died."
    ),
)
def run_guard_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance, reaper=f"sensor {SENSOR_NAME}", log=context.log)
    if reaped:
        return dg.SkipReason(f"reaped {len(reaped)} run(s) whose worker died: {', '.join(reaped)}")
    return dg.SkipReason("no in-progress run on this host has lost its worker")

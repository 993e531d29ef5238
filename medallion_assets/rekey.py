"""Re-keying ``gold/fact_orders``: the fact days a run's dimension write left keyed to other customer versions.

The dimension's ``fact_orders_keys_current`` check names those days (a day's customers landed after its orders,
or an earlier version arrived later); the fact's check of the same name names the days a step published after
another run replaced the dimension it was keyed with. ``medallion run`` rebuilds them after its run; in the daemon
the rekey sensors request them. Days the same run built the fact for after the dimension are already keyed.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from medallion_assets.partitions import DAILY
from medallion_assets.star import DIM, FACT, REKEY_CHECK

#: What a re-key rebuilds: the fact and its quarantine (one step).
TABLES = (FACT, "quarantine/fact_orders")
#: On a re-key run: the run whose dimension write it follows.
REKEY_AFTER = "medallion/rekey_after"
DIM_KEY = dg.AssetKey(DIM.split("/"))
FACT_KEY = dg.AssetKey(FACT.split("/"))


def days_to_rekey(events: Iterable[dg.DagsterEvent]) -> list[str]:
    """The fact days a run's events say to re-key: those the dimension's check found, less those the fact was
    published for later in the same run, and those the fact's own check found (published on a replaced dimension)."""
    after_dim: set[str] = set()
    at_publish: set[str] = set()
    built: set[str] = set()
    for event in events:
        data, kind = event.event_specific_data, event.event_type
        if kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and data.check_name == REKEY_CHECK and not data.passed:
            if data.asset_key == DIM_KEY:
                after_dim |= set(data.metadata["failed"].value or {})
            elif data.asset_key == FACT_KEY:  # one evaluation per day in a range run, else one naming its days
                at_publish |= {data.partition} if data.partition else set(data.metadata["failed"].value or {})
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and data.materialization.asset_key == FACT_KEY:
            built.add(data.materialization.partition)
    return sorted((after_dim - built) | at_publish)


def within_partitions(days: Iterable[str]) -> tuple[list[str], list[str]]:
    """``days`` the daily partitions hold, and those they do not (``MEDALLION_START_DATE`` moved past them): a run
    or run request for those would fail, and a sensor's failing tick would never move on."""
    first, last = DAILY.get_first_partition_key(), DAILY.get_last_partition_key()
    inside = [d for d in days if first <= d <= last]
    return inside, [d for d in days if d not in inside]

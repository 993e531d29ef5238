"""Dagster's preview and beta warnings for the APIs this project chose on purpose (partitioned asset checks,
column-schema-change checks, backfill policies), silenced where the definitions are built, and its notice about
blocking checks this project gates itself, so the CLI and the UI's logs show only what concerns the user."""

import contextlib
import logging
import warnings
from collections.abc import Iterator

import dagster as dg

#: The logger of Dagster's step scheduler, which notes a blocking check that gave a step no result.
PLAN_LOGGER = "dagster._core.execution.plan.active"


@contextlib.contextmanager
def chosen_dagster_apis() -> Iterator[None]:
    """Silence PreviewWarning/BetaWarning/SupersessionWarning raised while building definitions."""
    with warnings.catch_warnings():
        for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):
            warnings.simplefilter("ignore", category)
        yield


class _SelfGatedChecks(logging.Filter):
    """Drops Dagster's "Blocking asset check … emitted no result … will proceed without gating on it" for the
    checks ``factory.publish`` gates itself. A run of several days gives them one evaluation per day, not a step
    result, and a blocking one that fails fails the step, so no downstream step proceeds on it."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not (message.startswith("Blocking asset check '") and "emitted no result" in message):
            return True
        return message.split("'")[1] not in self.keys


_SELF_GATED = _SelfGatedChecks()
logging.getLogger(PLAN_LOGGER).addFilter(_SELF_GATED)


def gated_by_publish(key: dg.AssetCheckKey) -> None:
    """Record ``key`` as a blocking check that ``factory.publish`` enforces itself (see ``_SelfGatedChecks``)."""
    _SELF_GATED.keys.add(key.to_user_string())

"""Dagster's preview and beta warnings for the APIs this project chose on purpose (partitioned asset checks,
column-schema-change checks, backfill policies), silenced where the definitions are built so the CLI and the
UI's logs show only what concerns the user."""

import contextlib
import warnings
from collections.abc import Iterator

import dagster as dg


@contextlib.contextmanager
def chosen_dagster_apis() -> Iterator[None]:
    """Silence PreviewWarning/BetaWarning/SupersessionWarning raised while building definitions."""
    with warnings.catch_warnings():
        for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):
            warnings.simplefilter("ignore", category)
        yield

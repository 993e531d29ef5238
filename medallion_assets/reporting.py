"""Materialization metadata shared by every asset: numbers the Dagster UI can plot, plus a per-day table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from resources.delta_store import WriteResult


def per_day_table(rows: Sequence[Mapping[str, Any]]) -> dg.MetadataValue:
    """A markdown table of per-day figures (first column: the day)."""
    if not rows:
        return dg.MetadataValue.md("_no partitions_")
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(r.get(h)) for h in headers) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_metadata(write: WriteResult | None) -> dict[str, Any]:
    """Where the table lives and the Delta version the write produced."""
    if write is None:
        return {}
    meta: dict[str, Any] = {
        "table_path": dg.MetadataValue.path(write.uri),
        "delta_version": dg.MetadataValue.int(write.version),
    }
    if write.added_columns:
        meta["added_columns"] = dg.MetadataValue.json(list(write.added_columns))
    return meta

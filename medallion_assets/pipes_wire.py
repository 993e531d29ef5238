"""How ``publish``'s results cross Dagster Pipes, which has no partition on a check or a materialization.

The job side (``factory.PipesStep``) encodes; the Dagster side (``medallion_assets.pipes``) expands back:

* a table's per-partition metadata rides on its run-level materialization under ``by_partition``
  (``{day: {name: value}}``); the Dagster side adds it to each partition's materialization again;
* the per-day evaluations of a check are collapsed into one result per check and table: passed when every day
  passed, with ``partitions_evaluated``, ``failed_partitions`` and each day's verdict (``evaluations``); the Dagster
  side logs one evaluation per day again, next to the collapsed result Pipes requires;
* a materialization of an asset outside the step (the run log) and a refusal (``dg.Failure``) go as custom
  messages; the Dagster side logs the first only for an asset it declares and raises the second.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

BY_PARTITION = "by_partition"
EVALUATIONS = "evaluations"
EVALUATED = "partitions_evaluated"
FAILED = "failed_partitions"
DESCRIPTION = "_description"
#: key of the custom messages this project sends: ``materialization`` or ``failure``
MESSAGE = "medallion"

_TYPES: tuple[tuple[type, str], ...] = (
    (dg.BoolMetadataValue, "bool"),
    (dg.IntMetadataValue, "int"),
    (dg.FloatMetadataValue, "float"),
    (dg.TextMetadataValue, "text"),
    (dg.JsonMetadataValue, "json"),
    (dg.PathMetadataValue, "path"),
    (dg.UrlMetadataValue, "url"),
    (dg.MarkdownMetadataValue, "md"),
    (dg.TimestampMetadataValue, "timestamp"),
)


# -- both sides -----------------------------------------------------------------------------------------------
def key_string(key: dg.AssetKey) -> str:
    """The asset key as Pipes writes it (parts joined by ``/``, a ``/`` inside a part escaped)."""
    return key.to_escaped_user_string()


def asset_key(text: str) -> dg.AssetKey:
    return dg.AssetKey.from_escaped_user_string(text)


def raw(value: Any) -> Any:
    """A metadata value as plain JSON data: ``MetadataValue``s by their value (a table or schema as its records
    and columns), anything else that is not JSON as text."""
    if isinstance(value, (dg.TableMetadataValue, dg.TableSchemaMetadataValue)):
        return _pipes_value(value)["raw_value"]
    value = value.value if isinstance(value, dg.MetadataValue) else value
    try:
        json.dumps(value)
    except Exception:  # a record or an object json cannot take
        return str(value)
    return value


# -- job side: encode -----------------------------------------------------------------------------------------
def _columns(schema: dg.TableSchema) -> list[dict[str, Any]]:
    return [{"name": c.name, "type": c.type, "description": c.description} for c in schema.columns]


def to_pipes(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dagster metadata as Pipes metadata, keeping each value's type (tables and schemas included)."""
    return {name: _pipes_value(value) for name, value in metadata.items()}


def _pipes_value(value: Any) -> dict[str, Any]:
    if isinstance(value, dg.TableMetadataValue):
        records = [r.data for r in value.records]
        return {"type": "table", "raw_value": {"records": records, "schema": _columns(value.schema)}}
    if isinstance(value, dg.TableSchemaMetadataValue):
        return {"type": "table_schema", "raw_value": {"columns": _columns(value.schema)}}
    if isinstance(value, dg.NullMetadataValue) or value is None:
        return {"type": "null", "raw_value": None}
    for cls, name in _TYPES:
        if isinstance(value, cls):
            return {"type": name, "raw_value": raw(value)}
    if isinstance(value, (bool, int, float, str, list, dict)):
        return {"type": "__infer__", "raw_value": raw(value)}
    return {"type": "text", "raw_value": str(value)}


def partition_metadata(by_day: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-partition metadata as one run-level entry."""
    if not by_day:
        return {}
    return {BY_PARTITION: dg.MetadataValue.json({d: {k: raw(v) for k, v in m.items()} for d, m in by_day.items()})}


def check_report(result: dg.AssetCheckResult | None, evaluations: Sequence[dg.AssetCheckEvaluation]) -> dict[str, Any]:
    """One ``report_asset_check`` for a check: its result (if any) and its per-day evaluations, collapsed."""
    first = result or evaluations[0]
    passed = (result.passed if result else True) and all(e.passed for e in evaluations)
    metadata: dict[str, Any] = dict(result.metadata if result else {})
    if evaluations:
        metadata[EVALUATED] = dg.MetadataValue.json([e.partition for e in evaluations])
        metadata[FAILED] = dg.MetadataValue.json([e.partition for e in evaluations if not e.passed])
        metadata[EVALUATIONS] = dg.MetadataValue.json([_evaluation(e) for e in evaluations])
    if first.description:
        metadata[DESCRIPTION] = dg.MetadataValue.text(first.description)
    return {
        "check_name": first.check_name,
        "passed": passed,
        "severity": first.severity.value,
        "metadata": to_pipes(metadata),
    }


def _evaluation(e: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {
        "partition": e.partition,
        "passed": e.passed,
        "description": e.description,
        "metadata": {k: raw(v) for k, v in e.metadata.items()},
    }


def materialization_message(event: dg.AssetMaterialization) -> dict[str, Any]:
    return {
        MESSAGE: "materialization",
        "asset_key": key_string(event.asset_key),
        "metadata": {k: raw(v) for k, v in event.metadata.items()},
    }


def failure_message(failure: dg.Failure) -> dict[str, Any]:
    return {
        MESSAGE: "failure",
        "description": failure.description,
        "metadata": {k: raw(v) for k, v in (failure.metadata or {}).items()},
    }


# -- Dagster side: expand -------------------------------------------------------------------------------------
def expand(
    context: dg.AssetExecutionContext,
    results: Iterable[Any],
    messages: Iterable[Any],
    relayed: Iterable[dg.AssetKey],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The results of a Pipes job as the in-process step gives them: per-partition metadata and per-day check
    evaluations logged again, materializations of ``relayed`` assets logged, a refusal raised as ``dg.Failure``."""
    results, ours = list(results), [m for m in messages if isinstance(m, Mapping) and MESSAGE in m]
    declared = set(relayed)
    for message in ours:
        if message[MESSAGE] == "materialization":
            key = asset_key(message["asset_key"])
            if key in declared:
                context.log_event(dg.AssetMaterialization(asset_key=key, metadata=message["metadata"]))
    checks = [r for r in results if isinstance(r, dg.AssetCheckResult)]
    for check in checks:
        for e in _decode_json(check.metadata.get(EVALUATIONS)) or []:
            context.log_event(_day_evaluation(check, e))
    failure = next((m for m in ours if m[MESSAGE] == "failure"), None)
    if failure:
        raise dg.Failure(description=failure["description"], metadata=failure["metadata"])
    for result in results:
        if isinstance(result, dg.MaterializeResult):
            yield _materialization(context, result)
    for check in checks:
        metadata = {k: v for k, v in check.metadata.items() if k not in (EVALUATIONS, DESCRIPTION)}
        yield dg.AssetCheckResult(
            asset_key=check.asset_key, check_name=check.check_name, passed=check.passed, severity=check.severity,
            metadata=metadata, description=_decode_text(check.metadata.get(DESCRIPTION)),
        )  # fmt: skip


def _materialization(context: dg.AssetExecutionContext, result: dg.MaterializeResult) -> dg.MaterializeResult:
    metadata = dict(result.metadata or {})
    by_day = _decode_json(metadata.pop(BY_PARTITION, None)) or {}
    for day, figures in by_day.items():
        context.add_asset_metadata(figures, asset_key=result.asset_key, partition_key=day)
    return dg.MaterializeResult(asset_key=result.asset_key, metadata=metadata, data_version=result.data_version)


def _day_evaluation(check: dg.AssetCheckResult, e: Mapping[str, Any]) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key, check_name=check.check_name, passed=e["passed"], partition=e["partition"],
        severity=check.severity, metadata=e["metadata"], description=e["description"],
    )  # fmt: skip


def _decode_json(value: Any) -> Any:
    return value.value if isinstance(value, dg.MetadataValue) else value


def _decode_text(value: Any) -> str | None:
    decoded = _decode_json(value)
    return str(decoded) if decoded is not None else None

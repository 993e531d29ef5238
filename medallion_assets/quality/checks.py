"""Asset checks that run on what was published: pandera models over the Delta table's partitions."""

import dagster as dg
import pandera.errors
import pandera.pandas as pa

from medallion_assets.partitions import tagged_range
from medallion_assets.quality.schemas import arrow_frame
from resources.delta_store import DeltaTableStore
from resources.partition_keys import day_range


def pandera_check(
    asset: dg.AssetsDefinition, table: str, model: type[pa.DataFrameModel], partition_column: str
) -> dg.AssetChecksDefinition:
    """A check validating the published rows of ``table`` against ``model``: the run's days, or else the
    latest published day (so the check also runs on its own from the UI)."""

    @dg.asset_check(
        asset=asset,
        name="pandera_schema",
        description=f"{model.__name__} (pandera) on the published partitions of {table}",
    )
    def _check(context: dg.AssetCheckExecutionContext, store: DeltaTableStore) -> dg.AssetCheckResult:
        if not store.exists(table):
            return dg.AssetCheckResult(passed=False, metadata={"error": f"{table} does not exist"})
        dt = store.delta_table(table)
        tagged = tagged_range(context.run.tags) if context.run else None
        days = day_range(*tagged) if tagged else None
        if days is None:
            latest = dt.to_pyarrow_table(columns=[partition_column]).column(partition_column)
            days = [max(latest.to_pylist())] if len(latest) else []
        # partitions= prunes by the Delta log; filters= would first build a dataset over every file
        wanted = [str(d) for d in days]
        frame = arrow_frame(dt.to_pyarrow_table(partitions=[(partition_column, "in", wanted)])) if days else None
        result = validate(model, frame)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={**result.metadata, "partitions": dg.MetadataValue.json([str(d) for d in days])},
        )

    return _check


def validate(model: type[pa.DataFrameModel], df) -> dg.AssetCheckResult:
    """Run ``model`` lazily; failure cases (capped) go into the check's metadata."""
    if df is None:
        return dg.AssetCheckResult(passed=True, metadata={"rows_checked": dg.MetadataValue.int(0)})
    try:
        model.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return dg.AssetCheckResult(
            passed=False,
            metadata={
                "rows_checked": dg.MetadataValue.int(len(df)),
                "failure_count": dg.MetadataValue.int(len(cases)),
                "failed_checks": dg.MetadataValue.json(sorted({str(c) for c in cases["check"]})),
                "failure_cases": dg.MetadataValue.md(cases.head(20).to_markdown(index=False)),
            },
        )
    return dg.AssetCheckResult(passed=True, metadata={"rows_checked": dg.MetadataValue.int(len(df))})

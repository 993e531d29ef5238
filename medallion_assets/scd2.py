"""Slowly changing dimension type 2: versions from change rows, ordered by their own ``updated_at``.

Pure DataFrame functions, so a rebuild from the same rows gives the same versions and surrogate keys whatever
order the days were loaded in.
"""

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def surrogate_key(*columns: str) -> Column:
    """A deterministic BIGINT key from ``columns`` (xxhash64), the same on every rebuild and engine."""
    return F.xxhash64(*(F.col(c).cast("string") for c in columns))


def scd2_versions(
    rows: DataFrame,
    *,
    key: str,
    attributes: Sequence[str],
    valid_from: str,
    tie_breakers: Sequence[str] = (),
    sk_name: str,
) -> DataFrame:
    """One row per version: ``sk``, key, attributes, ``valid_from``, ``valid_to`` (next version's start;
    null while current) and ``is_current``.

    Rows with the same key and ``valid_from`` collapse to the last by ``tie_breakers``; a row equal in every
    attribute to the version before it is a re-delivery, not a new version.
    """
    by_time = Window.partitionBy(key, valid_from).orderBy(*(F.col(c).desc() for c in tie_breakers))
    latest_per_instant = (
        rows.withColumn("_rank", F.row_number().over(by_time)).filter(F.col("_rank") == 1).drop("_rank")
    )
    ordered = Window.partitionBy(key).orderBy(valid_from)
    changed = F.lit(False)
    for attribute in attributes:
        changed = changed | ~F.lag(F.col(attribute)).over(ordered).eqNullSafe(F.col(attribute))
    versions = latest_per_instant.withColumn(
        "_new_version", F.row_number().over(ordered).eqNullSafe(F.lit(1)) | changed
    ).filter("_new_version")
    return versions.select(
        surrogate_key(key, valid_from).alias(sk_name),
        key,
        *attributes,
        F.col(valid_from).alias("valid_from"),
        F.lead(F.col(valid_from)).over(ordered).alias("valid_to"),
        F.lead(F.col(valid_from)).over(ordered).isNull().alias("is_current"),
    )


def as_of(facts: DataFrame, dim: DataFrame, *, key: str, at: str, sk_name: str, unknown: int = -1) -> DataFrame:
    """``facts`` with the surrogate key of the ``dim`` version valid at ``facts[at]``
    (valid_from ≤ at < valid_to, or valid_to null); ``unknown`` when none was valid then."""
    d = dim.select(F.col(key).alias("_dim_key"), F.col(sk_name).alias("_dim_sk"), "valid_from", "valid_to")
    joined = facts.join(
        d,
        (F.col(key) == F.col("_dim_key"))
        & (F.col("valid_from") <= F.col(at))
        & (F.col("valid_to").isNull() | (F.col(at) < F.col("valid_to"))),
        "left",
    )
    return joined.withColumn(sk_name, F.coalesce(F.col("_dim_sk"), F.lit(unknown).cast("long"))).drop(
        "_dim_key", "_dim_sk", "valid_from", "valid_to"
    )

"""The Delta table store: the only place that writes lakehouse tables.

A table ``layer/name`` lives at ``<root>/<layer>/<name>``; the root comes from ``MEDALLION_LAKEHOUSE_ROOT``
(default ``./.lakehouse``). Writes go through Spark (Sail, Spark Connect or Databricks); history and
versions come from ``deltalake`` because Sail has no ``DESCRIBE HISTORY``.

Sail gaps handled here and nowhere else:

* dynamic partition overwrite silently overwrites the whole table, so partitions are replaced with
  ``replaceWhere`` after the DataFrame is filtered to exactly those partitions;
* ``mergeSchema`` is refused together with ``replaceWhere``, so new columns are added first by an
  empty ``mergeSchema`` append and missing columns are filled with typed nulls;
* ``replaceWhere`` on a table that does not exist yet fails, so the first write creates the table.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from deltalake import DeltaTable

from resources.errors import InvalidTableName
from resources.partition_keys import is_contiguous, parse_days

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_TABLE = re.compile(r"[a-z][a-z0-9_]*/[a-z][a-z0-9_]*")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the table, where it lives, the Delta version it produced."""

    table: str
    uri: str
    version: int
    operation: str
    partitions: tuple[str, ...] = ()
    added_columns: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


def partition_predicate(partition_column: str, days: Iterable[str | date]) -> str:
    """A SQL predicate selecting exactly ``days`` of a date-partitioned table.

    Every key is parsed as a strict ``YYYY-MM-DD`` date first, so no caller text reaches the SQL.
    """
    if not _COLUMN.fullmatch(partition_column):
        raise InvalidTableName(f"partition column {partition_column!r} is not a plain identifier")
    parsed = parse_days(days)
    col = f"`{partition_column}`"
    if len(parsed) == 1:
        return f"{col} = DATE'{parsed[0].isoformat()}'"
    if is_contiguous(parsed):
        return f"{col} >= DATE'{parsed[0].isoformat()}' AND {col} <= DATE'{parsed[-1].isoformat()}'"
    listed = ", ".join(f"DATE'{d.isoformat()}'" for d in parsed)
    return f"{col} IN ({listed})"


class DeltaTableStore(dg.ConfigurableResource):
    """Path-based Delta tables under one lakehouse root, with partition-safe write verbs."""

    root: str | None = None
    storage_options: dict[str, str] = {}

    # -- locations ---------------------------------------------------------------------------------
    @property
    def root_uri(self) -> str:
        """The lakehouse root: the field, else ``MEDALLION_LAKEHOUSE_ROOT``, else ``./.lakehouse``."""
        root = self.root or os.environ.get("MEDALLION_LAKEHOUSE_ROOT") or ".lakehouse"
        return root.rstrip("/") if "://" in root else str(Path(root).expanduser().resolve())

    def table_uri(self, table: str) -> str:
        """Where ``layer/name`` lives."""
        if not _TABLE.fullmatch(table):
            raise InvalidTableName(f"table {table!r} is not 'layer/name' in lower-case snake case")
        return f"{self.root_uri}/{table}"

    # -- reads ---------------------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(table), storage_options=self.storage_options or None)

    def delta_table(self, table: str) -> DeltaTable:
        """The delta-rs handle of ``table`` (history, maintenance, small reads)."""
        return DeltaTable(self.table_uri(table), storage_options=self.storage_options or None)

    def version(self, table: str) -> int | None:
        """The current Delta version of ``table``, or None when it does not exist."""
        return self.delta_table(table).version() if self.exists(table) else None

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commit history, newest first (via ``deltalake``: Sail has no DESCRIBE HISTORY)."""
        return self.delta_table(table).history(limit) if self.exists(table) else []

    def read(
        self,
        spark: SparkSession,
        table: str,
        *,
        partition_column: str | None = None,
        days: Iterable[str | date] | None = None,
    ) -> DataFrame:
        """``table`` as a DataFrame, optionally only the given day partitions."""
        df = spark.read.format("delta").load(self.table_uri(table))
        if days is not None:
            if partition_column is None:
                raise ValueError("reading by days needs the partition column")
            df = df.filter(partition_predicate(partition_column, days))
        return df

    # -- writes --------------------------------------------------------------------------------------
    def replace_partitions(
        self, table: str, df: DataFrame, *, partition_column: str, days: Iterable[str | date]
    ) -> WriteResult:
        """Replace exactly ``days`` of ``table`` with ``df``'s rows for those days.

        Rows of ``df`` outside ``days`` are filtered out first (Sail does not check them). A day with no
        rows in ``df`` ends up empty, so re-running a partition never leaves stale rows behind.
        """
        parsed = parse_days(days)
        predicate = partition_predicate(partition_column, parsed)
        keys = tuple(d.isoformat() for d in parsed)
        rows = df.filter(predicate)
        uri = self.table_uri(table)
        if not self.exists(table):
            rows.write.format("delta").mode("overwrite").partitionBy(partition_column).save(uri)
            return WriteResult(table, uri, self.version(table) or 0, "create", keys, tuple(rows.columns))
        rows, added = self._align_schema(table, rows)
        rows.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(uri)
        return WriteResult(table, uri, self.version(table) or 0, "replace_partitions", keys, added)

    def append(self, table: str, df: DataFrame) -> WriteResult:
        """Append ``df`` to ``table`` (created if absent; new columns merged into the schema)."""
        uri = self.table_uri(table)
        df.write.format("delta").mode("append").option("mergeSchema", "true").save(uri)
        return WriteResult(table, uri, self.version(table) or 0, "append")

    def overwrite(self, table: str, df: DataFrame) -> WriteResult:
        """Replace the whole of an unpartitioned ``table`` (schema may change)."""
        uri = self.table_uri(table)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(uri)
        return WriteResult(table, uri, self.version(table) or 0, "overwrite")

    def merge(self, table: str, df: DataFrame, *, keys: Sequence[str]) -> WriteResult:
        """Upsert ``df`` into ``table`` by ``keys`` with SQL ``MERGE INTO`` (creates the table if absent)."""
        for key in keys:
            if not _COLUMN.fullmatch(key):
                raise InvalidTableName(f"merge key {key!r} is not a plain identifier")
        if not keys:
            raise ValueError("merge needs at least one key column")
        uri = self.table_uri(table)
        if not self.exists(table):
            df.write.format("delta").mode("overwrite").save(uri)
            return WriteResult(table, uri, self.version(table) or 0, "create")
        spark = df.sparkSession
        view = f"medallion_merge_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        try:
            spark.sql(
                f"MERGE INTO delta.`{uri.replace('`', '``')}` AS t USING `{view}` AS s ON {on} "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            ).collect()
        finally:
            spark.catalog.dropTempView(view)
        return WriteResult(table, uri, self.version(table) or 0, "merge")

    def _align_schema(self, table: str, df: DataFrame) -> tuple[DataFrame, tuple[str, ...]]:
        """Add ``df``'s new columns to the table schema; fill the table's columns ``df`` lacks with nulls."""
        from pyspark.sql import functions as F

        uri = self.table_uri(table)
        current = df.sparkSession.read.format("delta").load(uri).schema
        known = {f.name.lower() for f in current.fields}
        added = tuple(c for c in df.columns if c.lower() not in known)
        if added:
            df.limit(0).write.format("delta").mode("append").option("mergeSchema", "true").save(uri)
        present = {c.lower() for c in df.columns}
        missing = [f for f in current.fields if f.name.lower() not in present]
        if missing:
            df = df.select("*", *(F.lit(None).cast(f.dataType).alias(f.name) for f in missing))
        return df, added

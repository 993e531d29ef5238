"""The Delta table store: the only place that writes lakehouse tables.

A table ``layer/name`` lives at ``<root>/<layer>/<name>``; the root comes from ``MEDALLION_LAKEHOUSE_ROOT``
(default ``./.lakehouse``; ``s3://bucket/prefix`` and the other object stores of ``resources.storage`` too). Writes go
through Spark (Sail, Spark Connect or Databricks); history and versions come from ``deltalake`` because Sail has no
``DESCRIBE HISTORY``. One typed storage configuration (``storage_options``, ``client_options``: dagster-deltalake's
configs) reaches ``deltalake``, pyarrow and the embedded Sail server alike.

Sail gaps handled here and nowhere else:

* dynamic partition overwrite silently overwrites the whole table, so partitions are replaced with
  ``replaceWhere`` after the DataFrame is filtered to exactly those partitions;
* ``mergeSchema`` is refused together with ``replaceWhere``, an empty schema-merging append commits nothing,
  and an overwrite silently drops columns the table lacks: new columns are added with ``deltalake``'s
  ``alter.add_columns`` first (then checked), and missing columns are filled with typed nulls;
* two concurrent partition overwrites both commit (rows end up twice): writers of a table take a lock;
* ``replaceWhere`` on a table that does not exist yet fails, so the first write creates the table;
* Sail loads a table's whole snapshot for each write (0.1-0.2 s on a year-long table): a partition write of at most
  ``ARROW_WRITE_ROWS`` rows into an existing table is collected in Arrow and committed with ``deltalake`` on the
  kept handle instead (about 15 ms);
* Sail writes no checkpoints: every write checkpoints its table's log with ``deltalake`` once it has grown
  (``CHECKPOINT_AFTER_COMMITS``, ``CHECKPOINT_AFTER_BYTES``), and compacts bookkeeping tables appended a few rows
  at a time (``COMPACT_AFTER_FILES``);
* ``cache()``/``persist()`` are accepted but cache nothing and ``localCheckpoint()`` needs a configured
  checkpoint store, so a frame read several times is computed again each time: ``staged`` writes it once to
  scratch Parquet under ``<root>/_staging`` and hands back the read-back frame.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_deltalake import DeltaTableResource
from dagster_deltalake.config import AzureConfig, ClientConfig, GcsConfig, LocalConfig, S3Config
from deltalake import DeltaTable, Field
from pyarrow import fs
from pydantic import Field as ConfigField

from resources import storage
from resources.errors import InvalidTableName
from resources.partition_keys import is_contiguous, parse_days, row_blocks

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

LOG = logging.getLogger("medallion.delta_store")
#: Messages of commit conflicts between concurrent writers: such a write is retried from scratch.
_CONFLICT = re.compile(r"commit|conflict|concurrent|transaction|already exists", re.IGNORECASE)
#: Sail writes no checkpoints, and without one every open of a table replays each commit since the last (weekly)
#: maintenance: a day's run would cost more the longer its tables have lived. So a write checkpoints the log once
#: the commits since its last checkpoint are this many, or hold this many bytes of JSON (a range run's one commit
#: of a year of days is about 1 MB).
CHECKPOINT_AFTER_COMMITS = 10
CHECKPOINT_AFTER_BYTES = 256 << 10
#: A bookkeeping table appended a few rows at a time (the run log: a file per asset step) is compacted once it has
#: more files than this, so reading it opens a few files, not one per step ever run: the run log is read about 10
#: times a run, at about 2 ms a file, and compacting 5 files takes about 17 ms.
COMPACT_AFTER_FILES = 4
#: Open ``deltalake`` handles kept per thread (``delta_table``): loading a year-long table's snapshot costs 10-20 ms,
#: bringing a kept handle up to date about 1 ms, and a day's run opens its tables some 40 times.
HANDLES_KEPT = 32
_HANDLES = threading.local()
_TABLE = re.compile(r"[a-z][a-z0-9_]*/[a-z][a-z0-9_]*")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
OWNER_LOCK = ".owner"
#: Write options of staged scratch, read back once or twice and removed: snappy and no dictionary encoding (the
#: engine's defaults, zstd and dictionaries, cost a range's silver 1-2 s; BENCHMARKS item 31). Sail reads
#: ``dictionary_enabled``, JVM Spark ``parquet.enable.dictionary``; each ignores the other's.
SCRATCH_PARQUET = {"compression": "snappy", "dictionary_enabled": "false", "parquet.enable.dictionary": "false"}
#: This process's scratch folder per lakehouse root, with the open handle that holds its owner lock.
_SCRATCH_OWNERS: dict[str, tuple[str, Any]] = {}
#: A partition write into an existing table of at most this many rows is collected in Arrow and committed with
#: ``deltalake`` on the kept handle (Sail loads the table's snapshot to write: 0.1-0.2 s on a year-long table).
ARROW_WRITE_ROWS = 50_000
#: Writer features ``deltalake`` honours when it writes; a table with another is written by the engine.
ARROW_WRITER_FEATURES = {"appendOnly", "invariants", "checkConstraints", "timestampNtz"}
#: Session setting the Delta writer reads for a commit's ``userMetadata`` (writer option ``userMetadata``).
COMMIT_NOTE_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def _kept_handles() -> OrderedDict[tuple[str, str], tuple[DeltaTable, int, tuple[Any, ...] | None]]:
    """This thread's kept ``deltalake`` handles, least recently used first."""
    if not hasattr(_HANDLES, "kept"):
        _HANDLES.kept = OrderedDict()
    return _HANDLES.kept


def _noted(writer: Any, note: str | None) -> Any:
    """``writer`` with ``note`` as the commit's ``userMetadata``."""
    return writer.option("userMetadata", note) if note is not None else writer


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
    #: the table's version before this write's first commit (-1: it did not exist); a write that adds columns
    #: commits them first, so this is not always ``version - 1``
    version_before: int = -1
    #: ``(name, Arrow type)`` of each column at ``version_before`` (none when the table did not exist)
    columns_before: tuple[tuple[str, str], ...] = ()


#: Reader features that make a table's files alone not its rows (``DeltaTableStore._read_day``); "?": a
#: reader version above 1 that lists none (column mapping of reader version 2).
PLAIN_BLOCKERS = {"deletionVectors", "columnMapping", "?"}


def _spark_schema(handle: DeltaTable) -> StructType:
    """A ``deltalake`` handle's schema in Spark types."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(handle.schema().to_json()))


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


def _nullable(field: Field) -> Field:
    """New columns must be nullable: existing rows have no value for them."""
    return Field(field.name, field.type, nullable=True, metadata=field.metadata)


#: Errors a file system gives when the lakehouse cannot take a write, and how an engine's error text says them.
REFUSED_WRITES = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
                  errno.EROFS: "Read-only file system"}  # fmt: skip


def storage_refusal(exc: BaseException) -> str | None:
    """Why the lakehouse's storage refused a write (no space, over quota, read-only), found in ``exc`` or an
    error it came from (an ``OSError``, or an engine's error text); None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in REFUSED_WRITES:
            return REFUSED_WRITES[current.errno]
        text = str(current)
        found = next((why for why in REFUSED_WRITES.values() if why.lower() in text.lower()), None)
        if found:
            return found
        current = current.__cause__ or current.__context__
    return None


def with_commit_retries(
    write: Callable[[], WriteResult], *, attempts: int, what: str, lock: Callable[[], contextlib.AbstractContextManager]
) -> WriteResult:
    """Run ``write()`` holding ``lock``; on a Delta commit conflict with a concurrent writer, back off and retry."""
    for attempt in range(1, attempts + 1):
        try:
            with lock():
                return write()
        except Exception as exc:
            if attempt == attempts or not _CONFLICT.search(str(exc)):
                raise
            delay = min(0.25 * 2**attempt, 5.0)
            LOG.warning("%s: commit conflict (%d/%d), retrying in %.1fs: %s", what, attempt, attempts, delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _lock_is_free(lock: Path) -> bool:
    """True when nobody holds ``lock`` (its owner process is gone)."""
    try:
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return False


class DeltaTableStore(dg.ConfigurableResource):
    """Path-based Delta tables under one lakehouse root, with partition-safe write verbs.

    ``storage_options`` is the root's typed storage configuration (as in dagster-deltalake's ``DeltaTableResource``;
    secrets as ``dagster.EnvVar``). The default ``LocalConfig`` on an object-store root stands for "from the
    provider's usual variables" (``resources.storage.storage_from_env``).
    """

    root: str = ".lakehouse"
    storage_options: LocalConfig | S3Config | AzureConfig | GcsConfig = ConfigField(
        default_factory=LocalConfig, discriminator="provider"
    )
    client_options: ClientConfig | None = None
    commit_attempts: int = 5

    @classmethod
    def for_root(cls, root: str) -> DeltaTableStore:
        """A store on ``root`` configured from the environment (``dagster.EnvVar`` for each credential that is set)."""
        config, client = storage.storage_from_env(root), storage.client_from_env(root)
        return cls(root=root, storage_options=config, client_options=client)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """On an object-store root, hand the storage configuration to the embedded Sail server (its environment)."""
        if self.is_remote:
            changed = storage.export_engine_environment(self.storage, self.client)
            if changed:  # names only: values are secrets
                LOG.info("object-store settings exported for the embedded engine: %s", ", ".join(changed))

    # -- locations ---------------------------------------------------------------------------------
    @property
    def root_uri(self) -> str:
        """The lakehouse root (the definitions set it from ``MEDALLION_LAKEHOUSE_ROOT``), as the engine is given it."""
        return storage.root_uri(self.root)

    @property
    def is_remote(self) -> bool:
        """True on an object-store root (no file locks there: Dagster pools serialize writers)."""
        return "://" in self.root_uri

    @property
    def storage(self) -> storage.StorageConfig:
        """The storage configuration in force for the root (checked against the root's scheme)."""
        config = self.storage_options
        if self.is_remote and config.provider == "local":
            config = storage.storage_from_env(self.root_uri)
        storage.check_matches(self.root_uri, config)
        return config

    @property
    def client(self) -> ClientConfig | None:
        """HTTP client settings: the configured ones, else from the environment (``AWS_ALLOW_HTTP``)."""
        if self.client_options is not None or not self.is_remote:
            return self.client_options
        return storage.client_from_env(self.root_uri)

    def _options(self) -> dict[str, str] | None:
        return storage.deltalake_options(self.storage, self.client)

    def filesystem(self, uri: str) -> tuple[fs.FileSystem, str]:
        """A pyarrow filesystem for ``uri`` below the root with the store's storage configuration, and its path."""
        return storage.arrow_filesystem(uri, self.storage, self.client)

    def arrow_table(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        filters: list[tuple[str, str, Any]] | None = None,
        partitions: list[tuple[str, str, Any]] | None = None,
        version: int | None = None,
    ) -> pa.Table:
        """Rows of ``table`` in Arrow, read with ``deltalake`` (``filters`` on any column, ``partitions`` to prune
        files; ``version``: as of that commit): the one way the product reads table rows without the engine."""
        return self.arrow_dataset(table, partitions=partitions, version=version).to_table(
            columns=list(columns) if columns is not None else None,
            filter=pq.filters_to_expression(filters) if filters else None,
        )

    def arrow_dataset(
        self, table: str, *, partitions: list[tuple[str, str, Any]] | None = None, version: int | None = None
    ) -> ds.Dataset:
        """``table`` as a pyarrow dataset over pyarrow's native filesystem. ``deltalake``'s default reads through
        Python file objects, whose read-ahead Arrow may release on its own threads after a read has returned: at
        interpreter exit that aborts the process (``terminate called without an active exception``, exit 134)."""
        filesystem, path = self.filesystem(self.table_uri(table))
        handle = self.delta_table(table) if version is None else self._delta_table_at(table, version)
        return handle.to_pyarrow_dataset(
            file_pruning_predicate=partitions, filesystem=fs.SubTreeFileSystem(path, filesystem)
        )

    def table_resource(self, table: str, *, version: int | None = None) -> DeltaTableResource:
        """``table`` as dagster-deltalake's ``DeltaTableResource`` (same storage configuration, ``EnvVar`` secrets
        kept unresolved), optionally pinned to a ``version``: for pandas/Arrow consumers outside the engine."""
        return DeltaTableResource(
            url=self.table_uri(table), storage_options=self.storage, client_options=self.client, version=version
        )

    def table_uri(self, table: str) -> str:
        """Where ``layer/name`` lives."""
        if not _TABLE.fullmatch(table):
            raise InvalidTableName(f"table {table!r} is not 'layer/name' in lower-case snake case")
        return f"{self.root_uri}/{table}"

    @contextlib.contextmanager
    def table_lock(self, table: str):
        """Exclusive writer lock on ``table`` across threads and processes (local roots).

        Sail commits two concurrent partition overwrites without detecting the conflict (rows end up twice),
        so writers of one table are serialized here; on object storage, Dagster pools (one writer per table,
        ``dagster.yaml``) do the same between runs.
        """
        if self.is_remote:
            yield
            return
        locks = Path(self.root_uri) / "_locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{table.replace('/', '__')}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def list_tables(self) -> list[str]:
        """Every ``layer/name`` Delta table under the root."""
        if self.is_remote:
            return self._list_remote_tables()
        root = Path(self.root_uri)
        if not root.is_dir():
            return []
        names = (f"{p.parent.parent.name}/{p.parent.name}" for p in root.glob("*/*/_delta_log"))
        return sorted(n for n in names if _TABLE.fullmatch(n))

    def _list_remote_tables(self) -> list[str]:
        filesystem, root = self.filesystem(self.root_uri)
        found = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True, recursive=False))
        names = []
        for layer in (i for i in found if i.type == fs.FileType.Directory and _COLUMN.fullmatch(i.base_name)):
            tables = filesystem.get_file_info(fs.FileSelector(layer.path, recursive=False))
            names += [f"{layer.base_name}/{t.base_name}" for t in tables if t.type == fs.FileType.Directory]
        candidates = [n for n in names if _TABLE.fullmatch(n)]
        logs = filesystem.get_file_info([f"{root}/{n}/_delta_log" for n in candidates])
        return sorted(n for n, log in zip(candidates, logs, strict=True) if log.type == fs.FileType.Directory)

    # -- reads ---------------------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(table), storage_options=self._options())

    def delta_table(self, table: str) -> DeltaTable:
        """The delta-rs handle of ``table`` at its latest version (history, maintenance, small reads).

        A handle is kept per thread and brought up to date (``update_incremental``: the commits since) rather than
        loaded again, once the next commit's file exists (a look at one file, where an update lists the log). It is
        loaded afresh when the commit it was last at has changed or gone: a table removed and created again under
        the same path.
        """
        uri, options = self.table_uri(table), self._options()
        kept = _kept_handles()
        key = (uri, json.dumps(options, sort_keys=True))
        handle, version, stamp = kept.pop(key, (None, -1, None))
        fresh = handle is None or self._commit_stamp(uri, version) != stamp
        if not fresh and self._commit_stamp(uri, version + 1) != (None, None):
            try:
                handle.update_incremental()
            except Exception as exc:  # e.g. the log was cleaned up past the handle's version: load it afresh
                LOG.debug("%s: reloading the Delta handle: %s", table, exc)
                fresh = True
        if fresh:
            handle = DeltaTable(uri, storage_options=options)
        if fresh or handle.version() != version:
            version, stamp = handle.version(), self._commit_stamp(uri, handle.version())
        kept[key] = (handle, version, stamp)
        while len(kept) > HANDLES_KEPT:
            kept.popitem(last=False)
        return handle

    def _delta_table_at(self, table: str, version: int) -> DeltaTable:
        """A delta-rs handle of ``table`` as of commit ``version`` (not kept)."""
        return DeltaTable(self.table_uri(table), version=version, storage_options=self._options())

    def _commit_stamp(self, uri: str, version: int) -> tuple[Any, ...]:
        """Size and modification time of commit ``version`` of the table at ``uri`` (both None when it is gone): whether
        a kept handle still follows the same table, not one removed and created again."""
        filesystem, path = self.filesystem(f"{uri}/_delta_log/{version:020d}.json")
        info = filesystem.get_file_info(path)
        return (info.size, info.mtime_ns) if info.type == fs.FileType.File else (None, None)

    def version(self, table: str) -> int | None:
        """The current Delta version of ``table``, or None when it does not exist."""
        return self.delta_table(table).version() if self.exists(table) else None

    def partition_column(self, table: str) -> str | None:
        """The (single) partition column of ``table``, or None when it is unpartitioned."""
        columns = self.delta_table(table).metadata().partition_columns
        return columns[0] if columns else None

    def columns(self, table: str) -> list[tuple[str, str]]:
        """``(name, Arrow type)`` of each column of ``table``."""
        return [(f.name, str(f.type)) for f in pa.schema(self.delta_table(table).schema().to_arrow())]

    def spark_schema(self, table: str) -> StructType:
        """The table's schema in Spark types, from the kept ``deltalake`` handle: no engine round trip (Sail loads
        the table's snapshot to analyse a read: 7-10 ms on a year-long table)."""
        return _spark_schema(self.delta_table(table))

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
        """``table`` as a DataFrame, optionally only the given day partitions (one day: see ``_read_day``)."""
        if days is None:
            return spark.read.format("delta").load(self.table_uri(table))
        if partition_column is None:
            raise ValueError("reading by days needs the partition column")
        days = list(days)
        predicate = partition_predicate(partition_column, days)  # validates the column and every key
        parsed = parse_days(days)
        if len(parsed) == 1 and (one_day := self._read_day(spark, table, partition_column, parsed[0])) is not None:
            return one_day
        return spark.read.format("delta").load(self.table_uri(table)).filter(predicate)

    def _read_day(self, spark: SparkSession, table: str, partition_column: str, day: date) -> DataFrame | None:
        """One day of ``table`` from its Parquet files at the kept handle's version, the day's value added: Sail
        loads a table's whole snapshot for each Delta read (23 ms on a year-long table; the day's files, 4 ms).
        Columns older files lack read as nulls, as in a Delta read. None when the table's files alone are not its
        rows (deletion vectors, column mapping): read it through Delta."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import StructField, StructType

        handle = self.delta_table(table)
        protocol = handle.protocol()
        if protocol.min_reader_version > 1 and set(protocol.reader_features or ["?"]) & PLAIN_BLOCKERS:
            return None
        files = handle.file_uris(file_pruning_predicate=[(partition_column, "=", day.isoformat())])
        schema = _spark_schema(handle)
        # without field metadata: Sail cannot parse its own ("SPARK::metadata::json") in a schema sent to it
        data = StructType([StructField(f.name, f.dataType, f.nullable) for f in schema if f.name != partition_column])
        df = spark.read.schema(data).parquet(*files) if files else spark.createDataFrame([], data)
        value = F.lit(day.isoformat()).cast(schema[partition_column].dataType)
        return df.withColumn(partition_column, value).select(
            *(F.col(f"`{n.replace('`', '``')}`") for n in schema.names)
        )

    # -- scratch -------------------------------------------------------------------------------------
    def scratch_folder(self) -> str:
        """This process's scratch folder, ``<root>/_staging/<host>-<pid>-<id>``.

        On a local root the folder holds ``.owner``, locked for as long as the process lives: the kernel
        releases the lock when the process dies, however it dies, so the next run can tell dead scratch from
        live (``remove_dead_scratch``).
        """
        base = f"{self.root_uri}/_staging"
        owned = _SCRATCH_OWNERS.get(base)
        if owned is None:
            folder = f"{base}/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            handle = None
            if not self.is_remote:
                Path(folder).mkdir(parents=True, exist_ok=True)
                handle = open(Path(folder) / OWNER_LOCK, "w")  # noqa: SIM115 - held for the process's life
                fcntl.flock(handle, fcntl.LOCK_EX)
            owned = _SCRATCH_OWNERS[base] = (folder, handle)
        return owned[0]

    @contextlib.contextmanager
    def scratch(self, name: str) -> Iterator[str]:
        """A fresh scratch location for ``name`` under this process's scratch folder; removed on exit."""
        if not _COLUMN.fullmatch(name):
            raise InvalidTableName(f"staging name {name!r} is not a plain identifier")
        uri = f"{self.scratch_folder()}/{name}-{uuid.uuid4().hex[:12]}"
        try:
            yield uri
        finally:
            self._remove_scratch(uri)

    @contextlib.contextmanager
    def staged(self, df: DataFrame | Sequence[DataFrame], *, name: str) -> Iterator[DataFrame]:
        """Compute ``df`` once into scratch Parquet and yield it read back; the scratch is removed on exit.

        For a frame that several actions read (gate statistics, quarantine, publish): on Sail each action
        would otherwise recompute it from its sources, window sorts included. A sequence of frames of one
        schema is computed part by part into the same scratch (one query each: memory follows the part).
        """
        parts = list(df) if isinstance(df, list | tuple) else [df]
        with self.scratch(name) as uri:
            for i, part in enumerate(parts):
                part.write.mode("append" if i else "overwrite").options(**SCRATCH_PARQUET).parquet(uri)
            yield parts[0].sparkSession.read.schema(parts[0].schema).parquet(uri)

    def _remove_scratch(self, uri: str) -> None:
        try:
            if "://" not in uri:
                shutil.rmtree(uri, ignore_errors=not Path(uri).exists())
                return
            filesystem, path = self.filesystem(uri)
            if filesystem.get_file_info(path).type != fs.FileType.NotFound:
                filesystem.delete_dir(path)
        except Exception as exc:  # never read again; the next run removes what is left
            LOG.warning("could not remove scratch %s: %s", uri, exc)

    def remove_dead_scratch(self, *, unowned_after_hours: float = 24) -> list[str]:
        """Remove scratch folders whose process has died (its ``.owner`` lock is free), and folders without an
        owner (object storage, older versions) older than ``unowned_after_hours``; return what was removed."""
        if self.is_remote:
            return self._remove_stale_remote_scratch(unowned_after_hours)
        scratch = Path(self.root_uri) / "_staging"
        if not scratch.is_dir():
            return []
        cutoff = time.time() - unowned_after_hours * 3600
        removed = []
        for path in scratch.iterdir():
            lock = path / OWNER_LOCK
            dead = _lock_is_free(lock) if lock.exists() else path.stat().st_mtime < cutoff
            if dead:
                self._remove_scratch(str(path))
                removed.append(path.name)
        return sorted(removed)

    def _remove_stale_remote_scratch(self, unowned_after_hours: float) -> list[str]:
        """Object storage has no locks: a scratch folder whose newest object is older than the cutoff is dead
        (a live step writes its scratch within minutes); this process's own folder is never removed."""
        filesystem, scratch = self.filesystem(f"{self.root_uri}/_staging")
        own = _SCRATCH_OWNERS.get(f"{self.root_uri}/_staging", ("", None))[0].rpartition("/")[2]
        cutoff = time.time() - unowned_after_hours * 3600
        removed = []
        for folder in filesystem.get_file_info(fs.FileSelector(scratch, allow_not_found=True)):
            if folder.type != fs.FileType.Directory or folder.base_name == own:
                continue
            files = filesystem.get_file_info(fs.FileSelector(folder.path, recursive=True))
            newest = max((f.mtime.timestamp() for f in files if f.mtime is not None), default=0.0)
            if newest < cutoff:
                self._remove_scratch(f"{self.root_uri}/_staging/{folder.base_name}")
                removed.append(folder.base_name)
        return sorted(removed)

    # -- writes --------------------------------------------------------------------------------------
    def replace_partitions(
        self,
        table: str,
        df: DataFrame,
        *,
        partition_column: str,
        days: Iterable[str | date],
        note: str | None = None,
    ) -> WriteResult:
        """Replace exactly ``days`` of ``table`` with ``df``'s rows for those days.

        Rows of ``df`` outside ``days`` are filtered out first (Sail does not check them). A day with no
        rows in ``df`` ends up empty, so re-running a partition never leaves stale rows behind. ``note`` is
        stored in the commit (``userMetadata``), read back with ``commit_notes``.
        """
        parsed = parse_days(days)
        predicate = partition_predicate(partition_column, parsed)
        keys = tuple(d.isoformat() for d in parsed)
        rows = df.filter(predicate)
        uri = self.table_uri(table)
        # collected only for a table deltalake writes as the engine would (checked again under the lock)
        small = (
            self._collect_small(rows)
            if self.exists(table) and self._deltalake_writes(table, partition_column)
            else None
        )

        def write() -> WriteResult:
            if not self.exists(table):
                _noted(rows.write, note).format("delta").mode("overwrite").partitionBy(partition_column).save(uri)
                return WriteResult(table, uri, self.version(table) or 0, "create", keys, tuple(rows.columns))
            if small is not None and self._deltalake_writes(table, partition_column):
                added = self._replace_with_deltalake(table, small, partition_column, keys, note)
                return WriteResult(table, uri, self.version(table) or 0, "replace_partitions", keys, added)
            aligned, added = self._align_schema(table, rows)
            _noted(aligned.write, note).format("delta").mode("overwrite").option("replaceWhere", predicate).save(uri)
            return WriteResult(table, uri, self.version(table) or 0, "replace_partitions", keys, added)

        return self._commit(table, write, what=f"replace {table} {keys[0]}..{keys[-1]}")

    @staticmethod
    def _collect_small(rows: DataFrame) -> pa.Table | None:
        """``rows`` in Arrow when they are at most ``ARROW_WRITE_ROWS`` (one engine query), else None."""
        collected = rows.limit(ARROW_WRITE_ROWS + 1).toArrow()
        return collected if collected.num_rows <= ARROW_WRITE_ROWS else None

    def _deltalake_writes(self, table: str, partition_column: str) -> bool:
        """Whether ``deltalake`` writes ``table`` as the engine would: its protocol asks nothing
        ``ARROW_WRITER_FEATURES`` lacks, and its day column is a date (``deltalake`` compares no text with a date)."""
        handle = self.delta_table(table)
        types = {f.name: f.type for f in handle.schema().fields}
        if getattr(types.get(partition_column), "type", None) != "date":
            return False
        protocol = handle.protocol()
        if protocol.min_writer_version < 7:
            return protocol.min_writer_version <= 3
        return set(protocol.writer_features or ["?"]) <= ARROW_WRITER_FEATURES

    def _replace_with_deltalake(
        self, table: str, data: pa.Table, partition_column: str, days: Sequence[str], note: str | None
    ) -> tuple[str, ...]:
        """Replace ``days`` with ``data`` on the kept handle (new columns added first, columns ``data`` lacks filled
        with nulls, types cast to the table's; no commit when both are empty, as the engine); the added columns."""
        from deltalake import CommitProperties, write_deltalake

        added = self._evolve_schema(table, [Field.from_arrow(f) for f in data.schema])
        handle = self.delta_table(table)
        if not data.num_rows and not handle.file_uris(file_pruning_predicate=[(partition_column, "in", list(days))]):
            return added
        target = pa.schema(handle.schema().to_arrow())
        given = {name.lower(): i for i, name in enumerate(data.column_names)}
        columns = []
        for column in target:
            index = given.get(column.name.lower())
            if index is None:
                columns.append(pa.nulls(data.num_rows, column.type))
                continue
            try:
                columns.append(data.column(index).cast(column.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise TypeError(f"{table}: column {column.name} cannot be written as {column.type}: {exc}") from exc
        aligned = pa.Table.from_arrays(columns, schema=target)
        committed = CommitProperties(custom_metadata={"userMetadata": note}) if note is not None else None
        write_deltalake(
            handle, aligned, mode="overwrite", predicate=partition_predicate(partition_column, days),
            commit_properties=committed,
            storage_options=self._options(),
        )  # fmt: skip
        return added

    def append(self, table: str, df: DataFrame) -> WriteResult:
        """Append ``df`` to ``table`` (created if absent; new columns merged into the schema)."""
        uri = self.table_uri(table)

        def write() -> WriteResult:
            df.write.format("delta").mode("append").option("mergeSchema", "true").save(uri)
            return WriteResult(table, uri, self.version(table) or 0, "append")

        return self._commit(table, write, what=f"append {table}")

    def overwrite(self, table: str, df: DataFrame, *, note: str | None = None) -> WriteResult:
        """Replace the whole of an unpartitioned ``table`` (schema may change)."""
        uri = self.table_uri(table)

        def write() -> WriteResult:
            _noted(df.write, note).format("delta").mode("overwrite").option("overwriteSchema", "true").save(uri)
            return WriteResult(table, uri, self.version(table) or 0, "overwrite")

        return self._commit(table, write, what=f"overwrite {table}")

    def merge(
        self,
        table: str,
        df: DataFrame,
        *,
        keys: Sequence[str],
        delete_unmatched: bool = False,
        note: str | None = None,
    ) -> WriteResult:
        """Upsert ``df`` into ``table`` by ``keys`` with SQL ``MERGE INTO`` (creates the table if absent).

        ``delete_unmatched`` also deletes target rows with no source row (``WHEN NOT MATCHED BY SOURCE``),
        for sources that carry the table's complete new state.
        """
        if not keys:
            raise ValueError("merge needs at least one key column")
        for key in keys:
            if not _COLUMN.fullmatch(key):
                raise InvalidTableName(f"merge key {key!r} is not a plain identifier")
        uri = self.table_uri(table)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        extra = " WHEN NOT MATCHED BY SOURCE THEN DELETE" if delete_unmatched else ""

        def write() -> WriteResult:
            if not self.exists(table):
                _noted(df.write, note).format("delta").mode("overwrite").save(uri)
                return WriteResult(table, uri, self.version(table) or 0, "create")
            spark = df.sparkSession
            view = f"medallion_merge_{uuid.uuid4().hex}"
            df.createOrReplaceTempView(view)
            try:
                if note is not None:  # MERGE takes no writer options: the commit note comes from the session
                    spark.conf.set(COMMIT_NOTE_CONF, note)
                spark.sql(
                    f"MERGE INTO delta.`{uri.replace('`', '``')}` AS t USING `{view}` AS s ON {on} "
                    f"WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *{extra}"
                ).collect()
            finally:
                spark.catalog.dropTempView(view)
                if note is not None:
                    spark.conf.unset(COMMIT_NOTE_CONF)
            return WriteResult(table, uri, self.version(table) or 0, "merge")

        return self._commit(table, write, what=f"merge {table}")

    def _commit(self, table: str, write: Callable[[], WriteResult], *, what: str, compact: bool = False) -> WriteResult:
        """``write()`` holding the table's lock, retried on a commit conflict; then the log kept short (``compact``:
        small files merged too, for bookkeeping tables)."""

        def written() -> WriteResult:
            before = self.version(table)
            columns = tuple(self.columns(table)) if before is not None else ()  # the kept handle: no versioned open
            result = replace(write(), version_before=-1 if before is None else before, columns_before=columns)
            self._keep_log_short(table, result.version, compact=compact)
            return result

        return with_commit_retries(
            written, attempts=self.commit_attempts, what=what, lock=lambda: self.table_lock(table)
        )

    def _keep_log_short(self, table: str, version: int, *, compact: bool) -> None:
        """Compact a table of many small files (``compact``) and checkpoint a log grown long since its last
        checkpoint. Never fails the write before it: a failure is logged, and the next write tries again."""
        try:
            handle = self.delta_table(table) if compact else None
            if handle is not None and len(handle.file_uris()) > COMPACT_AFTER_FILES:
                handle.optimize.compact()  # the kept handle moves on to the compaction's version
                version = handle.version()
            if self._log_is_long(table, version):
                self.delta_table(table).create_checkpoint()
        except Exception as exc:
            LOG.warning("%s: could not compact or checkpoint (the next write tries again): %s", table, exc)

    def _log_is_long(self, table: str, version: int) -> bool:
        """Whether the commits after the last checkpoint, up to ``version``, reach ``CHECKPOINT_AFTER_COMMITS``
        or ``CHECKPOINT_AFTER_BYTES``."""
        filesystem, log = self.filesystem(f"{self.table_uri(table)}/_delta_log")
        last = -1
        marker = filesystem.get_file_info(f"{log}/_last_checkpoint")
        if marker.type == fs.FileType.File:
            with filesystem.open_input_stream(marker.path) as handle:
                last = int(json.loads(handle.read())["version"])
        since = range(last + 1, version + 1)
        if len(since) >= CHECKPOINT_AFTER_COMMITS:
            return True
        commits = filesystem.get_file_info([f"{log}/{v:020d}.json" for v in since])
        return sum(c.size or 0 for c in commits) >= CHECKPOINT_AFTER_BYTES

    def append_rows(self, table: str, rows: Sequence[dict[str, Any]] | pa.Table) -> WriteResult:
        """Append a few rows with ``deltalake`` (bookkeeping tables; no engine needed)."""
        from deltalake import write_deltalake

        uri = self.table_uri(table)
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))

        def write() -> WriteResult:
            target = self.delta_table(table) if self.exists(table) else uri  # the kept handle moves on with it
            write_deltalake(target, data, mode="append", schema_mode="merge", storage_options=self._options())
            return WriteResult(table, uri, self.version(table) or 0, "append")

        return self._commit(table, write, what=f"append {table}", compact=True)

    # -- commit notes, marks and per-day sizes (deltalake: no engine needed) -----------------------------------
    def commit_notes(self, table: str, key: str, *, limit: int) -> list[tuple[int, list[dict[str, Any]]]]:
        """``(version, notes[key])`` of the latest ``limit`` commits of ``table`` whose note carries ``key``."""
        found = []
        for commit in self.history(table, limit):
            raw = commit.get("userMetadata")
            try:
                note = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                continue
            if isinstance(note, dict) and isinstance(note.get(key), list):
                found.append((int(commit["version"]), note[key]))
        return found

    def marked_version(self, table: str, mark: str) -> int | None:
        """The version of ``table`` last kept as ``mark`` (``set_mark``); None when there is none, it cannot be
        read, or that commit is not the one marked any more (the table was removed and created again)."""
        filesystem, path = self.filesystem(self._mark_uri(table, mark))
        try:
            with filesystem.open_input_stream(path) as handle:
                kept = json.loads(handle.read())
            version = int(kept["version"])
            stamp = self._commit_stamp(self.table_uri(table), version)
            return version if list(stamp) == kept["stamp"] and None not in stamp else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:  # torn or foreign: as if never marked
            LOG.warning("%s: ignoring its mark %r (%s)", table, mark, exc)
            return None

    def set_mark(self, table: str, mark: str, version: int) -> None:
        """Keep ``version`` of ``table`` as ``mark``: a reader's place in the table's commits, for the next
        process, under ``<root>/_marks/<mark>/``. Best effort: a mark not kept only costs the next reader more."""
        stamp = self._commit_stamp(self.table_uri(table), version)
        filesystem, path = self.filesystem(self._mark_uri(table, mark))
        try:
            filesystem.create_dir(path.rpartition("/")[0], recursive=True)
            with filesystem.open_output_stream(path) as handle:
                handle.write(json.dumps({"version": version, "stamp": list(stamp)}).encode())
        except OSError as exc:
            LOG.warning("%s: could not keep its mark %r at version %d: %s", table, mark, version, exc)

    def _mark_uri(self, table: str, mark: str) -> str:
        self.table_uri(table)  # a valid table name, or InvalidTableName
        if not _COLUMN.fullmatch(mark):
            raise ValueError(f"mark {mark!r} is not a plain name")
        return f"{self.root_uri}/_marks/{mark}/{table.replace('/', '__')}.json"

    def day_rows(self, table: str, *, partition_column: str, days: Iterable[str]) -> dict[str, int]:
        """Rows each of ``days`` holds now, from the Delta log's file statistics (days without rows: 0)."""
        wanted = {d: 0 for d in days}
        if not wanted or not self.exists(table):
            return wanted
        actions = pa.table(self.delta_table(table).get_add_actions(flatten=True))
        needed = [f"partition.{partition_column}", "num_records"]
        if not set(needed) <= set(actions.column_names):
            return wanted
        columns = actions.select(needed).to_pydict()  # not every column's statistics: 25 ms a year
        for value, rows in zip(*columns.values(), strict=True):
            day = str(value)
            if day in wanted:
                wanted[day] += int(rows or 0)
        return wanted

    def day_blocks(self, tables: Iterable[str], days: Sequence[str], *, max_rows: int) -> list[list[str]]:
        """``days`` cut into blocks of at most ``max_rows`` rows of ``tables`` (summed per day from their Delta
        logs; a table that does not exist or is not partitioned counts nothing)."""
        rows: dict[str, int] = {}
        for table in tables:
            column = self.exists(table) and self.partition_column(table)
            if column:
                for day, n in self.day_rows(table, partition_column=column, days=days).items():
                    rows[day] = rows.get(day, 0) + n
        return row_blocks(days, rows, max_rows)

    def first_day(self, table: str, *, partition_column: str) -> date | None:
        """The earliest day partition of ``table`` holding a file, from the Delta log (None: no table or no file)."""
        if not self.exists(table):
            return None
        actions = pa.table(self.delta_table(table).get_add_actions(flatten=True))
        column = f"partition.{partition_column}"
        values = actions.column(column).to_pylist() if column in actions.column_names else []
        return min((date.fromisoformat(str(v)) for v in values if v is not None), default=None)

    def day_counts(
        self, table: str, *, partition_column: str, days: Iterable[str], column: str
    ) -> dict[str, dict[Any, int]]:
        """The rows of each value of ``column`` in each of ``days`` (read with ``deltalake``: that column only)."""
        wanted = sorted(set(days))
        if not wanted or not self.exists(table):
            return {}
        rows = self.arrow_table(table, filters=[(partition_column, "in", wanted)], columns=[partition_column, column])
        counts = rows.group_by([partition_column, column]).aggregate([([], "count_all")]).to_pydict()
        found: dict[str, dict[Any, int]] = {}
        for day, value, n in zip(counts[partition_column], counts[column], counts["count_all"], strict=True):
            found.setdefault(str(day), {})[value] = n
        return found

    # -- maintenance (deltalake: Sail has no OPTIMIZE / VACUUM) ------------------------------------------
    def maintain(self, table: str, *, retention_hours: int) -> dict[str, Any]:
        """Vacuum files unreferenced for ``retention_hours``, compact small files, then write a checkpoint (Sail
        writes none, so without one every read replays the whole commit log); return what was done."""
        with self.table_lock(table):
            removed = self.delta_table(table).vacuum(
                retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False
            )
            dt = self.delta_table(table)
            compacted = dt.optimize.compact()
            dt = self.delta_table(table)
            dt.create_checkpoint()
        return {
            "files_vacuumed": len(removed),
            "files_added": int(compacted.get("numFilesAdded", 0)),
            "files_removed": int(compacted.get("numFilesRemoved", 0)),
            "version": dt.version(),
            "checkpoint_version": dt.version(),
        }

    def _evolve_schema(self, table: str, incoming: Sequence[Field]) -> tuple[str, ...]:
        """Refuse a column the table cannot take whichever way it is written (no type; more decimal places than
        the table's column: the engine would round them), then add the fields of ``incoming`` the table lacks (by
        name, any case) as nullable columns, committed with ``deltalake`` before the rows; their names."""
        known = {f.name.lower(): f.type for f in self.delta_table(table).schema().fields}
        for f in incoming:
            kind, was = getattr(f.type, "type", None), getattr(known.get(f.name.lower()), "type", None)
            if kind == "void":
                raise TypeError(f"{table}: column {f.name} has no type (NULL): cast it to a type before writing")
            scale, kept = _DECIMAL.fullmatch(kind or ""), _DECIMAL.fullmatch(was or "")
            if scale and kept and int(scale[2]) > int(kept[2]):
                raise TypeError(f"{table}: column {f.name} is {kind}, the table's {was}: its values would be rounded")
        new = [f for f in incoming if f.name.lower() not in known]
        if new:
            self.delta_table(table).alter.add_columns([_nullable(f) for f in new])
        return tuple(f.name for f in new)

    def _align_schema(self, table: str, df: DataFrame) -> tuple[DataFrame, tuple[str, ...]]:
        """Add ``df``'s new columns to the table schema; fill the table's columns ``df`` lacks with nulls."""
        from pyspark.sql import functions as F

        uri = self.table_uri(table)
        current = self.spark_schema(table)
        incoming = df.schema  # one analysis round-trip; ``df.columns`` would be another each time
        # Sail neither merges schemas on replaceWhere nor commits an empty schema-merging append, and it silently
        # drops unknown columns on overwrite: they are added with deltalake first, then checked.
        added = self._evolve_schema(table, [Field.from_json(json.dumps(f.jsonValue())) for f in incoming.fields])
        if added:
            now = {f.name.lower() for f in df.sparkSession.read.format("delta").load(uri).schema.fields}
            if not {c.lower() for c in added} <= now:
                raise RuntimeError(f"{table}: could not add columns {added} to the Delta schema")
        present = {f.name.lower() for f in incoming.fields}
        missing = [f for f in current.fields if f.name.lower() not in present]
        if missing:
            df = df.select("*", *(F.lit(None).cast(f.dataType).alias(f.name) for f in missing))
        return df, added

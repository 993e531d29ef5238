"""Dagster's instance storage, kept open and written in batches: the bookkeeping of a run must not outweigh its work.

Dagster's SQLite storages build a new SQLAlchemy engine and open a new connection for every storage call, and
dagster-postgres opens a new connection for every call outside the webserver. On this machine that was about
25 ms an event on SQLite (SQL compiled again each time, since the compiled-statement cache lives on the engine,
and a WAL checkpoint whenever a database's last connection closes), and 13.7 ms a connection on PostgreSQL (TCP
and SCRAM) against 0.4 ms a query. A 365-day range run writes about 2,200 per-partition events.

* :class:`PooledSqliteStorage` is Dagster's SQLite storage (same files, schema and migrations; the stock classes
  read it) with one engine per database and process: the runs, schedules and event-log index databases keep a
  connection open; so do the most recent run shards, each checkpointed after use, because the webserver follows
  a live run by watching its shard's ``.db`` file, which a write left in the WAL would not touch. Its event log
  writes a batch of a run's events (asset events, check evaluations) in one transaction per shard.
* :class:`PooledPostgresStorage` is dagster-postgres's storage with one pooled, pre-pinged connection per process,
  and an event log that writes such a batch in one transaction (dagster-postgres batches only materializations
  and observations, and not atomically).
* :class:`MedallionInstance` (``instance_class`` in both ``dagster.yaml`` files) has the pooled SQLite storage as
  its default and turns on Dagster's event batches.
* Every pool is fork-safe: a child process opens its own connections.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import groupby
from typing import Any

import yaml
from dagster import DagsterInstance
from dagster._config import StringSource
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.auth import PgTokenProvider
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

# Run shards a process keeps open at once: a run worker writes one; the webserver and daemon read many.
OPEN_RUN_SHARDS = 8
# Events Dagster batches (one range run's per-partition events) written at most this many at a time.
EVENT_BATCH_SIZE = 1000
# A pooled PostgreSQL connection is replaced after an hour (as the webserver's), before a server or proxy drops it.
PG_POOL_RECYCLE_SECONDS = 3600
# Connections beyond the one kept open, for threads that need one at the same moment (the daemon runs several).
PG_MAX_OVERFLOW = 10


def fork_safe(engine: Engine) -> Engine:
    """A pooled connection opened before a fork is never used after it: the child opens its own (SQLAlchemy's way)."""

    def record_pid(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    def check_pid(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info["pid"] != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None  # leave the parent's connection open
            raise DisconnectionError(f"connection opened by pid {record.info['pid']}, checked out in {os.getpid()}")

    event.listen(engine, "connect", record_pid)
    event.listen(engine, "checkout", check_pid)
    return engine


def sqlite_engine(conn_string: str) -> Engine:
    """A pooled, fork-safe engine on one SQLite database (SQLAlchemy pools file databases; Dagster opts out)."""
    return fork_safe(create_engine(conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}))


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class KeptEngine:
    """Mixed in before Dagster's SQLite run or schedule storage: one engine per process for its one database."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]  # the storage class after this one
        self._engine = sqlite_engine(conn_string)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)  # type: ignore[attr-defined]

    @contextmanager
    def connect(self, run_id: str | None = None) -> Iterator[Connection]:
        with transaction(self._engine) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


class PooledSqliteRunStorage(KeptEngine, SqliteRunStorage):
    """Dagster's SQLite run storage on one engine per process."""


class PooledSqliteScheduleStorage(KeptEngine, SqliteScheduleStorage):
    """Dagster's SQLite schedule (sensor and tick) storage on one engine per process."""


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log with the index and the most recent run shards kept open."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._batch = threading.local()  # the connections of a batch this thread is writing
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls(inst_data=inst_data, **config_value)

    def _shard_engine(self, shard: str) -> Engine:
        """The shard's engine, most recently used last; the least recently used run shard is closed past the cap."""
        engine = self._engines.pop(shard, None) or sqlite_engine(self.conn_string_for_shard(shard))
        self._engines[shard] = engine
        run_shards = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in run_shards[: max(0, len(run_shards) - OPEN_RUN_SHARDS)]:
            self._engines.pop(name).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        held = getattr(self._batch, "connections", {}).get(shard)
        if held is not None:  # inside this thread's store_event_batch: its open transaction on the shard
            yield held
            return
        with self._db_lock, self._transaction(shard) as conn:
            yield conn

    @contextmanager
    def _transaction(self, shard: str) -> Iterator[Connection]:
        """A transaction on the shard's kept connection (the caller holds ``_db_lock``); a run shard is
        checkpointed after it."""
        engine = self._shard_engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn:
            with conn.begin():
                yield conn
            if shard != INDEX_SHARD_NAME:
                # Move the write from the WAL into <run_id>.db, whose change the webserver's watcher waits for.
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """One run's batch of events (a range run's per-partition plans and materializations, per-day check
        evaluations) in one transaction per shard, not two or three per event.

        Each event is stored by :meth:`store_event`, so it gets exactly the rows it gets alone; its connections
        are the batch's open transactions on the run shard and the index. A failure rolls the whole batch back
        (Dagster then stores it event by event).
        """
        run_ids = {e.run_id for e in events}
        run_id = run_ids.pop() if len(run_ids) == 1 else None
        if not run_id:
            super().store_event_batch(events)
            return
        with self._db_lock, self._transaction(run_id) as run, self._transaction(INDEX_SHARD_NAME) as index:
            self._batch.connections = {run_id: run, INDEX_SHARD_NAME: index}
            try:
                for event in events:
                    self.store_event(event)
            finally:
                self._batch.connections = {}

    def _close_run_shards(self) -> None:
        with self._db_lock:
            for name in [name for name in self._engines if name != INDEX_SHARD_NAME]:
                self._engines.pop(name).dispose()

    def wipe(self) -> None:
        self._close_run_shards()  # wipe deletes the shard files: no connection may keep writing to a deleted one
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite instance storage (``storage: sqlite``), files and layout unchanged, with pooled engines."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": StringSource}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        mkdir_p(config_value["base_dir"])
        return cls(config_value["base_dir"], inst_data=inst_data)


class MedallionInstance(DagsterInstance):
    """The Dagster instance of ``dagster.yaml`` and ``deploy/dagster.yaml`` (``instance_class``).

    * Its default storage is :class:`PooledSqliteStorage` in the instance's own folder (``DAGSTER_HOME``, or
      ``DagsterInstance.from_config(path)``), as Dagster's default SQLite storage; a ``storage`` key still wins.
    * It writes the per-partition events Dagster marks as one batch (a range run's planned events at its
      creation, an asset's per-day materializations) through the storage's ``store_event_batch``, up to
      ``EVENT_BATCH_SIZE`` at a time; ``DAGSTER_EVENT_BATCH_SIZE`` overrides it (0: one write per event).
    """

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        storage = yaml.dump({"base_dir": base_dir}, default_flow_style=False)
        return {
            **InstanceRef.config_defaults(base_dir),
            "storage": ConfigurableClassData(__name__, "PooledSqliteStorage", storage),
        }

    def _get_event_batch_size(self) -> int:
        return int(os.environ.get("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE))


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """dagster-postgres's event log, writing a batch of a run's events in one transaction on one connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._batch = threading.local()  # the connection of a batch this thread is writing
        super().__init__(*args, **kwargs)

    def _connect(self) -> AbstractContextManager[Connection]:
        held = getattr(self._batch, "connection", None)
        return nullcontext(held) if held is not None else super()._connect()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """One run's batch (plans, materializations, check evaluations) in one transaction.

        Each run of consecutive asset events is one insert, each event then getting the index rows
        :meth:`store_event` gives it; any other event goes through :meth:`store_event` on the batch's connection.
        A failure rolls the whole batch back (Dagster then stores it event by event): none is stored twice.
        """
        with super()._connect() as conn:
            conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                self._batch.connection = conn
                try:
                    for is_asset_event, group in groupby(events, key=_is_asset_event):
                        if is_asset_event:
                            self._store_asset_events(conn, list(group))
                        else:
                            for entry in group:
                                self.store_event(entry)
                finally:
                    self._batch.connection = None

    def _store_asset_events(self, conn: Connection, events: list[EventLogEntry]) -> None:
        insert = self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
        event_ids = [int(row[0]) for row in conn.execute(insert).fetchall()]  # in insertion order
        self._store_asset_event_tags(conn, events, event_ids)
        for entry, event_id in zip(events, event_ids, strict=True):
            self._store_asset_event(conn, entry, event_id)


def _is_asset_event(event: EventLogEntry) -> bool:
    """Whether :meth:`store_event` indexes the event as an asset event (its tags and the asset's row)."""
    return bool(
        event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.get_dagster_event().asset_key
    )


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage (same config as ``storage: postgres``) on one pooled engine per process.

    dagster-postgres opens a new connection for every storage call outside the webserver (``NullPool``): TCP and
    SCRAM authentication each time, 13.7 ms here against 0.4 ms for a query. Here the run, event-log and schedule
    storages share one engine per process that keeps one connection open (more, up to ``PG_MAX_OVERFLOW``, only
    while threads need them at once), checks it before use (a connection the server dropped is replaced, not
    failed), replaces it hourly, and is fork-safe. No statement timeout is set, as in dagster-postgres.
    """

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: PgTokenProvider | None = None,
    ) -> None:
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        storages = (PostgresRunStorage, PooledPostgresEventLogStorage, PostgresScheduleStorage)
        self._run_storage, self._event_log_storage, self._schedule_storage = (
            kind(postgres_url, should_autocreate_tables, token_provider=token_provider) for kind in storages
        )
        DagsterStorage.__init__(self)
        engine = fork_safe(
            create_pg_engine(
                postgres_url,
                token_provider,
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=PG_MAX_OVERFLOW,
                pool_recycle=PG_POOL_RECYCLE_SECONDS,
                pool_pre_ping=True,
            )
        )
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine = engine

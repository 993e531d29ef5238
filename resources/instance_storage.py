"""The dev instance's SQLite storage, with one SQLAlchemy engine per database kept for the life of the process.

Dagster's SQLite storages build a new engine and open a new connection for every storage call. On this machine
that is about 25 ms an event, most of it in SQL compilation (the compiled-statement cache lives on the engine)
and in the WAL checkpoint SQLite makes when the last connection to a database closes. A 365-day range run writes
about 2,200 per-partition events, so the instance's bookkeeping outweighed the engine.

:class:`PooledSqliteStorage` is Dagster's SQLite storage (same files under the same ``base_dir``, same schema
and migrations, readable by the stock classes) with the engines kept:

* the run, schedule and event-log index databases keep an open connection per process;
* a run's event-log shard does too (the few most recent shards per process), and is checkpointed after each use:
  the webserver follows a live run by watching that shard's ``.db`` file, which a write left in the WAL would not
  touch;
* a forked child drops its parent's connections instead of sharing them.

Selected in ``dagster.yaml`` as ``storage: custom``; production uses PostgreSQL (``deploy/dagster.yaml``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml
from dagster import DagsterInstance
from dagster._config import StringSource
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.base_storage import DagsterStorage
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
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.auth import PgTokenProvider
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

# Run shards a process keeps open at once: a run worker writes one; the webserver and daemon read many.
OPEN_RUN_SHARDS = 8
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


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage on one engine per process."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)
        self._engine = sqlite_engine(conn_string)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with transaction(self._engine) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledSqliteScheduleStorage(SqliteScheduleStorage):
    """Dagster's SQLite schedule (sensor and tick) storage on one engine per process."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)
        self._engine = sqlite_engine(conn_string)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self, run_id: str | None = None) -> Iterator[Connection]:
        with transaction(self._engine) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log with the index and the most recent run shards kept open."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
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
        with self._db_lock:
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


class PooledSqliteInstance(DagsterInstance):
    """A Dagster instance whose default storage is :class:`PooledSqliteStorage` in the instance's own folder.

    Named as ``instance_class`` in ``dagster.yaml``: the folder is the one the instance is opened from
    (``DAGSTER_HOME``, or ``DagsterInstance.from_config(path)``), as for Dagster's default SQLite storage. A
    ``storage`` key in the same file still wins.
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
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
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

"""PostgreSQL for the production instance: where to connect (``MEDALLION_PG_*``) and a throwaway local cluster.

``LocalCluster`` is a cluster in a folder (``initdb``), served by ``postgres`` on 127.0.0.1 only (no Unix
socket), with SCRAM password authentication for every connection. The superuser's password is set in
single-user mode through ``postgres``' stdin before each start, so it is never written to a file, a command
line or a log. PostgreSQL refuses to run as root: when this process is root, the cluster's files belong to,
and its processes run as, an unprivileged OS user (``MEDALLION_PG_OS_USER``, default ``postgres``, the user
Debian's ``postgresql`` package creates).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy.processes import Proc, spawn, stop

#: The variables deploy/dagster.yaml reads.
ENV_VARS = ("MEDALLION_PG_HOST", "MEDALLION_PG_PORT", "MEDALLION_PG_USER", "MEDALLION_PG_PASSWORD", "MEDALLION_PG_DB")
DEFAULT_USER = "medallion"
DEFAULT_DB = "medallion"


class PostgresError(RuntimeError):
    """A PostgreSQL tool or server failed; the message names what and where (never a password)."""


@dataclass(frozen=True)
class PgTarget:
    """Where the instance's storage lives: the values behind ``MEDALLION_PG_*``."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a test's failure report prints its fixtures
    db: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PgTarget:
        """From ``MEDALLION_PG_*`` (user and database default to ``medallion``, port to 5432)."""
        env = os.environ if env is None else env
        missing = [name for name in ("MEDALLION_PG_HOST", "MEDALLION_PG_PASSWORD") if not env.get(name)]
        if missing:
            raise PostgresError(f"set {' and '.join(missing)} (PostgreSQL for the Dagster instance)")
        port = env.get("MEDALLION_PG_PORT") or "5432"
        if not port.isdigit():
            raise PostgresError(f"MEDALLION_PG_PORT={port!r} is not a port number")
        user, db = env.get("MEDALLION_PG_USER") or DEFAULT_USER, env.get("MEDALLION_PG_DB") or DEFAULT_DB
        return cls(env["MEDALLION_PG_HOST"], int(port), user, env["MEDALLION_PG_PASSWORD"], db)

    def env(self) -> dict[str, str]:
        """The ``MEDALLION_PG_*`` variables for the webserver, daemon and code server."""
        values = (self.host, str(self.port), self.user, self.password, self.db)
        return dict(zip(ENV_VARS, values, strict=True))

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.db}"

    def with_db(self, db: str) -> PgTarget:
        return PgTarget(self.host, self.port, self.user, self.password, db)

    def connect(self, *, db: str | None = None, timeout: int = 5):  # -> psycopg2 connection
        """A psycopg2 connection (autocommit); PostgresError naming host, port and database on failure."""
        import psycopg2  # installed with dagster-postgres

        dbname = db or self.db
        try:
            conn = psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=dbname,
                connect_timeout=timeout,
            )
        except psycopg2.OperationalError as exc:
            raise PostgresError(f"cannot connect to PostgreSQL at {self.where()}: {str(exc).strip()}") from None
        conn.autocommit = True
        return conn

    def ensure_database(self) -> bool:
        """Create the database unless it exists (connecting to ``postgres``); True when it was created."""
        conn = self.connect(db="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db,))
                if cur.fetchone():
                    return False
                cur.execute(f'CREATE DATABASE "{self.db.replace(chr(34), chr(34) * 2)}"')
                return True
        finally:
            conn.close()


def stop_server(proc: Proc, *, timeout: float = 30.0) -> bool:
    """Fast shutdown: SIGINT to the postmaster (by pid), SIGKILL after ``timeout``; False if it was not running."""
    return stop(proc, first=signal.SIGINT, first_to_group=False, timeout=timeout)


def bin_dir() -> Path:
    """The PostgreSQL server binaries: ``MEDALLION_PG_BIN``, else the newest /usr/lib/postgresql/<v>/bin."""
    if os.environ.get("MEDALLION_PG_BIN"):
        return Path(os.environ["MEDALLION_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresError("PostgreSQL server binaries not found: apt-get install postgresql, or set MEDALLION_PG_BIN")


def os_user() -> str | None:
    """The OS user to run PostgreSQL as: None when not root, else ``MEDALLION_PG_OS_USER`` (``postgres``)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("MEDALLION_PG_OS_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise PostgresError(
            f"running as root, and PostgreSQL refuses to: OS user {name!r} not found "
            "(apt-get install postgresql creates 'postgres'; or useradd --system one and set MEDALLION_PG_OS_USER)"
        ) from None
    return name


class LocalCluster:
    """A PostgreSQL cluster in ``<folder>/data`` (log: ``<folder>/postgres.log``) on 127.0.0.1:``port`` only."""

    def __init__(self, folder: str | os.PathLike[str], *, port: int, user: str = DEFAULT_USER) -> None:
        self.folder = Path(folder).absolute()
        self.data_dir = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = port
        self.user = user
        self.bin = bin_dir()
        self.os_user = os_user()
        self.proc: Proc | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def target(self, password: str, db: str = DEFAULT_DB) -> PgTarget:
        return PgTarget("127.0.0.1", self.port, self.user, password, db)

    def init(self) -> None:
        """``initdb``, unless the folder holds a cluster already."""
        if self.initialised:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.folder)
        # initdb accepts SCRAM only with a password file, and files are where passwords must not go: the
        # cluster starts with trust, and start() replaces pg_hba.conf before the server ever runs.
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"
        )

    def set_password(self, password: str) -> None:
        """Set the superuser's password in single-user mode (the server must be stopped)."""
        if self.running():
            raise PostgresError(f"postgres already runs on {self.data_dir}")
        literal = password.replace("'", "''")
        statement = f"ALTER ROLE \"{self.user}\" PASSWORD '{literal}';\n"
        self._run("postgres", "--single", "-D", str(self.data_dir), "postgres", stdin=statement, secret=literal)

    def start(self, password: str, *, timeout: float = 60.0) -> Proc:
        """Allow SCRAM-authenticated TCP from 127.0.0.1 only, set ``password``, start ``postgres`` in its own
        session, and return once the superuser logs in."""
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text("# medallion: TCP from 127.0.0.1 only, SCRAM password (no Unix socket)\n")
        with hba.open("a") as out:
            out.write("host all all 127.0.0.1/32 scram-sha-256\n")
        self._own(hba)
        self.set_password(password)
        options = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-p", str(self.port)]
        self.proc, self._popen = spawn(
            "postgres",
            [str(self.bin / "postgres"), "-D", str(self.data_dir), *options],
            env=self._env(),
            cwd=self.folder,
            log=self.log,
            user=self.os_user,
        )
        self.wait_ready(password, timeout=timeout)
        return self.proc

    def wait_ready(self, password: str, *, timeout: float = 60.0) -> None:
        """Wait until the superuser logs in over TCP; PostgresError (with the server log's tail) if it exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or not self.proc.alive():
                raise PostgresError(f"postgres on 127.0.0.1:{self.port} exited:\n{self.log_tail()}")
            try:
                self.target(password, "postgres").connect(timeout=2).close()
                return
            except PostgresError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if self.proc is not None:
            return self.proc.alive()
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return Proc.of("postgres", pid).alive()

    def stop(self, *, timeout: float = 30.0) -> None:
        if self.proc is not None:
            stop_server(self.proc, timeout=timeout)
        if self._popen is not None:
            self._popen.wait(timeout=5)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TZ")
        return {k: v for k, v in os.environ.items() if k in keep}

    def _own(self, path: Path) -> None:
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(path, 0o700 if path.is_dir() else 0o600)

    def _run(self, tool: str, *args: str, stdin: str | None = None, secret: str | None = None) -> None:
        done = subprocess.run(
            [str(self.bin / tool), *args],
            input=(stdin or "").encode(),
            capture_output=True,
            cwd=self.folder,
            env=self._env(),
            user=self.os_user,
            timeout=120,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            if self.os_user and "Permission denied" in output:
                output += f"\n(every folder above {self.folder} must be searchable by OS user {self.os_user})"
            if secret:  # a failed statement is echoed back
                output = output.replace(secret, "<password>")
            raise PostgresError(f"{tool} failed for {self.data_dir} (exit {done.returncode}):\n{output[-3000:]}")


@contextlib.contextmanager
def throwaway_cluster(port: int) -> Iterator[tuple[LocalCluster, PgTarget]]:
    """A new cluster in a temporary folder on 127.0.0.1:``port`` with a random password, for tests and
    benchmarks: the cluster and its ``postgres`` database; stopped by pid and deleted on exit."""
    folder = tempfile.mkdtemp(prefix="medallion-pg-")  # outside pytest's tmp: the postgres OS user must reach it
    cluster = LocalCluster(folder, port=port)
    password = secrets.token_urlsafe(18)
    try:
        cluster.init()
        cluster.start(password)
        yield cluster, cluster.target(password, "postgres")
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)

"""``dagster-webserver`` and ``dagster-daemon`` as real subprocesses, for UI-level tests and benches.

    with DagsterServices(landing=..., lakehouse=..., home=tmp / "home") as dagster:
        dagster.graphql("query { version }")   # POST /graphql; dagster.url is the UI

Both processes load the repo's ``workspace.yaml`` (working directory: the repo root) against a fresh
``DAGSTER_HOME`` holding a copy of the repo's ``dagster.yaml``, listen on 127.0.0.1 only, and are started in
their own process groups. Leaving the block stops every process they started (code servers and run workers
included): SIGTERM to each group, then SIGKILL after ``stop_timeout`` (they have been seen ignoring SIGTERM).

The production topology: ``instance_yaml=deploy/dagster.yaml``, ``workspace=deploy/workspace.yaml`` and
``code_server=True`` start ``dagster code-server start`` first (the command ``make prod-local`` runs, on a free
port in ``MEDALLION_CODE_SERVER_PORT``); ``kill("daemon")`` then ``start_process("daemon")`` play a crash and a
restart, and ``deferred=("daemon",)`` leaves the daemon to ``start_process`` (work queued before it starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: pyspark marks a process Connect-only once it made a Connect session; children must not inherit that.
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "MASTER")

T = TypeVar("T")

WORKSPACE_QUERY = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } ... on PythonError { message } } }
"""
DAEMONS_QUERY = "query { instance { daemonHealth { allDaemonStatuses { daemonType required lastHeartbeatTime } } } }"


class GraphQLError(RuntimeError):
    """The server answered a GraphQL request with ``errors``."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``condition`` until it returns something other than None/False; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` as ``values`` inside the block (the instance yaml may read ``env:`` variables)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def processes() -> dict[int, tuple[str, int, int]]:
    """Every process on the machine as ``pid: (state, ppid, process group)``, read from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, children first."""
    children: dict[int, list[int]] = {}
    for child, (_, ppid, _) in processes().items():
        children.setdefault(ppid, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def running(pids: Iterable[int], group: int) -> list[int]:
    """Those of ``pids``, and the members of process group ``group``, that still run (zombies do not)."""
    wanted = set(pids)
    return [pid for pid, (state, _, pgrp) in processes().items() if (pid in wanted or pgrp == group) and state != "Z"]


class DagsterServices:
    """The Dagster webserver and daemon on an ephemeral 127.0.0.1 port; a context manager.

    ``landing``/``lakehouse`` become ``MEDALLION_LANDING_ROOT``/``MEDALLION_LAKEHOUSE_ROOT``; ``home`` is the
    ``DAGSTER_HOME`` (created; a temp dir removed on exit when omitted, so pass one to open the instance
    afterwards with ``dagster.DagsterInstance.from_config(home)``). ``env`` overrides the inherited environment
    (``MEDALLION_ENGINE`` defaults to ``sail``). Process output goes to ``<home>/service-logs/<name>.log``
    (not ``<home>/logs``: Dagster empties that folder, its telemetry cache).
    """

    def __init__(
        self,
        landing: str | os.PathLike[str],
        lakehouse: str | os.PathLike[str],
        *,
        home: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        instance_yaml: str | os.PathLike[str] = REPO / "dagster.yaml",
        workspace: str | os.PathLike[str] = REPO / "workspace.yaml",
        code_server: bool = False,
        deferred: Iterable[str] = (),
    ) -> None:
        self.deferred = frozenset(deferred)  # not started by start(): start_process(name) later
        self.instance_yaml = Path(instance_yaml)
        self.workspace = Path(workspace)
        self.code_server_port = free_port() if code_server else None
        self._own_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="dagster-home-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
        self._env.update(
            {
                "DAGSTER_HOME": str(self.home),
                "MEDALLION_LANDING_ROOT": str(Path(landing).resolve()),
                "MEDALLION_LAKEHOUSE_ROOT": str(Path(lakehouse).resolve()),
                "MEDALLION_ENGINE": "sail",
                "PYTHONUNBUFFERED": "1",
                **({"MEDALLION_CODE_SERVER_PORT": str(self.code_server_port)} if self.code_server_port else {}),
                **(env or {}),
            }
        )
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, list[str]] = {}
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> DagsterServices:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the processes; return once the UI answers, the code location loaded and every daemon beat."""
        from deploy.local_prod import code_server_command

        (self.home / "service-logs").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.instance_yaml, self.home / "dagster.yaml")
        # Create the storages once, as `dagster dev` does: two processes racing to create SQLite storage leave
        # alembic_version with two heads ("Version table 'alembic_version' has more than one head present").
        from dagster import DagsterInstance

        with environ(self._env), DagsterInstance.from_config(str(self.home)):
            pass
        workspace = str(self.workspace)
        if self.code_server_port:
            self._commands["code_server"] = code_server_command(self.code_server_port)
        self._commands["webserver"] = ["dagster-webserver", "-h", "127.0.0.1", "-p", str(self.port), "-w", workspace]
        self._commands["daemon"] = ["dagster-daemon", "run", "-w", workspace]
        for name in [n for n in self._commands if n not in self.deferred]:
            self.start_process(name)
            if name == "code_server":  # the webserver and daemon connect to it at start
                wait_until(self._code_server_serving, timeout=self.startup_timeout, what="the code server")
        wait_until(self._server_info, timeout=self.startup_timeout, what=f"{self.url}/server_info")
        wait_until(self._location_loaded, timeout=self.startup_timeout, what="the code location to load")
        if "daemon" not in self.deferred:
            wait_until(self._daemons_beating, timeout=self.startup_timeout, what="a heartbeat from every daemon")

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, *, timeout: float = 60.0) -> Any:
        """POST ``query`` to /graphql and return its ``data``; GraphQLError when the answer has ``errors``."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # GraphQL validation errors come back as HTTP 400 with a body
            try:
                answer = json.loads(exc.read() or b"{}")
            except ValueError:
                raise exc from None
            if not answer.get("errors"):
                raise
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:3000])
        return answer["data"]

    def kill(self, name: str) -> int:
        """SIGKILL process ``name`` (by pid) as a crash would, reap it, then stop anything left in its group.

        ``check_alive`` ignores it from then on, until ``start_process(name)``."""
        proc = self._procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=self.stop_timeout)
        self._stop(proc)
        return proc.pid

    def start_process(self, name: str) -> None:
        """Start process ``name`` (``webserver``, ``daemon``, ``code_server``): a deferred one, or again after
        ``kill`` with the command and environment it had."""
        if name in self._procs and self._procs[name].poll() is None:
            raise RuntimeError(f"{name} still runs (pid {self._procs[name].pid})")
        self._spawn(name, self._commands[name])

    def check_alive(self) -> None:
        """Raise RuntimeError (with the log's tail) if the webserver or daemon has exited."""
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"dagster {name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        """The last ``chars`` characters of ``webserver`` or ``daemon`` output."""
        path = self.home / "service-logs" / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """Stop every process started here (and their descendants) by pid; idempotent."""
        for name in reversed(list(self._procs)):
            self._stop(self._procs.pop(name))
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.home / "service-logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=REPO,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so code servers and run workers stop with it
        )

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        family = [proc.pid, *descendants(proc.pid)]  # listed first: once orphaned they are reparented
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group leader's pid is the group's id
            for pid in running(family[1:], proc.pid):  # descendants that left the group too
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            try:
                wait_until(
                    lambda: proc.poll() is not None and not running(family, proc.pid),
                    timeout=self.stop_timeout,
                    what=f"processes {family} (group {proc.pid}) to exit after {sig.name}",
                    interval=0.1,
                )
                return
            except TimeoutError:
                if sig == signal.SIGKILL:
                    raise

    def _code_server_serving(self) -> bool:
        from deploy.local_prod import code_server_serving

        self.check_alive()
        return code_server_serving(int(self.code_server_port or 0))

    def _server_info(self) -> bool:
        self.check_alive()
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _location_loaded(self) -> bool:
        self.check_alive()
        workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise RuntimeError(f"workspace failed to load: {workspace}")
        entries = workspace["locationEntries"]
        for entry in entries:
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                raise RuntimeError(f"code location {entry['name']} failed to load: {error['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)

    def _daemons_beating(self) -> bool:
        self.check_alive()
        statuses = self.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return all(s["lastHeartbeatTime"] for s in statuses if s["required"])

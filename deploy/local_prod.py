"""The production topology on this machine, as separate processes: ``make prod-local`` / ``make prod-stop``.

    python -m deploy.local_prod start [--state-dir .prod] [--ui-port 3000] [--code-server-port 4266]
    python -m deploy.local_prod stop  [--state-dir .prod]

``start`` runs PostgreSQL (a cluster in ``<state>/postgres`` unless ``MEDALLION_PG_HOST`` names a server),
``dagster code-server start`` (the code location), ``dagster-webserver`` and ``dagster-daemon`` with
``deploy/workspace.yaml`` against ``DAGSTER_HOME=<state>/dagster_home`` (a copy of ``deploy/dagster.yaml``),
all on 127.0.0.1, each in its own process group; their pids go to ``<state>/pids.json`` and their output to
``<state>/logs``. ``stop`` stops them by those pids. The local cluster's password is ``MEDALLION_PG_PASSWORD``
or a fresh random one per start; it reaches the processes only through their environment.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.postgres import LocalCluster, PgTarget, PostgresError, stop_server
from deploy.processes import Proc, spawn, stop

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
LOCATION = "medallion"
#: pyspark marks a process Connect-only once it made a Connect session; children must not inherit that.
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "MASTER")
#: The processes, as ``stop`` reports them; PostgreSQL stops after the others.
STOP_ORDER = ("daemon", "webserver", "code_server", "postgres")


class StartError(RuntimeError):
    """A process of the topology did not come up; the message says which and shows its log's tail."""


def code_server_command(port: int) -> list[str]:
    """The code location served over gRPC on 127.0.0.1:``port``, as ``deploy/workspace.yaml`` expects it."""
    return [
        str(BIN / "dagster"), "code-server", "start", "-h", HOST, "-p", str(port),
        "-m", "medallion_assets.definitions", "-a", "defs", "--location-name", LOCATION, "-d", str(REPO),
    ]  # fmt: skip


def webserver_command(port: int, workspace: Path = DEPLOY / "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-webserver"), "-h", HOST, "-p", str(port), "-w", str(workspace)]


def daemon_command(workspace: Path = DEPLOY / "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]


def code_server_serving(port: int) -> bool:
    """True once the code server answers the standard gRPC health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def ui_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def create_storage(home: Path, env: Mapping[str, str]) -> None:
    """Create (or migrate) the instance's tables once, before three processes would race to."""
    from dagster import DagsterInstance

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with DagsterInstance.from_config(str(home)):
            pass
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Topology:
    """The processes of one state folder; ``pids.json`` lists what runs."""

    def __init__(self, state_dir: Path) -> None:
        self.state = state_dir.absolute()
        self.pid_file = self.state / "pids.json"
        self.logs = self.state / "logs"
        self.home = self.state / "dagster_home"
        self.procs: dict[str, Proc] = {}
        self.url = ""
        self.storage = ""  # user@host:port/db of the instance's PostgreSQL, once started

    def load(self) -> None:
        if self.pid_file.exists():
            saved = json.loads(self.pid_file.read_text())
            self.url = saved.get("url", "")
            self.procs = {p["name"]: Proc(p["name"], int(p["pid"]), str(p["start_ticks"])) for p in saved["processes"]}

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        body = {"url": self.url, "processes": [p.as_dict() for p in self.procs.values()]}
        self.pid_file.write_text(json.dumps(body, indent=2) + "\n")

    def running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.alive()]

    def start(self, *, ui_port: int, code_server_port: int, timeout: float = 300.0) -> str:
        """Start every process (storage first); return the UI's URL. On failure stop what was started."""
        self.load()
        if self.running():
            raise StartError(f"already running: {', '.join(self.running())} (make prod-stop first)")
        self.procs, self.url = {}, f"http://{HOST}:{ui_port}"
        try:
            target = self._postgres(timeout)
            self.storage = target.where()
            env = self._env(target, code_server_port)
            self.home.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEPLOY / "dagster.yaml", self.home / "dagster.yaml")
            self._spawn("code_server", code_server_command(code_server_port), env)  # loads meanwhile
            create_storage(self.home, env)
            self._wait("code_server", lambda: code_server_serving(code_server_port), timeout)
            self._spawn("webserver", webserver_command(ui_port), env)
            self._spawn("daemon", daemon_command(), env)
            self._wait("webserver", lambda: ui_answers(self.url), timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> list[str]:
        """Stop every process in ``pids.json`` by pid, PostgreSQL last; the names of those that were running.

        The Dagster processes stop side by side (each takes seconds to shut down gracefully on SIGTERM)."""
        if not self.procs:
            self.load()
        dagster = [p for name, p in self.procs.items() if name != "postgres"]
        with ThreadPoolExecutor(max_workers=len(dagster) or 1) as pool:
            ended = dict(zip([p.name for p in dagster], pool.map(lambda p: stop(p, timeout=20), dagster), strict=True))
        if "postgres" in self.procs:
            ended["postgres"] = stop_server(self.procs["postgres"])
        self.pid_file.unlink(missing_ok=True)
        self.procs = {}
        return [name for name in STOP_ORDER if ended.get(name)]

    def _postgres(self, timeout: float) -> PgTarget:
        """The storage target: the server ``MEDALLION_PG_HOST`` names, else a local cluster started here."""
        if os.environ.get("MEDALLION_PG_HOST"):
            target = PgTarget.from_env()
            target.connect().close()  # fail now, naming host and port, not in three processes' logs
            return target
        port = int(os.environ.get("MEDALLION_PG_PORT") or free_port())
        password = os.environ.get("MEDALLION_PG_PASSWORD") or secrets.token_urlsafe(24)
        user = os.environ.get("MEDALLION_PG_USER") or "medallion"
        cluster = LocalCluster(self.state / "postgres", port=port, user=user)
        cluster.init()
        try:
            cluster.start(password, timeout=timeout)
        finally:
            if cluster.proc is not None:  # recorded even when it never got ready, so that stop() ends it
                self.procs["postgres"] = cluster.proc
                self.save()
        target = cluster.target(password, os.environ.get("MEDALLION_PG_DB") or "medallion")
        target.ensure_database()
        return target

    def _env(self, target: PgTarget, code_server_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
        env.update(target.env())
        env.update({"DAGSTER_HOME": str(self.home), "MEDALLION_CODE_SERVER_PORT": str(code_server_port)})
        return env

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.procs[name], _ = spawn(name, argv, env=env, cwd=REPO, log=self.logs / f"{name}.log")
        self.save()

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            exited = [n for n, p in self.procs.items() if not p.alive()]
            if exited or time.monotonic() > deadline:
                what = f"{', '.join(exited)} exited" if exited else f"{name} not ready after {timeout:.0f} s"
                tails = "\n".join(f"--- {n} ---\n{self.log_tail(n)}" for n in exited or [name])
                raise StartError(f"{what}:\n{tails}")
            time.sleep(0.5)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.state / "postgres" / "postgres.log" if name == "postgres" else self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local_prod", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--state-dir", type=Path, default=REPO / ".prod")
    parser.add_argument("--ui-port", type=int, default=int(os.environ.get("MEDALLION_UI_PORT", "3000")))
    parser.add_argument(
        "--code-server-port", type=int, default=int(os.environ.get("MEDALLION_CODE_SERVER_PORT", "4266"))
    )
    args = parser.parse_args(argv)
    topology = Topology(args.state_dir)
    if args.action == "stop":
        stopped = topology.stop()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    try:
        url = topology.start(ui_port=args.ui_port, code_server_port=args.code_server_port)
    except (StartError, PostgresError) as exc:
        print(f"prod-local failed: {exc}", file=sys.stderr)
        return 1
    pids = ", ".join(f"{p.name} {p.pid}" for p in topology.procs.values())
    print(f"Dagster UI: {url}\n  storage: PostgreSQL {topology.storage}\n  processes: {pids}")
    print(f"  logs: {topology.logs}\n  stop with: make prod-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Airflow deployed as separate processes for a test: a temp home, free ports, every process killed on exit.

``scheduler`` (LocalExecutor: its workers are its children), ``dag-processor``, ``triggerer`` and
``api-server`` (which the workers reach through the Execution API), on SQLite, sharing one configuration
given through the environment. Waiting is polling with deadlines, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
from cryptography.fernet import Fernet

T = TypeVar("T")
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
_STOP_GRACE_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (httpx.HTTPError, OSError):
            result = None  # a process still starting answers nothing yet
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def airflow_env(home: Path, dags_folder: Path, api_port: int) -> dict[str, str]:
    """The environment of every Airflow process: this venv first on PATH, nothing inherited from the suite."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "_XCOMPLIANCE"))
    }
    venv_bin = str(Path(sys.executable).parent)
    api = f"http://127.0.0.1:{api_port}"
    return {
        **inherited,
        "PATH": os.pathsep.join([venv_bin, inherited.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API_AUTH__JWT_SECRET": Fernet.generate_key().decode(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    }


class Deployment:
    """The four processes, their output files and a REST client for the api-server."""

    def __init__(self, home: Path, dags_folder: Path) -> None:
        self.home = home
        self.api_port = free_port()
        self.env = airflow_env(home, dags_folder, self.api_port)
        self.output = home / "process-output"
        self.output.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}/api/v2", timeout=60)

    def airflow(self, *args: str, timeout: float) -> None:
        """One ``airflow`` command run to completion (its output kept beside the processes')."""
        with (self.output / f"{args[0]}.log").open("ab") as out:
            subprocess.run(
                ["airflow", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=True,
            )

    def start(self) -> None:
        for name in PROCESSES:
            out = (self.output / f"{name}.log").open("ab")
            self._files.append(out)
            # Own session: teardown signals the whole group, and a terminal's Ctrl-C does not reach it.
            self.processes[name] = subprocess.Popen(
                ["airflow", name], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._api_up, 120, "the api-server to answer")

    def _api_up(self) -> bool:
        self._check_alive()
        return self.api.get("/monitor/health").status_code == 200

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.output / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call that must succeed; returns the JSON body."""
        self._check_alive()
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def stop(self) -> None:
        """SIGINT to every process group, then SIGKILL to whatever survives, task processes included."""
        self.api.close()
        family = [_descendants(process.pid) for process in self.processes.values()]
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.1))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for members in family:  # task processes run in process groups of their own
            for member in members:
                with contextlib.suppress(psutil.Error):
                    member.kill()
        for out in self._files:
            out.close()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


@contextlib.contextmanager
def deployed(home: Path, dags_folder: Path) -> Iterator[Deployment]:
    """A migrated metadata database and the four processes running; everything stopped on exit."""
    deployment = Deployment(home, dags_folder)
    try:
        deployment.airflow("db", "migrate", timeout=180)
        deployment.start()
        yield deployment
    finally:
        deployment.stop()

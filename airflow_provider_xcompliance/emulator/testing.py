"""Run an emulator from Python: in-process on a thread (tests) or as a subprocess (demos, benchmarks)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess as sp
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import httpx

from airflow_provider_xcompliance.emulator.cli import args_from_config
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.server import EmulatorServer, connection_json

_STARTUP_LINE = re.compile(r"listening on (http://\S+)")
_START_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it is, its token, and what it has seen."""

    base_url: str
    token: str = dataclasses.field(repr=False)

    def state(self) -> dict[str, Any]:
        """``GET /_emulator/state``: jobs, request counts per endpoint, bytes up and down."""
        response = httpx.get(f"{self.base_url}/_emulator/state", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def job_state(self, job_id: str) -> dict[str, Any]:
        """One job's entry of :meth:`state` (counters such as ``upload_attempts`` and ``uploaded_ids``)."""
        return next(job for job in self.state()["jobs"] if job["id"] == job_id)

    def ground_truth(self, job_id: str) -> list[dict[str, Any]]:
        """The result records the job produced, whatever faults did to the served file."""
        response = httpx.get(f"{self.base_url}/_emulator/jobs/{job_id}/ground-truth", timeout=60)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line]

    def conn_env(self) -> dict[str, str]:
        """Environment that makes the ``x_default`` connection point here."""
        return {"AIRFLOW_CONN_X_DEFAULT": connection_json(self.base_url, self.token)}


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, subprocess: bool = False, log: IO[str] | None = None
) -> Iterator[EmulatorHandle]:
    """Start an emulator on a free port (unless ``config.port`` says otherwise) and stop it on exit.

    ``log`` receives a subprocess emulator's log lines (default: this process's stderr).
    """
    config = config or EmulatorConfig()
    if subprocess:
        with _run_subprocess(config, log) as handle:
            yield handle
    else:
        with _run_in_process(config) as handle:
            yield handle


@contextlib.contextmanager
def _run_in_process(config: EmulatorConfig) -> Iterator[EmulatorHandle]:
    server = EmulatorServer(config)
    thread = threading.Thread(target=server.serve_forever, name="xcompliance-emulator", daemon=True)
    thread.start()
    try:
        if not server.ready.wait(_START_TIMEOUT):
            raise RuntimeError("the emulator did not start")
        yield EmulatorHandle(server.base_url, config.token)
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)


@contextlib.contextmanager
def _run_subprocess(config: EmulatorConfig, log: IO[str] | None) -> Iterator[EmulatorHandle]:
    if config.clock is not time.time:
        raise ValueError("a subprocess emulator runs on wall time: drop the custom clock")
    command = [sys.executable, "-m", "airflow_provider_xcompliance.emulator", *args_from_config(config)]
    process = sp.Popen(command, stdout=sp.PIPE, stderr=log, text=True)
    try:
        base_url = _read_base_url(process)
        yield EmulatorHandle(base_url, config.token)
    finally:
        process.terminate()  # uvicorn shuts down cleanly on SIGTERM (and removes its temp data dir)
        try:
            process.wait(_START_TIMEOUT)
        except sp.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_base_url(process: sp.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:  # ends when the process exits without announcing itself
        match = _STARTUP_LINE.search(line)
        if match:
            return match.group(1)
    raise RuntimeError(f"the emulator exited with status {process.wait()} before it started")

"""Test-wide setup: an isolated Airflow home, configured before the first ``import airflow``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_xcompliance.emulator import EmulatorConfig, EmulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[1]

# Airflow reads these at import time: they must be set before any test module imports airflow. Set once per
# process: a DagBag that parses this file again must not move the Airflow home or drop a test's connection.
if "_XCOMPLIANCE_TEST_AIRFLOW_HOME" not in os.environ:
    os.environ["_XCOMPLIANCE_TEST_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="xcompliance-airflow-home-")
    os.environ["AIRFLOW_HOME"] = os.environ["_XCOMPLIANCE_TEST_AIRFLOW_HOME"]
    # dag.test() only runs DAGs found under the dags folder: the repo root covers dags/ and tests/dags/
    # (.airflowignore keeps the package, the venv, the scripts and the other tests out of parsing).
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.pop("AIRFLOW_CONN_X_DEFAULT", None)  # a developer's real connection must never leak in
_AIRFLOW_HOME = os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A fresh metadata database in the session's Airflow home (created once, on first use)."""
    from airflow.utils import db

    db.resetdb()
    return Path(_AIRFLOW_HOME)


# --- The emulator: a real X API on loopback for every test that talks to the API ---


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The emulator's settings for one test; override this fixture in a test module to change them."""
    from airflow_provider_xcompliance.emulator import EmulatorConfig

    return EmulatorConfig(token="test-token", processing_seconds=0.0)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorHandle]:
    """A fresh in-process emulator on a free loopback port, stopped after the test."""
    from airflow_provider_xcompliance.emulator import run_emulator

    with run_emulator(emulator_config) as handle:
        yield handle


@pytest.fixture
def x_conn_env(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """Points the ``x_default`` connection at the emulator (env var, so inline triggers see it too)."""
    for name, value in emulator.conn_env().items():
        monkeypatch.setenv(name, value)
    return emulator


# --- A real PostgreSQL server (binaries from the pgserver wheel), for the warehouse tests ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on a unix socket in a temporary folder (no TCP), stopped and deleted after the
    session. Yields ``host`` (the socket folder), ``port`` (the socket's number) and ``user``.

    Run as root, pgserver runs the server as a ``pgserver`` user and opens the folder's parents to it: the
    folder sits directly in the system temp folder, not under pytest's private (mode 700) one.
    """
    import pgserver
    import psutil

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="xcompliance-pg-")), cleanup_mode="delete")
    info = server.get_postmaster_info()
    try:
        yield {"host": str(info.socket_dir), "port": str(info.port), "user": "postgres"}
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):  # already stopped: nothing left to stop
            server.cleanup()


@pytest.fixture
def postgres_db(postgres_server: dict[str, str], request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A fresh database for one test: psycopg connection arguments (host, port, user, dbname)."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    admin = {**postgres_server, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {**admin, "dbname": name}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Object storage: a local S3 server (moto) reached through an Airflow `aws` connection ---

S3_CONN_ID = "aws_test"


@dataclass(frozen=True)
class S3Server:
    """A running S3 emulator: its endpoint and a boto3 client for setting up and inspecting buckets."""

    endpoint_url: str
    client: Any

    def bucket(self, name: str) -> str:
        """Create bucket ``name``; its root as an ``s3://`` URI carrying the test connection."""
        self.client.create_bucket(Bucket=name)
        return f"s3://{S3_CONN_ID}@{name}"


@pytest.fixture
def memory_fs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register fsspec's in-memory filesystem as ``memory://`` with Airflow (a stand-in for s3/gs): an
    object-storage URI becomes an ``ObjectStoragePath``, which knows only the schemes registered there."""
    from fsspec.implementations.memory import MemoryFileSystem

    from tests.version_compat import filesystem_registry

    fs = filesystem_registry()
    memory = MemoryFileSystem()
    monkeypatch.setitem(fs._BUILTIN_SCHEME_TO_FS, "memory", lambda _conn_id, _options: memory)
    fs._register_filesystems.cache_clear()
    memory.store.clear()
    memory.pseudo_dirs[:] = [""]
    yield
    fs._register_filesystems.cache_clear()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port for the session; credentials only in the connection."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    key = {"aws_access_key_id": "xcompliance-test", "aws_secret_access_key": "xcompliance-test"}
    conn = {
        "conn_type": "aws",
        "login": key["aws_access_key_id"],
        "password": key["aws_secret_access_key"],
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = json.dumps(conn)  # env var: inline triggers see it too
    try:
        yield S3Server(endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **key))
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", None)
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh bucket per test, as ``s3://aws_test@<bucket>``."""
    return s3_server.bucket(f"xc-{uuid.uuid4().hex[:16]}")


def record_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    """Wrap ``owner.name`` for one test: each call's positional arguments are recorded, then it runs as is."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls

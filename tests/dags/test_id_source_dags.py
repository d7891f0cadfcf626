"""ID sources in real Airflow: a source without a valid ID fails before any job exists, and a green run
logs no ERROR. DAGs run with ``dag.test()`` against the emulator; this file is both a DAG file (parsed
from the dags folder, which ``dag.test()`` requires) and a test module.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_xcompliance.operators.compliance import (
    XComplianceCreateJobOperator,
    XComplianceRunJobOperator,
)

# Not x_default: DAG parsing inside dag.test() imports tests/conftest.py, which drops AIRFLOW_CONN_X_DEFAULT.
CONN_ID = "x_id_sources"
TASK: dict[str, Any] = {
    "task_id": "ids",
    "ids": "{{ dag_run.conf['ids'] }}",
    "x_conn_id": CONN_ID,
    "poll_interval": 0.2,
    "retry_delay": timedelta(0),
    "deferrable": True,
}


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False)


with _dag("xc_id_sources_run") as run_dag:
    XComplianceRunJobOperator(job_type="tweets", destination="{{ dag_run.conf['out'] }}", **TASK)

with _dag("xc_id_sources_create") as create_dag:
    XComplianceCreateJobOperator(job_type="users", **TASK)


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A structlog console line ("[error    ]") or a stdlib one ("ERROR"/"CRITICAL" as the level) at that level.
# Airflow 3.0 prints task logs in colour even when captured: its escape codes split the words.
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
ERROR_LINE = re.compile(r"\[(error|critical)\s*\]|\b(ERROR|CRITICAL)\b\s*[-:\[]")


@pytest.fixture
def emulator_config() -> Any:
    from airflow_provider_xcompliance.emulator import EmulatorConfig

    return EmulatorConfig(token="test-token", processing_seconds=0.0, rate_limit_count=100_000)


@pytest.fixture
def api(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator, reachable through the DAGs' connection (an env var: inline triggers read it too)."""
    [value] = emulator.conn_env().values()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", value)
    return emulator


def run(dag: DAG, ids: Path, out: Path) -> Any:
    return dag.test(run_conf={"ids": str(ids), "out": f"{out}/"})


@pytest.mark.parametrize("dag", [run_dag, create_dag], ids=["run", "create"])
@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("ids.txt", "", "nothing to upload, no job created"),
        ("ids.csv", "id\n", "nothing to upload, no job created"),
        ("ids.txt", "0\nx\n", "2 invalid ID value(s) in 2 records"),
    ],
)
def test_a_source_without_a_valid_id_fails_before_any_job_exists(
    airflow_db, api, tmp_path, capfd, dag, name, text, error
):
    ids = tmp_path / name
    ids.write_text(text)
    dag_run = run(dag, ids, tmp_path / "out")
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    assert error in ANSI_CODE.sub("", output.out + output.err)
    assert api.state()["jobs"] == []


def test_a_green_run_logs_no_error(airflow_db, api, tmp_path, capfd, caplog):
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{1_300_000_000_000_000_000 + n * 7919}\n" for n in range(50)))
    caplog.set_level(logging.DEBUG)
    dag_run = run(run_dag, ids, tmp_path / "out")
    assert dag_run.state == "success"
    output = capfd.readouterr()
    printed = (output.out + output.err).splitlines()
    records = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records]
    record_errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(re.search(r"Chunk 1: \d+ result lines", line) for line in printed + records)  # the task's log
    assert [line for line in printed if ERROR_LINE.search(line)] + record_errors == []

"""What the DAG test files share: the run task's settings and how a run is checked against the emulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator

IDS_CONF = "{{ dag_run.conf['ids'] }}"
OUT_CONF = "{{ dag_run.conf['out'] }}"
# Not x_default: DAG parsing inside dag.test() imports tests/conftest.py, which drops AIRFLOW_CONN_X_DEFAULT.
CONN_ID = "x_lifecycle"
FAST = {"poll_interval": 0.2, "retry_delay": timedelta(0), "x_conn_id": CONN_ID}
# What every DAG here shares: one task reading its IDs and destination from the run's conf.
RUN_TASK = {"task_id": "run", "ids": IDS_CONF, "destination": OUT_CONF, **FAST}


def new_dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False)


def run_dag(dag: DAG, ids: Path, out: Path) -> Any:
    return dag.test(run_conf={"ids": str(ids), "out": f"{out}/"})


def results_of(out: Path) -> list[dict[str, Any]]:
    files = sorted(out.glob("*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def ground_truth(emulator: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The result records of every job the emulator ran, but those of the ``skip`` job ids."""
    jobs = [job["id"] for job in emulator.state()["jobs"] if job["id"] not in skip]
    return [record for job_id in jobs for record in emulator.ground_truth(job_id)]


def tries_of(dag_run: Any) -> int:
    return int(dag_run.get_task_instance("run").try_number)


def by_id(records: list[dict[str, Any]]) -> list[str]:
    return sorted(record["id"] for record in records)


class WorkerCrashError(RuntimeError):
    """Stands for a worker dying mid-task (no on_kill runs, nothing is cleaned up)."""


class CrashAfterCreateOperator(XComplianceRunJobOperator):
    """Dies right after its first try created the job, before uploading anything."""

    def _new_runner(self, context: Any, slot_deadline: float | None = None) -> Any:
        runner = super()._new_runner(context, slot_deadline)
        publish = runner.on_job

        def publish_then_die(job: Any) -> None:
            publish(job)
            if context_try() == 1:
                raise WorkerCrashError(f"worker died after creating job {job.id}")

        runner.on_job = publish_then_die
        return runner


class CrashBetweenChunksOperator(XComplianceRunJobOperator):
    """Dies on its first try right after the first chunk's results were downloaded."""

    def _download(self, prepared: Any, chunk: Any, name: str, job: Any) -> Any:
        record = super()._download(prepared, chunk, name, job)
        if context_try() == 1 and chunk.index == 0:
            raise WorkerCrashError("worker died between chunks")
        return record


def context_try() -> int:
    from airflow.sdk import get_current_context

    return int(get_current_context()["ti"].try_number)

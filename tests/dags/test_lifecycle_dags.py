"""The compliance lifecycle in real Airflow: DAGs run with ``dag.test()`` against the emulator.

``dag.test()`` runs deferred triggers inline, so the deferrable path is exercised end to end. It does not
raise when a task fails: each test asserts the DAG run's state. This file is both a DAG file (parsed from the
dags folder, which ``dag.test()`` requires) and a test module.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from tests.dags.support import (
    CONN_ID,
    RUN_TASK,
    CrashAfterCreateOperator,
    CrashBetweenChunksOperator,
    by_id,
    ground_truth,
    new_dag,
    results_of,
    run_dag,
    tries_of,
)

MODES = {  # every dimension both ways: type, deferrable, resumable
    "xc_lifecycle_tweets_deferred_resumable": ("tweets", True, True),
    "xc_lifecycle_users_polling_simple": ("users", False, False),
    "xc_lifecycle_tweets_polling_resumable": ("tweets", False, True),
    "xc_lifecycle_users_deferred_simple": ("users", True, False),
}
for _dag_id, (_type, _deferrable, _resumable) in MODES.items():
    with new_dag(_dag_id) as _mode_dag:
        XComplianceRunJobOperator(job_type=_type, deferrable=_deferrable, resumable=_resumable, **RUN_TASK)
    globals()[_dag_id] = _mode_dag

with new_dag("xc_lifecycle_reattach") as reattach_dag:
    CrashAfterCreateOperator(job_type="tweets", deferrable=True, retries=1, **RUN_TASK)

with new_dag("xc_lifecycle_chunks") as chunks_dag:
    CrashBetweenChunksOperator(job_type="tweets", deferrable=True, max_ids_per_job=40, retries=1, **RUN_TASK)

with new_dag("xc_lifecycle_wait_for_slot") as slot_dag:
    XComplianceRunJobOperator(job_type="users", deferrable=True, **RUN_TASK)


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # each dag.test() parses the dags folder


@pytest.mark.parametrize("dag_id", sorted(MODES))
def test_run_operator_completes_a_job_end_to_end(airflow_db, api, ids_file, tmp_path, dag_id):
    dag_run = run_dag(globals()[dag_id], ids_file, tmp_path / "out")
    assert dag_run.state == "success"
    [job] = api.state()["jobs"]
    assert (job["type"], job["status"], job["uploaded_ids"]) == (MODES[dag_id][0], "complete", 100)
    assert job["resumable"] is MODES[dag_id][2]
    assert by_id(results_of(tmp_path / "out")) == by_id(ground_truth(api))


def test_task_killed_after_creating_its_job_reattaches_on_retry(airflow_db, api, ids_file, tmp_path):
    dag_run = run_dag(reattach_dag, ids_file, tmp_path / "out")
    assert dag_run.state == "success"
    assert tries_of(dag_run) == 2
    [job] = api.state()["jobs"]
    assert (job["status"], job["uploads_completed"]) == ("complete", 1)


def test_chunked_run_killed_between_chunks_resumes_without_redoing_a_chunk(
    airflow_db, api, ids_file, tmp_path
):
    dag_run = run_dag(chunks_dag, ids_file, tmp_path / "out")
    assert dag_run.state == "success"
    assert tries_of(dag_run) == 2
    jobs = api.state()["jobs"]
    assert [job["uploaded_ids"] for job in jobs] == [40, 40, 20]
    assert all(job["uploads_completed"] == 1 for job in jobs)
    assert by_id(results_of(tmp_path / "out")) == by_id(ground_truth(api))


@pytest.mark.parametrize("emulator_config", [{"processing_seconds": 1.5}], indirect=True)
def test_job_started_outside_the_dag_is_waited_out(airflow_db, api, ids_file, tmp_path, monkeypatch):
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    outsider = XComplianceHook(CONN_ID).create_job("users", name="started-by-hand")
    met: list[str] = []  # the outsider's status in the task's listing after its create was refused
    list_jobs = XComplianceHook.list_jobs

    def list_then_start_the_outsider(hook: XComplianceHook, *args: Any, **kwargs: Any) -> Any:
        """The outsider uploads right after the task, refused the slot, looked for who holds it: the task
        met a created job (which holds the slot too) and waits for it, however slowly the task started."""
        jobs = list_jobs(hook, *args, **kwargs)
        if api.state()["requests"].get("POST /2/compliance/jobs", 0) == 2 and not met:
            met.append(next((job.status.value for job in jobs if job.id == outsider.id), "not listed"))
            XComplianceHook(CONN_ID).upload_ids(outsider, ids_file)
        return jobs

    monkeypatch.setattr(XComplianceHook, "list_jobs", list_then_start_the_outsider)
    dag_run = run_dag(slot_dag, ids_file, tmp_path / "out")
    assert met == ["created"]
    assert dag_run.state == "success"
    state = api.state()
    assert [job["status"] for job in state["jobs"]] == ["complete", "complete"]
    assert state["requests"]["POST /2/compliance/jobs"] == 3  # the outsider's, a conflict, ours


FAILING = {"fail_jobs": 1, "fail_jobs_error": "Simulated processing failure 4711"}


@pytest.mark.parametrize("emulator_config", [FAILING], indirect=True)
@pytest.mark.parametrize(
    "dag_id", ["xc_lifecycle_users_deferred_simple", "xc_lifecycle_users_polling_simple"]
)
def test_failing_job_fails_the_task_with_its_error_text(airflow_db, api, ids_file, tmp_path, dag_id, capfd):
    dag_run = run_dag(globals()[dag_id], ids_file, tmp_path / "out")
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    assert "Simulated processing failure 4711" in output.out + output.err


@pytest.mark.parametrize("emulator_config", [{"max_upload_ids": 50}], indirect=True)
def test_job_too_large_for_the_api_fails_suggesting_max_ids_per_job(
    airflow_db, api, ids_file, tmp_path, capfd
):
    dag_run = run_dag(globals()["xc_lifecycle_users_polling_simple"], ids_file, tmp_path / "out")
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    assert "set max_ids_per_job lower" in output.out + output.err


@pytest.mark.parametrize("emulator_config", [{"max_upload_ids": 50}], indirect=True)
def test_chunks_below_the_api_size_cap_succeed(airflow_db, api, ids_file, tmp_path):
    dag_run = run_dag(chunks_dag, ids_file, tmp_path / "out")
    assert dag_run.state == "success"
    assert sum(job["uploaded_ids"] for job in api.state()["jobs"]) == 100

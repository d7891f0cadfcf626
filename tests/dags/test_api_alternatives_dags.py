"""The run operator end to end (``dag.test()``) against the emulator under each alternative X's docs show.

Each flag is one shape of the real API that the provider must read (see the emulator's docstring): the run
must succeed, deliver exactly the emulator's ground truth, and log no ERROR line. This file is both a DAG
file and a test module, like ``test_lifecycle_dags.py``.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from tests.dags.support import (
    CONN_ID,
    RUN_TASK,
    CrashAfterCreateOperator,
    by_id,
    ground_truth,
    new_dag,
    results_of,
    run_dag,
    tries_of,
)

# dag id -> (deferrable, resumable, chunked): a mode per DAG, so each flag runs in the modes it stresses.
MODES = {
    "xc_api_deferred_resumable": (True, True, False),
    "xc_api_polling_resumable": (False, True, False),
    "xc_api_deferred_simple": (True, False, False),
    "xc_api_polling_chunked": (False, False, True),
}
for _dag_id, (_deferrable, _resumable, _chunked) in MODES.items():
    with new_dag(_dag_id) as _mode_dag:
        XComplianceRunJobOperator(
            job_type="tweets",
            deferrable=_deferrable,
            resumable=_resumable,
            max_ids_per_job=40 if _chunked else None,
            **RUN_TASK,
        )
    globals()[_dag_id] = _mode_dag

with new_dag("xc_api_users_deferred") as users_dag:
    XComplianceRunJobOperator(job_type="users", deferrable=True, **RUN_TASK)

with new_dag("xc_api_reattach") as reattach_dag:
    CrashAfterCreateOperator(job_type="tweets", deferrable=True, retries=1, **RUN_TASK)

with new_dag("xc_api_deadline") as deadline_dag:
    XComplianceRunJobOperator(job_type="tweets", deferrable=True, timeout=2.0, **RUN_TASK)


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_CANCEL = {"no_cancel_route": True}
# An upload window shorter than the operator's 60 s margin: a job found on a retry is replaced, not used.
SHORT_WINDOW = {"upload_window_seconds": 5.0}
FLAGS = {
    "no-cancel-route": NO_CANCEL,
    "no-resumable-field": {"omit_resumable": True},
    "no-expires-at": {"omit_expires_at": True},
    "unknown-status": {"in_progress_status": "processing", "processing_seconds": 1.0},
    "foreign-jobs": {"foreign_jobs": True},
    "every-alternative": {
        **NO_CANCEL,
        "omit_resumable": True,
        "omit_expires_at": True,
        "in_progress_status": "processing",
        "processing_seconds": 1.0,
        "foreign_jobs": True,
    },
}


def error_lines(output: Any) -> list[str]:
    """Log lines at ERROR level in what a run printed (Airflow's console format and the stdlib's)."""
    text = output.out + output.err
    # The level token only: a rendered traceback may quote source lines that mention errors.
    return [line for line in text.splitlines() if re.search(r"\[error\s*\]|\bERROR - ", line, re.IGNORECASE)]


def crashed_once(capfd: Any) -> Any:
    """``capfd`` after checking that the only ERROR line so far is the simulated crash of the first try."""
    errors = error_lines(capfd.readouterr())
    assert len(errors) == 1
    assert "Task failed with exception" in errors[0]
    return capfd


def assert_green_and_exact(dag_run: Any, api: Any, out: Any, capfd: Any, outsider: str = "") -> None:
    """Success, every uploaded job complete, exactly the emulator's results, and no ERROR line."""
    assert dag_run.state == "success"
    jobs = [job for job in api.state()["jobs"] if job["uploads_completed"]]
    assert jobs
    assert all(job["status"] == "complete" for job in jobs)
    assert by_id(results_of(out)) == by_id(ground_truth(api, skip=(outsider,)))
    assert error_lines(capfd.readouterr()) == []


@pytest.mark.parametrize("emulator_config", list(FLAGS.values()), ids=list(FLAGS), indirect=True)
@pytest.mark.parametrize("dag_id", sorted(MODES))
def test_run_succeeds_under_each_alternative(airflow_db, api, ids_file, tmp_path, dag_id, capfd):
    dag_run = run_dag(globals()[dag_id], ids_file, tmp_path / "out")

    assert_green_and_exact(dag_run, api, tmp_path / "out", capfd)


@pytest.mark.parametrize(
    ("emulator_config", "replaced_status"),
    [(SHORT_WINDOW, "failed"), ({**SHORT_WINDOW, **NO_CANCEL}, "expired")],  # cancelled, or expired by itself
    ids=["cancel", "no-cancel"],
    indirect=["emulator_config"],
)
def test_job_whose_upload_window_closed_is_replaced_with_or_without_cancel(
    airflow_db, api, ids_file, tmp_path, capfd, replaced_status
):
    dag_run = run_dag(reattach_dag, ids_file, tmp_path / "out")

    assert_green_and_exact(dag_run, api, tmp_path / "out", crashed_once(capfd))
    assert tries_of(dag_run) == 2
    replaced, used = api.state()["jobs"]
    assert (replaced["status"], replaced["uploads_completed"]) == (replaced_status, 0)
    assert used["uploads_completed"] == 1


class MovableClock:
    """Wall time plus an offset the test moves: the outsider's job ends when the test says, not by luck."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


OUTSIDER_CLOCK = MovableClock()


def move_time_past_each_job(api: Any) -> tuple[threading.Thread, list[bool]]:
    """Jobs here process for half an hour of emulator time: move time on once the DAG's create was refused
    (the outsider then ends), and again once the DAG's own job is processing (so it ends too). The list says,
    per step, whether its moment came (a step whose moment never comes moves time after two minutes anyway,
    so the DAG still ends and the test can say which step was missed)."""
    seen: list[bool] = []

    def waited_for(condition: Any) -> None:
        deadline, met = time.monotonic() + 120, False
        while not met and time.monotonic() < deadline:
            met = condition(api.state())
            time.sleep(0 if met else 0.1)
        seen.append(met)
        OUTSIDER_CLOCK.offset += 3600

    def watch() -> None:
        waited_for(lambda state: state["requests"].get("POST /2/compliance/jobs", 0) >= 2)
        waited_for(lambda state: [job["status"] for job in state["jobs"]][1:] == ["in_progress"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


@pytest.mark.parametrize(
    "emulator_config",
    [{"conflict_status": 400, "processing_seconds": 1800.0, "clock": OUTSIDER_CLOCK}],
    indirect=True,
)
def test_conflict_answered_as_400_is_waited_out(airflow_db, api, ids_file, tmp_path, capfd):
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    hook = XComplianceHook(CONN_ID)
    outsider = hook.create_job("users", name="started-by-hand")
    hook.upload_ids(outsider, ids_file)
    watcher, seen = move_time_past_each_job(api)

    dag_run = run_dag(users_dag, ids_file, tmp_path / "out")

    watcher.join()
    assert seen == [True, True]  # the create was refused, then the DAG's own job was processing
    assert_green_and_exact(dag_run, api, tmp_path / "out", capfd, outsider=outsider.id)
    assert api.state()["requests"]["POST /2/compliance/jobs"] == 3  # the outsider's, a 400 conflict, ours


@pytest.mark.parametrize("emulator_config", [{**NO_CANCEL, "processing_seconds": 60.0}], indirect=True)
def test_missed_deadline_without_cancel_fails_on_the_deadline_and_leaves_the_job_to_x(
    airflow_db, api, ids_file, tmp_path, capfd
):
    dag_run = run_dag(deadline_dag, ids_file, tmp_path / "out")

    assert dag_run.state == "failed"
    [job] = api.state()["jobs"]
    assert job["status"] == "in_progress"
    output = capfd.readouterr()
    text = output.out + output.err
    assert "did not end before its deadline" in text
    assert "finish on X's side" in text

"""The provider deployed the way a data team deploys it: real scheduler, dag-processor, triggerer, api-server.

One DAG run (``dags/xcompliance_deployment.py``) against an in-process emulator whose clock the test holds,
so every job stays ``in_progress`` until the test lets them all complete. While they wait:
``deferred_cleared`` is cleared through the REST API, ``polling_killed``'s task process gets ``kill -9``
and ``deferred_marked_failed`` is marked failed. Then the jobs complete and the test checks that each task
ran exactly one job, that the cleared and the killed one delivered complete results, that only the job of
the task marked failed was cancelled, and that no secret reached a log, the database or its XComs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from airflow_provider_xcompliance.version_compat import AIRFLOW_V_3_1_PLUS
from tests.deployment.airflow_processes import Deployment, deployed, wait_for

DAGS = Path(__file__).parent / "dags"
DAG_ID = "xcompliance_deployment"
TOKEN = "deployment-test-bearer-token-8f3a1c"
PROCESSING_SECONDS = 3600.0  # jobs stay in progress until the test moves the emulator's clock past this
IDS = 200
STEP_TIMEOUT = 90.0  # generous for a loaded 2-core machine; the whole test still ends well before it adds up


class HeldClock:
    """The emulator's clock: wall time, plus a jump the test makes to let every waiting job complete."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def complete_all_jobs(self) -> None:
        self.offset += PROCESSING_SECONDS + 1


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def x_api(clock: HeldClock) -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(
        token=TOKEN,
        processing_seconds=PROCESSING_SECONDS,
        unfinished_jobs_per_type=4,  # the four tasks wait side by side
        rate_limit_count=1_000_000,
        clock=clock,
    )
    with run_emulator(config) as handle:
        yield handle


@pytest.fixture
def airflow(tmp_path: Path, x_api: EmulatorHandle) -> Iterator[Deployment]:
    with deployed(tmp_path / "airflow-home", DAGS) as deployment:
        deployment.call(
            "POST",
            "/connections",
            json={
                "connection_id": "x_default",
                "conn_type": "x_api",
                "host": x_api.base_url,
                "password": TOKEN,
            },
        )
        yield deployment


class Run:
    """One DAG run seen through the REST API."""

    def __init__(self, airflow: Deployment, run_id: str) -> None:
        self.airflow, self.run_id = airflow, run_id
        self.path = f"/dags/{DAG_ID}/dagRuns/{run_id}"

    def ti(self, task_id: str) -> dict[str, Any]:
        return dict(self.airflow.call("GET", f"{self.path}/taskInstances/{task_id}"))

    def wait_until(self, task_id: str, state: str, try_number: int = 1) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            ti = self.ti(task_id)
            return ti if (ti["state"], ti["try_number"]) == (state, try_number) else None

        try:
            return wait_for(reached, STEP_TIMEOUT, f"{task_id} try {try_number} to be {state}")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.diagnosis(task_id)}") from None

    def diagnosis(self, task_id: str) -> str:
        """What a failed wait shows: the task instance, the ends of its logs and of the scheduler's output."""
        ti = self.ti(task_id)
        tries = range(1, int(ti["try_number"]) + 1)
        logs = [f"--- {task_id} try {n} ---\n{_tail(self.task_log(task_id, n))}" for n in tries]
        logs += [f"--- trigger of try {n} ---\n{_tail(self.trigger_log(task_id, n))}" for n in tries]
        return "\n".join([f"task instance: {ti}", *logs, "--- scheduler ---", self.airflow.tail("scheduler")])

    def clear(self, task_id: str) -> None:
        body = {"dry_run": False, "task_ids": [task_id], "dag_run_id": self.run_id, "only_failed": False}
        self.airflow.call("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)

    def mark(self, task_id: str, state: str) -> None:
        self.airflow.call("PATCH", f"{self.path}/taskInstances/{task_id}", json={"new_state": state})

    def _logs(self, task_id: str, pattern: str) -> str:
        run = self.airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={self.run_id}"
        return "".join(
            path.read_text(errors="replace") for path in (run / f"task_id={task_id}").glob(pattern)
        )

    def task_log(self, task_id: str, try_number: int) -> str:
        return self._logs(task_id, f"attempt={try_number}.log")

    def trigger_log(self, task_id: str, try_number: int) -> str:
        """What the trigger of one try logged: the triggerer writes it beside the task's own log."""
        return self._logs(task_id, f"attempt={try_number}.log.trigger.*.log")

    def result(self, task_id: str) -> dict[str, Any]:
        entry = self.airflow.call("GET", f"{self.path}/taskInstances/{task_id}/xcomEntries/return_value")
        return dict(entry["value"])


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(line[:400] for line in text.splitlines()[-lines:])


def jobs_by_task(x_api: EmulatorHandle) -> dict[str, list[dict[str, Any]]]:
    """The emulator's jobs grouped by the task in their deterministic name (``<dag>.<task>-<hash>``)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in x_api.state()["jobs"]:
        task = job["name"].split(".", 1)[1].rsplit("-", 1)[0]
        grouped.setdefault(task, []).append(job)
    return grouped


def job_status(x_api: EmulatorHandle, task_id: str) -> str | None:
    jobs = jobs_by_task(x_api).get(task_id, [])
    return jobs[0]["status"] if len(jobs) == 1 else None


def wait_for_job(x_api: EmulatorHandle, task_id: str, status: str) -> None:
    wait_for(
        lambda: job_status(x_api, task_id) == status, STEP_TIMEOUT, f"the job of {task_id} to be {status}"
    )


def wait_for_text(read: Callable[[], str], text: str, what: str) -> None:
    wait_for(lambda: text in read(), STEP_TIMEOUT, f"{what} ({text!r} in the log)")


def on_kill_log(airflow: Deployment, run: Run) -> str:
    """Where the cleared try's on_kill logs: its trigger log, or the triggerer's own when Airflow closed that
    file first (the trigger's end and its last lines reach the triggerer on two sockets, in either order)."""
    return run.trigger_log("deferred_cleared", 1) + airflow.tail("triggerer", lines=1_000_000)


def test_deployed_provider_survives_clear_kill_and_mark_failed(tmp_path, airflow, x_api, clock):
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{1_400_000_000_000_000_000 + n}\n" for n in range(IDS)))
    out = tmp_path / "results"
    created = airflow.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"ids": str(ids), "out": str(out)}},
    )
    run = Run(airflow, created["dag_run_id"])

    # Every task has its job in progress: two deferred to the triggerer, two polling in their workers.
    run.wait_until("deferred_cleared", "deferred")
    run.wait_until("deferred_marked_failed", "deferred")
    polling = run.wait_until("polling_killed", "running")
    run.wait_until("polling_marked_failed", "running")
    wait_for_job(x_api, "polling_killed", "in_progress")
    wait_for_job(x_api, "polling_marked_failed", "in_progress")
    wait_for_text(lambda: run.trigger_log("deferred_cleared", 1), "is in_progress", "the trigger to poll")

    # kill -9 of the worker's task process: the retry reattaches to the same job.
    os.kill(polling["pid"], signal.SIGKILL)
    if (
        not AIRFLOW_V_3_1_PLUS
    ):  # 3.0 fails a task killed by a signal whatever its retries (apache/airflow#55767)
        run.wait_until("polling_killed", "failed")
        run.clear("polling_killed")  # what a person does then: the next try reattaches all the same
    run.wait_until("polling_killed", "running", try_number=2)

    # A clear while deferred: the old trigger's on_kill leaves the job, the next try reattaches and defers.
    run.clear("deferred_cleared")
    run.wait_until("deferred_cleared", "deferred", try_number=2)
    (job,) = jobs_by_task(x_api)["deferred_cleared"]
    wait_for_text(
        lambda: on_kill_log(airflow, run), f"Not cancelling job {job['id']}", "on_kill to leave the job"
    )
    assert job_status(x_api, "deferred_cleared") == "in_progress"

    # Marked failed, deferred or polling: the job is cancelled, and the polling task stops at once.
    run.mark("deferred_marked_failed", "failed")
    run.mark("polling_marked_failed", "failed")
    wait_for_job(x_api, "deferred_marked_failed", "failed")
    wait_for_job(x_api, "polling_marked_failed", "failed")
    wait_for_text(
        lambda: run.task_log("polling_marked_failed", 1), "AirflowTaskTerminated", "the task to stop"
    )
    assert "JobFailedError" not in run.task_log("polling_marked_failed", 1)  # it did not poll on

    # Airflow 3.3 fails a resumed task whose trigger fired before the scheduler saw its worker exit from the
    # deferral (it forgives that only while the task is scheduled, not queued): real jobs take minutes.
    wait_for_text(
        lambda: airflow.tail("scheduler", lines=1_000_000),
        "with state success for task instance TaskInstanceKey("
        f"dag_id='{DAG_ID}', task_id='deferred_cleared', run_id='{run.run_id}', try_number=2",
        "the scheduler to see try 2's worker exit after deferring",
    )
    clock.complete_all_jobs()
    run.wait_until("deferred_cleared", "success", try_number=2)
    run.wait_until("polling_killed", "success", try_number=2)

    jobs = jobs_by_task(x_api)
    assert {task: len(found) for task, found in jobs.items()} == {
        "deferred_cleared": 1,
        "deferred_marked_failed": 1,
        "polling_killed": 1,
        "polling_marked_failed": 1,
    }
    for task_id in ("deferred_cleared", "polling_killed"):
        (job,) = jobs[task_id]
        result = run.result(task_id)
        assert job["status"] == "complete"
        assert result["job_ids"] == [job["id"]]
        assert result["uploaded_ids"] == IDS
        assert result["result_lines"] == len(x_api.ground_truth(job["id"])) == job["result_count"]
    assert_no_secret_anywhere(airflow.home, x_api, [job for found in jobs.values() for job in found])


def assert_no_secret_anywhere(home: Path, x_api: EmulatorHandle, jobs: list[dict[str, Any]]) -> None:
    """Neither the token nor a signed URL's signature in any log, the database (XComs, rendered fields...)."""
    secrets = [TOKEN.encode(), b"X-Goog-Signature"]
    for job in jobs:
        answer = httpx.get(
            f"{x_api.base_url}/2/compliance/jobs/{job['id']}", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()["data"]
        secrets += [url.split("?", 1)[1].encode() for url in (answer["upload_url"], answer["download_url"])]
    contents = {path: path.read_bytes() for path in home.rglob("*") if path.is_file()}
    # The search reads plain text: the connection's host in the database, the job ids in the task logs.
    database = b"".join(data for path, data in contents.items() if path.name.startswith("airflow.db"))
    task_logs = b"".join(data for path, data in contents.items() if path.name.startswith("attempt="))
    assert x_api.base_url.encode() in database
    assert all(job["id"].encode() in task_logs for job in jobs)
    leaks = [(str(path), secret) for path, data in contents.items() for secret in secrets if secret in data]
    assert leaks == []

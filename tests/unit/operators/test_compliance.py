from __future__ import annotations

import itertools
import json
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_xcompliance import storage
from airflow_provider_xcompliance.exceptions import (
    CancelNotSupportedError,
    InvalidIdsError,
    JobConflictError,
    JobExpiredError,
    JobFailedError,
    JobTimeoutError,
    SourceChangedError,
    UploadRejectedError,
    XComplianceError,
)
from airflow_provider_xcompliance.lifecycle import DEFER_BACKSTOP_SECONDS
from airflow_provider_xcompliance.models import Job, JobStatus
from airflow_provider_xcompliance.operators.compliance import (
    XComplianceCreateJobOperator,
    XComplianceDownloadResultsOperator,
    XComplianceRunJobOperator,
)
from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger
from airflow_provider_xcompliance.version_compat import AirflowTaskTerminated, TaskDeferred
from tests.conftest import record_calls
from tests.unit.jobs import FakeHook, make_job


class FakeTI:
    def __init__(self, run_id: str = "manual__2026-05-01T12:00:00+00:00") -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "dag", "task", run_id, -1
        self.start_date = datetime.now(timezone.utc)
        self.xcom: list[tuple[str, Any]] = []
        self.state: str | None = "running"  # what the Execution API says about this task instance

    def get_task_states(self, **query: Any) -> dict[str, Any]:
        return {self.run_id: {self.task_id: self.state}}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom.append((key, value))

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        return next((value for pushed, value in reversed(self.xcom) if pushed == key), None)


@pytest.fixture(autouse=True)
def staging_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()


@pytest.fixture
def ids_file(tmp_path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{n}\n" for n in range(100, 110)))
    return path


@pytest.fixture
def hook() -> FakeHook:
    return FakeHook()


@pytest.fixture
def ti() -> FakeTI:
    return FakeTI()


def context_of(ti: FakeTI) -> Any:
    return {"ti": ti}


def create_op(hook: FakeHook, ids: Path, **kwargs: Any) -> XComplianceCreateJobOperator:
    op = XComplianceCreateJobOperator(task_id="task", job_type="tweets", ids=str(ids), **kwargs)
    op.hook = hook  # type: ignore[misc]
    return op


def run_op(hook: FakeHook, ids: Path, destination: Path, **kwargs: Any) -> XComplianceRunJobOperator:
    op = XComplianceRunJobOperator(
        task_id="task", job_type="tweets", ids=str(ids), destination=f"{destination}/", **kwargs
    )
    op.hook = hook  # type: ignore[misc]
    return op


# --- create operator ----------------------------------------------------------------------------------------


def test_create_returns_the_uploaded_job(hook, ti, ids_file):
    job_id = create_op(hook, ids_file).execute(context_of(ti))
    assert hook.uploads == [(job_id, 10)]
    assert hook.jobs[job_id].status is JobStatus.IN_PROGRESS


def test_create_pushes_the_job_id_before_the_upload_can_fail(hook, ti, ids_file):
    hook.fail_next_upload = UploadRejectedError("HTTP 413")
    with pytest.raises(UploadRejectedError):
        create_op(hook, ids_file).execute(context_of(ti))
    assert ("job_id", hook.created[0]) in ti.xcom


def test_rejected_upload_suggests_max_ids_per_job_and_frees_the_slot(hook, ti, ids_file):
    hook.fail_next_upload = UploadRejectedError("HTTP 413 Payload Too Large")
    with pytest.raises(UploadRejectedError, match="max_ids_per_job") as raised:
        create_op(hook, ids_file).execute(context_of(ti))
    assert "10 IDs" in str(raised.value)
    assert hook.cancelled == hook.created


def test_invalid_ids_fail_before_any_job_exists(hook, ti, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("123\nnot-an-id\n")
    with pytest.raises(InvalidIdsError):
        create_op(hook, bad).execute(context_of(ti))
    assert hook.created == []


EMPTY_SOURCES = {"empty.txt": "", "blank.txt": "\n \n", "header.csv": "id\n", "invalid.txt": "bad\n0\n"}


@pytest.mark.parametrize("operator", [create_op, run_op])
@pytest.mark.parametrize("name", sorted(EMPTY_SOURCES))
def test_a_source_without_a_valid_id_fails_before_any_job_exists(hook, ti, tmp_path, operator, name):
    ids = tmp_path / name
    ids.write_text(EMPTY_SOURCES[name])
    args = (hook, ids, tmp_path / "out") if operator is run_op else (hook, ids)
    with pytest.raises(InvalidIdsError, match=f"No valid ID in '{ids}': nothing to upload, no job created"):
        operator(*args, on_invalid="skip").execute(context_of(ti))
    assert hook.created == []


def test_a_source_fixed_after_a_try_without_valid_ids_is_read_again(hook, ti, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("bad\n")
    with pytest.raises(InvalidIdsError, match="No valid ID"):
        run_op(hook, ids, tmp_path / "out", on_invalid="skip").execute(context_of(ti))
    assert "bad" in next((tmp_path / "out").glob("*rejects*")).read_text()  # published for the user
    ids.write_text("101\n")
    summary = run_op(hook, ids, tmp_path / "out", on_invalid="skip").execute(context_of(ti))
    assert summary["uploaded_ids"] == 1


def test_the_first_call_of_a_run_try_records_no_chunk_before_any_pull(hook, ti, ids_file, tmp_path):
    pulled: list[str] = []
    pull = ti.xcom_pull

    def recording_pull(task_ids: str, key: str, map_indexes: int) -> Any:
        pulled.append(key)
        assert (key, []) in ti.xcom, "a pull of a key never pushed logs an ERROR in Airflow"
        return pull(task_ids, key, map_indexes)

    ti.xcom_pull = recording_pull  # type: ignore[method-assign]
    run_op(hook, ids_file, tmp_path / "out").execute(context_of(ti))
    assert pulled == ["chunks"]


def test_retried_create_reuses_an_uploaded_job(hook, ti, ids_file):
    first = create_op(hook, ids_file).execute(context_of(ti))
    assert create_op(hook, ids_file).execute(context_of(ti)) == first
    assert len(hook.created) == len(hook.uploads) == 1


def test_retried_create_uploads_to_a_job_left_created(hook, ti, ids_file):
    hook.fail_next_upload = ConnectionError("worker died")
    with pytest.raises(ConnectionError):
        create_op(hook, ids_file).execute(context_of(ti))
    job_id = create_op(hook, ids_file).execute(context_of(ti))
    assert hook.created == [job_id]
    assert hook.uploads == [(job_id, 10)]


@pytest.mark.parametrize("ended", [JobStatus.FAILED, JobStatus.EXPIRED])
def test_retried_create_replaces_a_job_that_ended_badly(hook, ti, ids_file, ended):
    first = create_op(hook, ids_file).execute(context_of(ti))
    hook._set(first, status=ended)
    second = create_op(hook, ids_file).execute(context_of(ti))
    assert second != first
    assert hook.created == [first, second]


def test_distinct_runs_never_reattach_each_others_jobs(hook, ids_file):
    first = create_op(hook, ids_file).execute(context_of(FakeTI("run_1")))
    assert create_op(hook, ids_file).execute(context_of(FakeTI("run_2"))) != first


def test_job_whose_upload_window_closed_is_abandoned_for_a_fresh_one(hook, ti, ids_file, monkeypatch):
    hook.fail_next_upload = ConnectionError("worker died")
    with pytest.raises(ConnectionError):
        create_op(hook, ids_file).execute(context_of(ti))
    stale = hook.created[0]
    lapsing = datetime.now(timezone.utc) + timedelta(seconds=5)
    hook._set(stale, upload_expires_at=lapsing)
    fresh = create_op(hook, ids_file).execute(context_of(ti))
    assert fresh != stale
    assert hook.cancelled == [stale]
    assert hook.uploads == [(fresh, 10)]


def test_conflict_fails_fast_naming_the_job_that_holds_the_slot(hook, ti, ids_file):
    holder = hook.add(make_job(JobStatus.IN_PROGRESS, name="someone-else"))
    with pytest.raises(JobConflictError, match=f"job {holder.id} \\(name someone-else"):
        create_op(hook, ids_file, on_conflict="fail").execute(context_of(ti))


def test_conflict_defers_on_the_holder_without_cancelling_it_on_kill(hook, ti, ids_file):
    holder = hook.add(make_job(JobStatus.IN_PROGRESS))
    op = create_op(hook, ids_file, deferrable=True, slot_wait_timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context_of(ti))
    trigger = deferred.value.trigger
    assert isinstance(trigger, XComplianceJobTrigger)
    assert (trigger.job_id, trigger.cancel_on_kill) == (holder.id, False)
    assert trigger.deadline == pytest.approx(time.time() + 600, abs=5)
    assert deferred.value.method_name == "execute_after_slot_wait"
    assert deferred.value.timeout > timedelta(seconds=600)


def test_slot_wait_resumes_by_creating_the_job(hook, ti, ids_file):
    holder = hook.add(make_job(JobStatus.IN_PROGRESS))
    op = create_op(hook, ids_file, deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(context_of(ti))
    hook._set(holder.id, status=JobStatus.COMPLETE)
    event = {"status": "success", "job_id": holder.id, "job_status": "complete", "message": "done"}
    job_id = op.execute_after_slot_wait(context_of(ti), event=event)
    assert hook.created == [job_id]


def test_slot_taken_again_after_a_wait_keeps_waiting_against_the_same_deadline(hook, ti, ids_file):
    hook.add(make_job(JobStatus.IN_PROGRESS))
    deadline = time.time() + 900
    event = {
        "status": "success",
        "job_id": "42",
        "job_status": "complete",
        "message": "m",
        "deadline": deadline,
    }
    with pytest.raises(TaskDeferred) as deferred:
        create_op(hook, ids_file, deferrable=True).execute_after_slot_wait(context_of(ti), event=event)
    assert deferred.value.trigger.deadline == deadline


def test_slot_wait_that_times_out_fails_with_the_holder(hook, ti, ids_file):
    event = {"status": "timeout", "job_id": "42", "job_status": "in_progress", "message": "late"}
    with pytest.raises(JobConflictError, match="job 42"):
        create_op(hook, ids_file).execute_after_slot_wait(context_of(ti), event=event)


def test_non_deferrable_conflict_waits_for_the_holder_then_creates(hook, ti, ids_file):
    holder = hook.add(make_job(JobStatus.IN_PROGRESS))
    job_id = create_op(hook, ids_file).execute(context_of(ti))
    assert hook.jobs[holder.id].status is JobStatus.COMPLETE
    assert hook.created == [job_id]


# --- run operator: deferral and resumption ------------------------------------------------------------------


def test_run_defers_with_the_job_trigger_a_deadline_and_a_later_backstop(hook, ti, ids_file, tmp_path):
    op = run_op(hook, ids_file, tmp_path / "out", deferrable=True, execution_timeout=timedelta(hours=2))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context_of(ti))
    trigger = deferred.value.trigger
    assert isinstance(trigger, XComplianceJobTrigger)
    assert trigger.job_id == hook.created[0]
    assert trigger.cancel_on_kill is True
    assert trigger.deadline == pytest.approx(time.time() + 7200, abs=5)
    assert deferred.value.method_name == "execute_complete"
    assert timedelta(hours=2) < deferred.value.timeout <= timedelta(hours=2, seconds=DEFER_BACKSTOP_SECONDS)


def test_deadline_counts_from_the_start_of_the_try_not_from_a_resume(hook, ti, ids_file, tmp_path):
    ti.start_date = datetime.now(timezone.utc) - timedelta(hours=1)
    op = run_op(hook, ids_file, tmp_path / "out", deferrable=True, timeout=7200)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context_of(ti))
    assert deferred.value.trigger.deadline == pytest.approx(ti.start_date.timestamp() + 7200)


def defer_run(hook: FakeHook, ti: FakeTI, ids: Path, out: Path, **kwargs: Any) -> XComplianceRunJobOperator:
    op = run_op(hook, ids, out, deferrable=True, **kwargs)
    with pytest.raises(TaskDeferred):
        op.execute(context_of(ti))
    return op


def event(status: str, job_id: str, job_status: str | None, **extra: Any) -> dict[str, Any]:
    return {"status": status, "job_id": job_id, "job_status": job_status, "message": f"m-{status}", **extra}


def test_success_event_downloads_and_returns_a_summary(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    job_id = hook.created[0]
    hook._set(job_id, status=JobStatus.COMPLETE)
    summary = op.execute_complete(context_of(ti), event=event("success", job_id, "complete"))
    assert summary["job_ids"] == [job_id]
    assert summary["uploaded_ids"] == 10
    assert summary["result_lines"] == 1
    assert Path(summary["results_uris"][0]).read_text().startswith(f'{{"id": "{job_id}"')
    assert "upload_url" not in str(summary)


def test_timeout_event_cancels_the_job_then_fails(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    job_id = hook.created[0]
    with pytest.raises(JobTimeoutError):
        op.execute_complete(context_of(ti), event=event("timeout", job_id, "in_progress"))
    assert hook.cancelled == [job_id]


def test_timeout_event_fails_even_when_cancel_is_unsupported(hook, ti, ids_file, tmp_path, capsys):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    hook.cancel_error = CancelNotSupportedError("no DELETE")
    with pytest.raises(JobTimeoutError, match="left to finish on X's side"):
        op.execute_complete(context_of(ti), event=event("timeout", hook.created[0], "in_progress"))
    logged = capsys.readouterr().out
    # Airflow 3.3 renders levels as "[warning  ]", 3.0 as "WARNING -"
    assert re.search(r"warning.*Job .*will finish on X's side", logged, re.IGNORECASE)
    assert not re.search(r"\[error|\bERROR\b", logged)


def test_on_kill_without_cancel_logs_that_the_job_finishes_on_its_own(hook, ti, ids_file, tmp_path, capsys):
    op = run_op(hook, ids_file, tmp_path / "out", deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(context_of(ti))
    hook.cancel_error = CancelNotSupportedError("no DELETE")
    op.on_kill()
    logged = capsys.readouterr().out
    assert "has no cancel" in logged
    assert not re.search(r"\[error|\bERROR\b", logged)


def test_without_cancel_a_lapsed_job_is_waited_out_then_replaced(hook, ti, ids_file):
    hook.fail_next_upload = ConnectionError("worker died")
    with pytest.raises(ConnectionError):
        create_op(hook, ids_file).execute(context_of(ti))
    stale = hook.created[0]
    hook._set(stale, upload_expires_at=datetime.now(timezone.utc) + timedelta(seconds=5))
    hook.cancel_error = CancelNotSupportedError("no DELETE")
    fresh = create_op(hook, ids_file).execute(context_of(ti))
    assert fresh != stale
    assert hook.cancelled == [stale]
    assert hook.jobs[stale].status is JobStatus.EXPIRED  # the slot came free by itself
    assert hook.uploads == [(fresh, 10)]


def test_failed_job_event_fails_with_the_job_error_text(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    failed = event("error", hook.created[0], "failed", error="corrupt upload")
    with pytest.raises(JobFailedError, match="corrupt upload") as raised:
        op.execute_complete(context_of(ti), event=failed)
    assert "max_ids_per_job" not in str(raised.value)


def test_job_failing_with_a_size_error_suggests_max_ids_per_job(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    failed = event("error", hook.created[0], "failed", error="Upload too large")
    with pytest.raises(JobFailedError, match="max_ids_per_job") as raised:
        op.execute_complete(context_of(ti), event=failed)
    assert "10 IDs" in str(raised.value)


def test_expired_job_event_fails_as_expired(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    with pytest.raises(JobExpiredError):
        op.execute_complete(context_of(ti), event=event("error", hook.created[0], "expired"))


def test_polling_error_event_fails_without_cancelling_so_a_retry_reattaches(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    with pytest.raises(XComplianceError, match="m-error"):
        op.execute_complete(context_of(ti), event=event("error", hook.created[0], None))
    assert hook.cancelled == []


@pytest.mark.parametrize("bad", [None, {"status": "weird", "job_id": "1"}, {"status": "success"}])
def test_execute_complete_fails_closed_on_a_missing_or_unknown_event(hook, ti, ids_file, tmp_path, bad):
    op = defer_run(hook, ti, ids_file, tmp_path / "out")
    with pytest.raises(XComplianceError, match="Unexpected trigger event"):
        op.execute_complete(context_of(ti), event=bad)


def test_job_already_complete_after_upload_is_downloaded_without_deferring(hook, ti, ids_file, tmp_path):
    hook.complete_on_upload = True
    summary = run_op(hook, ids_file, tmp_path / "out", deferrable=True).execute(context_of(ti))
    assert summary["job_ids"] == hook.created


# --- run operator: chunks, progress and retries -------------------------------------------------------------


def test_chunks_run_one_after_another_each_with_its_results(hook, ti, ids_file, tmp_path):
    summary = run_op(hook, ids_file, tmp_path / "out", max_ids_per_job=4).execute(context_of(ti))
    assert [count for _, count in hook.uploads] == [4, 4, 2]
    assert summary["uploaded_ids"] == 10
    assert len(set(summary["results_uris"])) == 3
    assert [c["index"] for c in summary["chunks"]] == [0, 1, 2]
    assert [c["job_name"].split("-")[-2][-3:] for c in summary["chunks"]] == [".c0", ".c1", ".c2"]


def test_deferred_chunks_continue_with_the_next_chunk_after_each_event(hook, ti, ids_file, tmp_path):
    op = defer_run(hook, ti, ids_file, tmp_path / "out", max_ids_per_job=6)
    first = hook.created[0]
    hook._set(first, status=JobStatus.COMPLETE)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(context_of(ti), event=event("success", first, "complete"))
    second = hook.created[1]
    assert deferred.value.trigger.job_id == second
    hook._set(second, status=JobStatus.COMPLETE)
    summary = op.execute_complete(context_of(ti), event=event("success", second, "complete"))
    assert summary["job_ids"] == [first, second]
    assert [c["uploaded_ids"] for c in summary["chunks"]] == [6, 4]


def dies_waiting_for_the_second_chunk(hook: FakeHook, ti: FakeTI, ids: Path, out: Path) -> None:
    """A first try that uploaded two of three chunks, then lost its worker."""
    original_wait, calls = hook.wait_for_job, itertools.count()

    def dies(job_id: str, *args: Any, **kwargs: Any) -> Job:
        if next(calls) == 1:
            raise ConnectionError("worker died")
        return original_wait(job_id, *args, **kwargs)

    hook.wait_for_job = dies  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        run_op(hook, ids, out, max_ids_per_job=4).execute(context_of(ti))
    hook.wait_for_job = original_wait  # type: ignore[method-assign]


def test_retry_resumes_at_the_first_unfinished_chunk(hook, ti, ids_file, tmp_path):
    out = tmp_path / "out"
    dies_waiting_for_the_second_chunk(hook, ti, ids_file, out)
    summary = run_op(hook, ids_file, out, max_ids_per_job=4).execute(context_of(ti))
    assert len(hook.created) == 3
    assert [count for _, count in hook.uploads] == [4, 4, 2]
    assert summary["job_ids"] == hook.created
    assert summary["uploaded_ids"] == 10


def test_finished_chunk_without_its_results_file_is_downloaded_again(hook, ti, ids_file, tmp_path):
    out = tmp_path / "out"
    first = run_op(hook, ids_file, out).execute(context_of(ti))
    Path(first["results_uris"][0]).unlink()
    second = run_op(hook, ids_file, out).execute(context_of(ti))
    assert second["job_ids"] == first["job_ids"]
    assert Path(second["results_uris"][0]).exists()
    assert len(hook.uploads) == 1


def test_file_destination_gets_part_files_per_chunk(hook, ti, ids_file, tmp_path):
    op = XComplianceRunJobOperator(
        task_id="task",
        job_type="tweets",
        ids=str(ids_file),
        destination=str(tmp_path / "results.jsonl"),
        max_ids_per_job=5,
    )
    op.hook = hook  # type: ignore[misc]
    summary = op.execute(context_of(ti))
    assert summary["results_uris"] == [
        str(tmp_path / "results.part-00000.jsonl"),
        str(tmp_path / "results.part-00001.jsonl"),
    ]


def test_skipped_invalid_ids_are_published_beside_the_results(hook, ti, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("101\nbad\n102\n")
    summary = run_op(hook, ids, tmp_path / "out", on_invalid="skip").execute(context_of(ti))
    assert summary["uploaded_ids"] == 2
    assert summary["ids"]["invalid"] == 1
    assert "bad" in Path(summary["rejects_uri"]).read_text()


@pytest.mark.parametrize("destination", ["results.jsonl", "out/"])
def test_rejects_of_runs_sharing_a_destination_never_overwrite_each_other(hook, tmp_path, destination):
    """Two runs and two map indexes each keep their own rejects file; a retry of a run finds its own again."""
    ids = tmp_path / "ids.txt"

    def run(run_id: str, map_index: int, bad: str) -> str:
        ids.write_text(f"101\n{bad}\n")
        ti = FakeTI(run_id)
        ti.map_index = map_index
        op = run_op(hook, ids, tmp_path, on_invalid="skip")
        op.destination = str(tmp_path / destination)
        return str(op.execute(context_of(ti))["rejects_uri"])

    runs = [("manual__1", -1, "bad1"), ("manual__2", -1, "bad2"), ("manual__1", 0, "bad3")]
    published = [run(*args) for args in runs]
    assert len(set(published)) == 3
    values = [Path(uri).read_text().splitlines()[1].split(",")[2] for uri in published]
    assert values == ["bad1", "bad2", "bad3"]
    assert run("manual__2", -1, "bad4") == published[1]  # a retry: the same file


def test_run_pushes_each_chunk_job_id_to_xcom(hook, ti, ids_file, tmp_path):
    run_op(hook, ids_file, tmp_path / "out", max_ids_per_job=5).execute(context_of(ti))
    assert [value for key, value in ti.xcom if key == "job_id"] == hook.created


def test_non_deferrable_timeout_cancels_the_job(hook, ti, ids_file, tmp_path):
    def too_slow(job_id: str, *args: Any, **kwargs: Any) -> Job:
        raise JobTimeoutError("still running")

    hook.wait_for_job = too_slow  # type: ignore[method-assign]
    with pytest.raises(JobTimeoutError):
        run_op(hook, ids_file, tmp_path / "out", timeout=60).execute(context_of(ti))
    assert hook.cancelled == hook.created


def test_on_kill_after_the_try_ended_cancels_the_unfinished_job(hook, ti, ids_file, tmp_path):
    op = run_op(hook, ids_file, tmp_path / "out", deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(context_of(ti))
    op.on_kill()
    assert hook.cancelled == hook.created


def killed_while_polling(
    hook: FakeHook, ti: FakeTI, state: str | None, ids: Path, out: Path
) -> XComplianceRunJobOperator:
    """An operator whose poll is interrupted by Airflow's SIGTERM handler after ``ti`` turned ``state``."""
    polls: list[str] = []

    def wait_for_job(job_id: str, *args: Any, **kwargs: Any) -> Job:
        polls.append(job_id)
        ti.state = state
        op.on_kill()  # what the task runner's SIGTERM handler does
        raise AssertionError("on_kill returned: the task would poll on")

    op = run_op(hook, ids, out)
    hook.wait_for_job = wait_for_job  # type: ignore[method-assign]
    return op


@pytest.mark.parametrize("state", ["failed", "success"])
def test_polling_task_marked_by_a_person_stops_at_once_and_cancels_its_job(
    hook, ti, ids_file, tmp_path, state
):
    with pytest.raises(AirflowTaskTerminated):
        killed_while_polling(hook, ti, state, ids_file, tmp_path / "out").execute(context_of(ti))
    assert hook.cancelled == hook.created
    assert not list((tmp_path / "out").rglob("*.jsonl"))  # no download after the kill


def test_polling_task_cleared_stops_at_once_and_leaves_its_job_to_the_next_try(hook, ti, ids_file, tmp_path):
    with pytest.raises(AirflowTaskTerminated):
        killed_while_polling(hook, ti, "restarting", ids_file, tmp_path / "out").execute(context_of(ti))
    assert hook.cancelled == []
    del hook.wait_for_job  # the next try polls normally
    assert run_op(hook, ids_file, tmp_path / "out").execute(context_of(ti))["job_ids"] == hook.created
    assert len(hook.created) == 1


def test_polling_task_on_a_stopping_worker_fails_retryably_and_keeps_its_job(hook, ti, ids_file, tmp_path):
    with pytest.raises(XComplianceError, match="a retry carries on with job"):
        killed_while_polling(hook, ti, "running", ids_file, tmp_path / "out").execute(context_of(ti))
    assert hook.cancelled == []


def test_sigterm_interrupts_a_sleeping_poll_at_once(hook, ti, ids_file, tmp_path):
    op = run_op(hook, ids_file, tmp_path / "out")
    ti.state = "failed"

    def wait_for_job(job_id: str, *args: Any, **kwargs: Any) -> Job:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(30)  # the poll interval: a kill must not wait for it to pass
        raise AssertionError("slept through the kill")

    hook.wait_for_job = wait_for_job  # type: ignore[method-assign]
    previous = signal.signal(signal.SIGTERM, lambda *_: op.on_kill())  # as Airflow's task runner does
    started = time.monotonic()
    try:
        with pytest.raises(AirflowTaskTerminated):
            op.execute(context_of(ti))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < 5
    assert hook.cancelled == hook.created


def test_template_fields_cover_ids_destination_and_name():
    assert set(XComplianceRunJobOperator.template_fields) == {"ids", "destination", "name"}


# --- run operator: the chunk plan at the destination, a retry on another worker ----------------------------


@pytest.fixture
def new_worker(tmp_path, monkeypatch) -> Callable[[], Path]:
    """Switches the local disk to an empty one, as a retry on another worker sees it."""

    def switch() -> Path:
        disk = Path(tempfile.mkdtemp(dir=tmp_path, prefix="worker-"))
        monkeypatch.setattr(tempfile, "tempdir", str(disk))
        return disk

    return switch


@pytest.fixture
def source_reads(monkeypatch) -> list[Any]:
    from airflow_provider_xcompliance.operators import compliance

    return record_calls(monkeypatch, compliance, "prepare_ids")


def test_plan_stays_beside_the_results_and_the_staged_ids_go_when_done(hook, ti, ids_file, tmp_path):
    out = tmp_path / "out"
    run_op(hook, ids_file, out, max_ids_per_job=4).execute(context_of(ti))
    [plan] = out.glob("_*.plan.json")
    body = json.loads(plan.read_text())
    assert [chunk["ids"] for chunk in body["chunks"]] == [4, 4, 2]
    assert [(s["uri"], s["size"]) for s in body["sources"]] == [(str(ids_file), ids_file.stat().st_size)]
    assert not list(out.glob("*.txt"))


def test_each_task_run_has_its_own_plan_in_a_shared_folder(hook, ids_file, tmp_path):
    for run_id in ("manual__1", "manual__2"):
        run_op(hook, ids_file, tmp_path / "out", max_ids_per_job=4).execute(context_of(FakeTI(run_id)))
    assert len(list((tmp_path / "out").glob("_dag.task-*.plan.json"))) == 2


def test_file_destination_gets_a_plan_named_after_it_and_the_run(hook, ids_file, tmp_path):
    for run_id in ("manual__1", "manual__2"):
        op = run_op(hook, ids_file, tmp_path, max_ids_per_job=4)
        op.destination = str(tmp_path / "results.jsonl")
        op.execute(context_of(FakeTI(run_id)))
    assert len(list(tmp_path.glob("results._dag.task-*.plan.json"))) == 2  # a run never finds another's plan


def test_retry_on_another_worker_uploads_the_rest_from_the_destination(
    hook, ti, ids_file, tmp_path, new_worker, source_reads, monkeypatch
):
    out = tmp_path / "out"
    dies_waiting_for_the_second_chunk(hook, ti, ids_file, out)
    assert len(list(out.glob("_*.ids-*.txt"))) == 3  # staged beside the results before any job
    disk = new_worker()
    copies = record_calls(monkeypatch, storage, "copy")
    summary = run_op(hook, ids_file, out, max_ids_per_job=4).execute(context_of(ti))
    assert len(source_reads) == 1  # the retry did not read the source
    assert [count for _, count in hook.uploads] == [4, 4, 2]  # the third chunk, once
    assert copies == []  # a local destination holds the only copy of the chunks: uploaded from there
    assert not list(disk.rglob("*.txt"))
    assert summary["uploaded_ids"] == 10


def test_retry_without_staged_ids_reads_the_source_again_and_checks_the_chunks(
    hook, ti, ids_file, tmp_path, new_worker, source_reads
):
    out = tmp_path / "out"
    dies_waiting_for_the_second_chunk(hook, ti, ids_file, out)
    for staged in out.glob("_*.ids-*.txt"):
        staged.unlink()
    new_worker()
    summary = run_op(hook, ids_file, out, max_ids_per_job=4).execute(context_of(ti))
    assert len(source_reads) == 2
    assert [count for _, count in hook.uploads] == [4, 4, 2]
    assert summary["uploaded_ids"] == 10


def test_source_changed_since_the_plan_fails_naming_the_file(hook, ti, ids_file, tmp_path, new_worker):
    out = tmp_path / "out"
    dies_waiting_for_the_second_chunk(hook, ti, ids_file, out)
    ids_file.write_text(ids_file.read_text() + "999\n")
    new_worker()
    with pytest.raises(SourceChangedError, match=rf"{ids_file} changed size \(40 -> 44 bytes\)"):
        run_op(hook, ids_file, out, max_ids_per_job=4).execute(context_of(ti))
    assert len(hook.uploads) == 2


def test_changed_chunk_settings_fail_instead_of_shifting_the_chunks(hook, ti, ids_file, tmp_path):
    out = tmp_path / "out"
    dies_waiting_for_the_second_chunk(hook, ti, ids_file, out)
    with pytest.raises(SourceChangedError, match=r"max_ids_per_job changed \(4 -> 5\)"):
        run_op(hook, ids_file, out, max_ids_per_job=5).execute(context_of(ti))


# --- download operator --------------------------------------------------------------------------------------


def test_download_operator_returns_uri_and_line_count(hook, tmp_path):
    job = hook.add(make_job(JobStatus.COMPLETE))
    op = XComplianceDownloadResultsOperator(task_id="dl", job_id=job.id, destination=f"{tmp_path}/")
    op.hook = hook  # type: ignore[misc]
    result = op.execute({})  # type: ignore[arg-type]
    assert result["result_lines"] == 1
    assert Path(result["results_uri"]).exists()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (JobStatus.IN_PROGRESS, XComplianceError),
        (JobStatus.FAILED, JobFailedError),
        (JobStatus.EXPIRED, JobExpiredError),
    ],
)
def test_download_operator_refuses_a_job_that_is_not_complete(hook, tmp_path, status, error):
    job = hook.add(make_job(status))
    op = XComplianceDownloadResultsOperator(task_id="dl", job_id=job.id, destination=f"{tmp_path}/")
    op.hook = hook  # type: ignore[misc]
    with pytest.raises(error):
        op.execute({})  # type: ignore[arg-type]

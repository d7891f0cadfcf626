"""The lifecycle decisions, specified without Airflow: reattaching, deadlines, slots, files, events, ETAs."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from airflow_provider_xcompliance.exceptions import JobExpiredError, JobFailedError, XComplianceError
from airflow_provider_xcompliance.lifecycle import (
    DEFER_BACKSTOP_SECONDS,
    ChunkRecord,
    Step,
    checked_event,
    chunk_file,
    defer_timeout,
    eta_message,
    job_outcome_error,
    looks_like_size_error,
    newest_by_name,
    processing_rate,
    reattach_step,
    run_deadline,
    run_stem,
    slot_holder,
    with_size_hint,
)
from airflow_provider_xcompliance.models import JobStatus, JobType
from tests.unit.jobs import NOW, make_job


def test_lifecycle_imports_no_airflow():
    probe = (
        "import sys, airflow_provider_xcompliance.lifecycle; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'airflow'))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (None, Step.CREATE),
        (JobStatus.COMPLETE, Step.DOWNLOAD),
        (JobStatus.IN_PROGRESS, Step.WAIT),
        (JobStatus.CREATED, Step.UPLOAD),
        (JobStatus.FAILED, Step.CREATE),
        (JobStatus.EXPIRED, Step.CREATE),
        (JobStatus("processing"), Step.WAIT),  # unknown: unfinished, so waited for (bounded by the deadline)
    ],
)
def test_reattach_step_per_status(status, step):
    assert reattach_step(make_job(status) if status else None, NOW) is step


def test_created_job_whose_upload_window_is_closing_is_replaced():
    closing = make_job(JobStatus.CREATED, upload_expires_at=NOW + timedelta(seconds=30))
    assert reattach_step(closing, NOW, upload_margin=60) is Step.CREATE


def test_complete_job_whose_results_expired_is_run_again():
    stale = make_job(JobStatus.COMPLETE, download_expires_at=NOW - timedelta(seconds=1))
    assert reattach_step(stale, NOW) is Step.CREATE


def test_run_deadline_takes_the_tighter_limit():
    assert run_deadline(1000.0, 600.0, timedelta(seconds=300)) == 1300.0
    assert run_deadline(1000.0, None, timedelta(seconds=300)) == 1300.0
    assert run_deadline(1000.0, 60.0, None) == 1060.0
    assert run_deadline(1000.0, None, None) is None


def test_defer_timeout_is_a_backstop_after_the_deadline():
    assert defer_timeout(1300.0, 1000.0) == timedelta(seconds=300 + DEFER_BACKSTOP_SECONDS)
    assert defer_timeout(None, 1000.0) is None


def test_slot_holder_prefers_the_running_job_then_an_unknown_status_then_a_created_one():
    created, unknown = make_job(JobStatus.CREATED), make_job(JobStatus("processing"))
    running = make_job(JobStatus.IN_PROGRESS)
    assert slot_holder([created, unknown, running, make_job(JobStatus.COMPLETE)], JobType.TWEETS) == running
    assert slot_holder([created, unknown], JobType.TWEETS) == unknown


def test_slot_holder_ignores_ended_jobs_and_other_types():
    jobs = [make_job(JobStatus.COMPLETE), make_job(JobStatus.IN_PROGRESS, job_type=JobType.USERS)]
    assert slot_holder(jobs, JobType.TWEETS) is None


def test_a_created_job_whose_upload_window_closed_holds_the_slot_until_x_expires_it():
    lapsed = make_job(JobStatus.CREATED, upload_expires_at=NOW - timedelta(seconds=1))
    assert slot_holder([lapsed], JobType.TWEETS) == lapsed


def test_newest_by_name_keeps_the_newest_job_of_each_name():
    old, new = make_job(JobStatus.FAILED, name="a"), make_job(JobStatus.COMPLETE, name="a")
    assert newest_by_name([new, old, make_job(JobStatus.COMPLETE)]) == {"a": new}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("File too large", True),
        ("exceeds the maximum size", True),
        ("The uploaded file has 100 IDs, more than the 50 IDs a job may hold", True),
        ("Internal error", False),
        (None, False),
    ],
)
def test_looks_like_size_error(text, expected):
    assert looks_like_size_error(text) is expected


def test_chunk_file_inserts_the_part_number_before_the_suffix():
    assert chunk_file("s3://bucket/out/results.jsonl", 3) == "s3://bucket/out/results.part-00003.jsonl"
    assert chunk_file("/tmp/results", 0) == "/tmp/results.part-00000"


RUN = "dag.task-0123456789ab"  # a run's job name: dots, as in any ``dag_id.task_id`` prefix


def test_run_stem_in_a_folder_destination_is_the_run_name():
    assert run_stem(f"s3://bucket/out/{RUN}.jsonl", RUN) == f"s3://bucket/out/{RUN}"


@pytest.mark.parametrize("results", ["/data/results.jsonl", "/data/results", "/data/results.2026.jsonl"])
def test_run_stem_beside_a_file_destination_carries_the_run_name(results):
    assert run_stem(results, RUN) == f"/data/results.{RUN}"


@pytest.mark.parametrize(
    "event", [None, {}, "success", {"status": "done", "job_id": "1"}, {"status": "success", "job_id": ""}]
)
def test_checked_event_fails_closed(event):
    with pytest.raises(XComplianceError, match="Unexpected trigger event"):
        checked_event(event)


def record(ids: int, seconds: float | None) -> ChunkRecord:
    return ChunkRecord(
        index=0,
        job_id="1",
        job_name="n",
        uploaded_ids=ids,
        results_uri="u",
        result_lines=0,
        processing_seconds=seconds,
    )


def test_processing_rate_uses_only_chunks_timed_by_this_run():
    assert processing_rate([record(1000, 10.0), record(3000, 30.0), record(5000, None)]) == 100.0
    assert processing_rate([record(5000, None)]) is None


def test_eta_message_projects_this_chunk_and_the_rest():
    message = eta_message(1, 4, ids=6000, remaining_ids=18000, rate=100.0)
    assert message.startswith("Chunk 2/4 (6000 IDs)")
    assert "~1m00s" in message
    assert "~3m00s for all 3 remaining" in message


def test_eta_message_without_a_rate_says_so():
    assert "no ETA" in eta_message(0, 2, ids=10, remaining_ids=20, rate=None)


@pytest.mark.parametrize(
    ("status", "error"), [(JobStatus.FAILED, JobFailedError), (JobStatus.EXPIRED, JobExpiredError)]
)
def test_job_outcome_error_of_a_job_that_ended_badly(status, error):
    assert isinstance(job_outcome_error("42", status, "boom"), error)


@pytest.mark.parametrize("status", [JobStatus.CREATED, JobStatus.IN_PROGRESS, JobStatus.COMPLETE, None])
def test_job_outcome_error_is_none_while_the_job_may_still_complete(status):
    assert job_outcome_error("42", status) is None


def test_job_outcome_error_accepts_the_status_as_an_event_string():
    assert isinstance(job_outcome_error("42", "failed", "boom"), JobFailedError)


def test_size_hint_is_added_only_to_an_error_that_reads_like_a_size_limit():
    assert "set max_ids_per_job lower" in (with_size_hint("File too large", 10) or "")
    assert "10 IDs" in (with_size_hint("File too large", 10) or "")
    assert with_size_hint("corrupt upload", 10) == "corrupt upload"

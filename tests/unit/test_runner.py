"""The job runner on its own, without Airflow: its callbacks are the whole contract with the operators."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from airflow_provider_xcompliance.exceptions import (
    CancelNotSupportedError,
    JobConflictError,
    JobFailedError,
    UploadRejectedError,
)
from airflow_provider_xcompliance.ids import IdChunk
from airflow_provider_xcompliance.models import JobStatus, JobType
from airflow_provider_xcompliance.runner import JobRunner, Wait
from tests.unit.jobs import FakeHook, make_job

log = logging.getLogger("test_runner")


class DeferredError(Exception):
    """Stands for Airflow's TaskDeferred: what a defer callback raises."""


@pytest.fixture
def api() -> FakeHook:
    return FakeHook()


@pytest.fixture
def chunk(tmp_path: Path) -> IdChunk:
    path = tmp_path / "ids.txt"
    path.write_text("1\n2\n3\n")
    return IdChunk(0, path, 3, path.stat().st_size)


def runner_of(api: FakeHook, **kw: Any) -> JobRunner:
    return JobRunner(api, JobType.TWEETS, log, poll_interval=0.01, **kw)  # type: ignore[arg-type]


def deferrals() -> tuple[list[tuple[Wait, str, float | None]], Any]:
    seen: list[tuple[Wait, str, float | None]] = []

    def defer(wait: Wait, job_id: str, deadline: float | None) -> NoReturn:
        seen.append((wait, job_id, deadline))
        raise DeferredError

    return seen, defer


def test_a_new_job_is_published_before_its_upload_can_fail(api, chunk):
    published: list[str] = []
    api.fail_next_upload = UploadRejectedError("HTTP 413")
    runner = runner_of(api, on_job=lambda job: published.append(job.id))
    with pytest.raises(UploadRejectedError, match="3 IDs were sent"):
        runner.start(chunk, "run-1")
    assert published == api.created
    assert api.cancelled == api.created  # a rejected upload frees the slot


def test_a_reattached_uploaded_job_is_neither_staged_nor_uploaded_again(api, chunk):
    uploaded = api.add(make_job(JobStatus.IN_PROGRESS, name="run-1"))
    staged: list[IdChunk] = []
    job = runner_of(api).start(chunk, "run-1", stage=staged.append)
    assert (job.id, staged, api.uploads, api.created) == (uploaded.id, [], [], [])


def test_a_chunk_is_staged_before_its_upload(api, chunk):
    staged: list[IdChunk] = []
    job = runner_of(api).start(chunk, "run-1", stage=staged.append)
    assert staged == [chunk]
    assert api.uploads == [(job.id, 3)]


def test_a_held_slot_is_handed_to_the_triggerer_bounded_by_the_try(api, chunk):
    holder = api.add(make_job(JobStatus.IN_PROGRESS, name="someone-else"))
    seen, defer = deferrals()
    deadline = time.time() + 60
    runner = runner_of(api, defer=defer, deadline=deadline, slot_wait_timeout=3600)
    with pytest.raises(DeferredError):
        runner.start(chunk, "run-1")
    assert seen == [(Wait.SLOT, holder.id, deadline)]
    assert runner.slot_deadline == deadline
    assert runner.job_id is None


def test_a_held_slot_fails_at_once_when_told_to(api, chunk):
    holder = api.add(make_job(JobStatus.IN_PROGRESS, name="someone-else"))
    with pytest.raises(JobConflictError, match=f"held by job {holder.id}"):
        runner_of(api, on_conflict="fail").start(chunk, "run-1")


def test_waiting_for_our_job_is_deferred_with_the_try_deadline(api, chunk):
    seen, defer = deferrals()
    runner = runner_of(api, defer=defer, deadline=123.0)
    job = runner.start(chunk, "run-1")
    with pytest.raises(DeferredError):
        runner.wait(job, chunk.ids)
    assert seen == [(Wait.JOB, job.id, 123.0)]
    assert runner.job_id == job.id  # still ours to cancel until it completes


def test_a_polled_job_that_fails_like_a_size_cap_says_how_to_split(api, chunk):
    job = api.add(make_job(JobStatus.FAILED, error="Too many IDs"))
    with pytest.raises(JobFailedError, match="max_ids_per_job"):
        runner_of(api).wait(job, 5_000_000)


def test_a_cancel_the_api_lacks_is_logged_not_raised(api, caplog):
    api.cancel_error = CancelNotSupportedError("no cancel route")
    with caplog.at_level(logging.WARNING, logger="test_runner"):
        assert runner_of(api).cancel_quietly("42", "a test") is False
    assert "finish on X's side" in caplog.text

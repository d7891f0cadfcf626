"""Jobs for tests (every field a real job has, windows open unless a test closes them) and a fake API."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_xcompliance.exceptions import JobConflictError, JobExpiredError, JobFailedError
from airflow_provider_xcompliance.lifecycle import newest_by_name, slot_holder
from airflow_provider_xcompliance.models import Job, JobStatus, JobType, TransferReport

NOW = datetime.now(timezone.utc)
_snowflakes = itertools.count(1_900_000_000_000_000_000)  # ids grow with creation time, like the API's


def make_job(
    status: JobStatus, name: str | None = None, job_type: JobType = JobType.TWEETS, **kw: Any
) -> Job:
    fields: dict[str, Any] = {
        "upload_url": "https://storage.test/up?X-Goog-Signature=s",
        "upload_expires_at": NOW + timedelta(minutes=15),
        "download_url": "https://storage.test/down?X-Goog-Signature=s",
        "download_expires_at": NOW + timedelta(days=7),
        "created_at": NOW,
    }
    return Job(id=str(next(_snowflakes)), type=job_type, status=status, name=name, **{**fields, **kw})


class FakeHook:
    """The hook's sync interface over an in-memory API with one slot per job type."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.uploads: list[tuple[str, int]] = []
        self.created: list[str] = []
        self.cancelled: list[str] = []
        self.fail_next_upload: Exception | None = None
        self.complete_on_upload = False
        self.cancel_error: Exception | None = None

    def add(self, job: Job) -> Job:
        self.jobs[job.id] = job
        return job

    def _set(self, job_id: str, **changes: Any) -> Job:
        self.jobs[job_id] = replace(self.jobs[job_id], **changes)
        return self.jobs[job_id]

    def create_job(self, job_type: JobType, name: str | None = None, resumable: bool = False) -> Job:
        if slot_holder(self.jobs.values(), JobType(job_type)):
            raise JobConflictError("You cannot create a new job if one is already in progress", status=409)
        fresh = make_job(JobStatus.CREATED, name=name, job_type=JobType(job_type), resumable=resumable)
        now = datetime.now(timezone.utc)
        fresh = replace(fresh, upload_expires_at=now + timedelta(minutes=15), created_at=now)
        self.created.append(fresh.id)
        return self.add(fresh)

    def get_job(self, job_id: str) -> Job:
        return self.jobs[job_id]

    def list_jobs(self, job_type: JobType, status: str | None = None) -> list[Job]:
        return [job for job in self.jobs.values() if job.type is JobType(job_type)]

    def find_job(self, job_type: JobType, name: str) -> Job | None:
        return newest_by_name(self.list_jobs(job_type)).get(name)

    def cancel_job(self, job_id: str) -> Job:
        self.cancelled.append(job_id)
        if self.cancel_error:
            raise self.cancel_error
        return self._set(job_id, status=JobStatus.FAILED)

    def upload_ids(self, job: Job, source: Any) -> TransferReport:
        if self.fail_next_upload:
            error, self.fail_next_upload = self.fail_next_upload, None
            raise error
        lines = len(Path(source).read_text().splitlines())
        self.uploads.append((job.id, lines))
        status = JobStatus.COMPLETE if self.complete_on_upload else JobStatus.IN_PROGRESS
        self._set(job.id, status=status)
        return TransferReport(bytes=0, lines=lines, seconds=0.0)

    def wait_for_job(self, job_id: str, poll_interval: float = 30.0, timeout: float | None = None) -> Job:
        job = self.jobs[job_id]
        if job.status is JobStatus.IN_PROGRESS:
            job = self._set(job_id, status=JobStatus.COMPLETE)
        if job.status is JobStatus.CREATED:
            self._set(job_id, status=JobStatus.EXPIRED)
            raise JobExpiredError(job_id)
        if job.status is JobStatus.FAILED:
            raise JobFailedError(job_id, job.error)
        return job

    def download_results(self, job: Job, destination: str) -> TransferReport:
        target = Path(destination) / f"{job.id}.jsonl" if destination.endswith("/") else Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f'{{"id": "{job.id}", "action": "delete"}}\n')
        return TransferReport(bytes=0, lines=1, seconds=0.0, uri=str(target))

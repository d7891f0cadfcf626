"""Jobs for tests: every field a real job has, windows open unless a test closes them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_xcompliance.models import Job, JobStatus, JobType

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

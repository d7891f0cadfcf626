"""Job values parsed from the API: statuses, timestamps, and signed URLs kept out of sight."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_xcompliance.models import Job, JobStatus, JobType, format_api_time, parse_api_time

API_JOB = {
    "id": "1425543269983784962",
    "type": "tweets",
    "name": "nightly",
    "resumable": False,
    "status": "created",
    "created_at": "2021-08-11T19:42:55.000Z",
    "upload_url": "https://storage.googleapis.com/b/1?X-Goog-Signature=355e",
    "upload_expires_at": "2021-08-11T19:57:55.000Z",
    "download_url": "https://storage.googleapis.com/b/2?X-Goog-Signature=0a11",
    "download_expires_at": "2021-08-18T19:42:55.000Z",
    "unknown_future_field": 1,
}


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("created", False), ("in_progress", False), ("complete", True), ("failed", True), ("expired", True)],
)
def test_terminal_statuses_are_complete_failed_and_expired(status: str, terminal: bool) -> None:
    assert JobStatus(status).is_terminal is terminal
    assert JobStatus(status).holds_slot is not terminal


@pytest.mark.parametrize(
    "text",
    [
        "2019-10-29T17:02:47.000Z",
        "2019-10-29T17:02:47Z",
        "2019-10-29T17:02:47+00:00",
        "2019-10-29T19:02:47.000+02:00",
    ],
)
def test_every_api_timestamp_form_parses_to_the_same_utc_instant(text: str) -> None:
    assert parse_api_time(text) == datetime(2019, 10, 29, 17, 2, 47, tzinfo=timezone.utc)


def test_fractional_milliseconds_survive_parsing_and_formatting() -> None:
    parsed = parse_api_time("2017-09-10T20:06:37.421Z")
    assert parsed is not None
    assert format_api_time(parsed) == "2017-09-10T20:06:37.421Z"


def test_job_from_api_reads_every_field_and_ignores_unknown_ones() -> None:
    job = Job.from_api(API_JOB)
    assert job.id == "1425543269983784962"
    assert job.type is JobType.TWEETS
    assert job.status is JobStatus.CREATED
    assert job.name == "nightly"
    assert job.upload_expires_at == datetime(2021, 8, 11, 19, 57, 55, tzinfo=timezone.utc)


def test_job_without_name_or_error_has_none() -> None:
    data = {k: v for k, v in API_JOB.items() if k != "name"}
    job = Job.from_api(data)
    assert job.name is None
    assert job.error is None


def test_signed_urls_never_appear_in_repr_or_xcom() -> None:
    job = Job.from_api(API_JOB)
    for text in (repr(job), str(job.to_xcom())):
        assert "X-Goog-Signature" not in text
        assert "storage.googleapis.com" not in text


def test_upload_expiry_honours_the_safety_margin() -> None:
    job = Job.from_api(API_JOB)
    assert job.upload_expires_at is not None
    just_before = job.upload_expires_at - timedelta(seconds=30)
    assert not job.upload_expired(now=just_before)
    assert job.upload_expired(now=just_before, margin_seconds=60)
    assert job.upload_expired(now=job.upload_expires_at + timedelta(seconds=1))

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


# --- read tolerantly: what specs 2.159/2.167 and X's docs leave out or leave open ---

RESUMABLE_URL = (
    "https://storage.googleapis.com/b/1?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=900"
    "&X-Goog-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-goog-resumable&X-Goog-Signature=ab"
)
SIMPLE_URL = "https://storage.googleapis.com/b/1?X-Goog-SignedHeaders=content-type%3Bhost&X-Goog-Signature=ab"
TOKEN_URL = "https://api.x.com/2/compliance/jobs/1425543269983784962/upload?token=abc"


@pytest.mark.parametrize("name", ["processing", "queued", "In_Progress"])
def test_an_unknown_status_is_kept_unfinished_and_holding_the_slot(name: str) -> None:
    status = JobStatus(name)

    assert (status.value, status.is_known, status.is_terminal, status.holds_slot) == (
        name,
        False,
        False,
        True,
    )
    assert status is not JobStatus.IN_PROGRESS
    assert Job.from_api({**API_JOB, "status": name}).to_xcom()["status"] == name


def test_known_statuses_stay_the_enum_members() -> None:
    assert JobStatus("complete") is JobStatus.COMPLETE
    assert JobStatus.COMPLETE.is_known


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_missing_or_non_text_status_is_no_status(bad: object) -> None:
    with pytest.raises(ValueError, match="status"):
        Job.from_api({**API_JOB, "status": bad})


@pytest.mark.parametrize(
    "entry",
    [
        {k: v for k, v in API_JOB.items() if k != "id"},
        {**API_JOB, "id": "12a"},
        {**API_JOB, "type": "spaces"},
        {k: v for k, v in API_JOB.items() if k != "type"},
    ],
)
def test_an_object_that_is_no_job_of_a_known_type_is_a_value_error(entry: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="job"):
        Job.from_api(entry)


@pytest.mark.parametrize(
    ("url", "flag", "asked", "resumable"),
    [
        (RESUMABLE_URL, None, None, True),  # spec 2.159: no flag; the signature says resumable
        (RESUMABLE_URL, False, False, True),  # the signature wins over every claim
        (SIMPLE_URL, True, True, False),
        (TOKEN_URL, False, True, True),  # X's doc example answers false for a resumable create
        (TOKEN_URL, None, False, False),
        (TOKEN_URL, True, None, True),  # nothing else known: the answer's flag
        (None, None, None, False),
    ],
)
def test_the_upload_protocol_follows_the_url_signature_then_the_request_then_the_flag(
    url: str | None, flag: bool | None, asked: bool | None, resumable: bool
) -> None:
    data = {k: v for k, v in API_JOB.items() if k not in ("resumable", "upload_url")}
    if url is not None:
        data["upload_url"] = url
    if flag is not None:
        data["resumable"] = flag

    assert Job.from_api(data, resumable=asked).resumable is resumable


def test_a_reattached_job_takes_the_protocol_its_creator_asked_for_unless_its_url_shows_one() -> None:
    opaque = Job.from_api({**API_JOB, "upload_url": TOKEN_URL})
    signed = Job.from_api({**API_JOB, "upload_url": SIMPLE_URL})

    assert opaque.as_requested(resumable=True).resumable is True
    assert signed.as_requested(resumable=True).resumable is False


def test_missing_expiry_times_are_the_documented_lifetimes_from_creation() -> None:
    data = {k: v for k, v in API_JOB.items() if not k.endswith("_expires_at")}

    job = Job.from_api(data)

    assert job.upload_expires_at == datetime(2021, 8, 11, 19, 57, 55, tzinfo=timezone.utc)
    assert job.download_expires_at == datetime(2021, 8, 18, 19, 42, 55, tzinfo=timezone.utc)


def test_without_created_at_the_snowflake_id_dates_the_job() -> None:
    data = {k: v for k, v in API_JOB.items() if k not in ("created_at", "upload_expires_at")}

    job = Job.from_api(data)

    assert job.created_at is not None
    assert abs(job.created_at - datetime(2021, 8, 11, 19, 42, 55, tzinfo=timezone.utc)) < timedelta(seconds=1)
    assert job.upload_expired(datetime(2021, 8, 11, 20, 0, tzinfo=timezone.utc))


def test_unreadable_times_are_derived_not_fatal() -> None:
    job = Job.from_api({**API_JOB, "created_at": "yesterday", "upload_expires_at": "soon"})

    assert job.created_at is not None
    assert job.upload_expires_at is not None
    assert job.upload_expires_at - job.created_at == timedelta(minutes=15)

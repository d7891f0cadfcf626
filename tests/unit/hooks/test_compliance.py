"""Specification of XComplianceHook against mocked HTTP: ``responses`` (sync) and httpx.MockTransport (async).

Time is a fake clock injected into the hook: retries and waits are asserted, never slept.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import responses
from responses import matchers

from airflow_provider_xcompliance.exceptions import (
    AuthenticationError,
    CancelNotSupportedError,
    DownloadUrlExpiredError,
    InvalidRequestError,
    JobConflictError,
    JobExpiredError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransferError,
    UploadUrlExpiredError,
    UsageCappedError,
    XApiError,
)
from airflow_provider_xcompliance.hooks.compliance import JOB_FIELDS, XComplianceHook
from airflow_provider_xcompliance.models import Job, JobStatus, JobType
from airflow_provider_xcompliance.retry import GET_JOB, RetryPolicy
from airflow_provider_xcompliance.version_compat import secrets_masker

BASE = "https://api.x.com"
JOBS = f"{BASE}/2/compliance/jobs"
TOKEN = "bearer-token-0123456789"
JOB_ID = "1425543269983784962"
SIGNATURE = "355e0123456789abcdefsignature"
STORAGE = "https://storage.googleapis.com/twttr-tweet-compliance"
UPLOAD_URL = f"{STORAGE}/{JOB_ID}/submission/u?X-Goog-Credential=cred%2F1&X-Goog-Signature={SIGNATURE}"
DOWNLOAD_URL = f"{STORAGE}/{JOB_ID}/delivery/d?X-Goog-Credential=cred%2F2&X-Goog-Signature={SIGNATURE}d"
NOW = 1_700_000_000.0  # 2023-11-14: before the jobs' expiry times below
POLICY = RetryPolicy(
    max_attempts=4, max_elapsed=100.0, backoff_base=1.0, backoff_cap=8.0, max_rate_limit_wait=900.0
)


class FakeClock:
    """Monotonic and wall clocks that only move when the hook sleeps."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def time(self) -> float:
        return NOW + self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def job_data(status: str = "created", **fields: Any) -> dict[str, Any]:
    data = {
        "id": JOB_ID,
        "type": "tweets",
        "status": status,
        "resumable": False,
        "created_at": "2023-11-14T22:00:00.000Z",
        "upload_url": UPLOAD_URL,
        "upload_expires_at": "2030-01-01T00:15:00.000Z",
        "download_url": DOWNLOAD_URL,
        "download_expires_at": "2030-01-08T00:00:00.000Z",
    }
    data.update(fields)
    return data


def problem(kind: str, host: str = "https://api.twitter.com", **fields: Any) -> dict[str, Any]:
    return {"type": f"{host}/2/problems/{kind}", "title": kind, "detail": f"{kind} detail", **fields}


def rate_headers(remaining: int, reset: float, limit: int = 150) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(int(reset)),
    }


@pytest.fixture(autouse=True)
def x_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT", json.dumps({"conn_type": "x_api", "host": BASE, "password": TOKEN})
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_hook(
    clock: FakeClock, policy: RetryPolicy | None = POLICY, conn_id: str = "x_default"
) -> XComplianceHook:
    hook = XComplianceHook(conn_id, retry_policy=policy)
    hook._sleep = clock.sleep
    hook._asleep = clock.asleep
    hook._clock = clock.monotonic
    hook._now = clock.time
    return hook


@pytest.fixture
def hook(clock: FakeClock) -> XComplianceHook:
    return make_hook(clock)


@pytest.fixture
def mocked() -> responses.RequestsMock:
    with responses.RequestsMock() as mock:
        yield mock


def api_calls(mocked: responses.RequestsMock, method: str | None = None) -> list[Any]:
    return [
        call
        for call in mocked.calls
        if call.request.url.startswith(BASE) and (method is None or call.request.method == method)
    ]


# --- connection ------------------------------------------------------------------------------------------


def test_init_does_no_io() -> None:
    hook = XComplianceHook("no_such_connection")
    assert hook.x_conn_id == "no_such_connection"


@pytest.mark.parametrize(
    ("conn", "base"),
    [
        ({"host": "https://api.twitter.com"}, "https://api.twitter.com"),
        ({"host": "api.x.com"}, "https://api.x.com"),
        ({"host": "api.x.com", "schema": "https"}, "https://api.x.com"),
        ({"host": "127.0.0.1", "port": 8787}, "http://127.0.0.1:8787"),
        ({"host": "http://127.0.0.1:8787/"}, "http://127.0.0.1:8787"),
        ({}, "https://api.x.com"),
    ],
)
def test_base_url_from_connection(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, mocked: responses.RequestsMock, conn: dict, base: str
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT", json.dumps({"conn_type": "x_api", "password": TOKEN, **conn})
    )
    mocked.get(f"{base}/2/compliance/jobs", json={})
    assert make_hook(clock).list_jobs("tweets") == []


def test_extras_set_timeout_and_retries(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, mocked) -> None:
    extra = json.dumps({"timeout": 7, "max_retries": 1})
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT",
        json.dumps({"conn_type": "x_api", "host": BASE, "password": TOKEN, "extra": extra}),
    )
    mocked.get(JOBS, status=503)
    hook = make_hook(clock, policy=None)
    with pytest.raises(ServerError):
        hook.list_jobs("tweets")
    assert len(mocked.calls) == 2  # one try plus one retry
    assert mocked.calls[0].request.req_kwargs["timeout"] == 7.0


def test_connection_without_token_is_an_authentication_error(monkeypatch, clock: FakeClock) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X_DEFAULT", json.dumps({"conn_type": "x_api", "host": BASE}))
    with pytest.raises(AuthenticationError, match="bearer token"):
        make_hook(clock).get_job(JOB_ID)


def test_ui_relabels_token_and_base_url() -> None:
    behaviour = XComplianceHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"password": "Bearer token", "host": "API base URL"}
    assert {"login", "port"} <= set(behaviour["hidden_fields"])


def test_test_connection_succeeds_with_one_authenticated_call(hook: XComplianceHook, mocked) -> None:
    mocked.get(
        JOBS,
        json={"data": [job_data()]},
        match=[matchers.query_param_matcher({"type": "tweets", **JOB_FIELDS})],
    )
    ok, message = hook.test_connection()
    assert ok
    assert "1 recent" in message
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in message


def test_test_connection_reports_a_rejected_token_without_raising(hook: XComplianceHook, mocked) -> None:
    mocked.get(
        JOBS, status=401, json={"title": "Unauthorized", "type": "about:blank", "detail": "Unauthorized"}
    )
    ok, message = hook.test_connection()
    assert not ok
    assert "Unauthorized" in message
    assert TOKEN not in message
    assert len(mocked.calls) == 1


def test_test_connection_reports_a_missing_connection(clock: FakeClock) -> None:
    ok, message = make_hook(clock, conn_id="no_such_connection").test_connection()
    assert not ok
    assert "no_such_connection" in message


# --- create / get / list / find / cancel --------------------------------------------------------------


def test_create_job_posts_type_name_and_resumable(hook: XComplianceHook, mocked) -> None:
    mocked.post(
        JOBS,
        json={"data": job_data(name="nightly", resumable=True)},
        match=[matchers.json_params_matcher({"type": "users", "name": "nightly", "resumable": True})],
    )
    job = hook.create_job(JobType.USERS, name="nightly", resumable=True)
    assert (job.id, job.name, job.resumable, job.status) == (JOB_ID, "nightly", True, JobStatus.CREATED)
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_create_job_sends_only_the_type_by_default(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, json={"data": job_data()}, match=[matchers.json_params_matcher({"type": "tweets"})])
    assert hook.create_job("tweets").id == JOB_ID


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.create_job("posts"),
        lambda h: h.create_job("tweets", name="n" * 65),
        lambda h: h.get_job("12345678901234567890"),
        lambda h: h.get_job("abc"),
        lambda h: h.get_job(""),
        lambda h: h.cancel_job("1; drop"),
        lambda h: h.list_jobs("tweets", status="expired"),
        lambda h: h.list_jobs("spaces"),
    ],
)
def test_invalid_input_is_refused_before_any_call(
    hook: XComplianceHook, mocked, call: Callable[[XComplianceHook], Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        call(hook)
    assert len(mocked.calls) == 0


def test_name_of_64_characters_is_accepted(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, json={"data": job_data(name="n" * 64)})
    assert hook.create_job("tweets", name="n" * 64).name == "n" * 64


def test_get_job(hook: XComplianceHook, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("complete")})
    job = hook.get_job(JOB_ID)
    assert job.status == JobStatus.COMPLETE
    assert job.download_url == DOWNLOAD_URL


def test_list_jobs_with_a_status_filter(hook: XComplianceHook, mocked) -> None:
    mocked.get(
        JOBS,
        json={"data": [job_data(), job_data(id="2")], "meta": {"result_count": 2}},
        match=[matchers.query_param_matcher({"type": "users", "status": "in_progress", **JOB_FIELDS})],
    )
    assert [job.id for job in hook.list_jobs("users", JobStatus.IN_PROGRESS)] == [JOB_ID, "2"]


def test_list_jobs_without_data_means_no_jobs(hook: XComplianceHook, mocked) -> None:
    mocked.get(JOBS, json={"meta": {"result_count": 0}})
    assert hook.list_jobs("tweets") == []


def test_find_job_returns_the_newest_with_that_exact_name(hook: XComplianceHook, mocked) -> None:
    jobs = [
        job_data(id="1", name="nightly", created_at="2023-11-13T00:00:00.000Z"),
        job_data(id="2", name="nightly", created_at="2023-11-14T00:00:00.000Z"),
        job_data(id="3", name="nightly-2", created_at="2023-11-15T00:00:00.000Z"),
    ]
    mocked.get(JOBS, json={"data": jobs})
    found = hook.find_job("tweets", "nightly")
    assert found is not None
    assert found.id == "2"


def test_find_job_without_a_match(hook: XComplianceHook, mocked) -> None:
    mocked.get(JOBS, json={"data": [job_data(name="other")]})
    assert hook.find_job("tweets", "nightly") is None


def test_cancel_job_deletes_it(hook: XComplianceHook, mocked) -> None:
    mocked.delete(f"{JOBS}/{JOB_ID}", json={"data": job_data("failed")})
    assert hook.cancel_job(JOB_ID).status == JobStatus.FAILED


@pytest.mark.parametrize(
    ("status", "body"),
    [(405, {"title": "Method Not Allowed"}), (404, {"title": "Not Found", "type": "about:blank"})],
)
def test_cancel_on_an_api_without_delete_is_a_clear_error(
    hook: XComplianceHook, mocked, status, body
) -> None:
    mocked.delete(f"{JOBS}/{JOB_ID}", status=status, json=body)
    with pytest.raises(CancelNotSupportedError, match="does not offer job cancellation"):
        hook.cancel_job(JOB_ID)


def test_cancel_of_an_unknown_job_is_not_found(hook: XComplianceHook, mocked) -> None:
    mocked.delete(f"{JOBS}/{JOB_ID}", status=404, json=problem("resource-not-found"))
    with pytest.raises(NotFoundError):
        hook.cancel_job(JOB_ID)


# --- errors and retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [409, 400])
@pytest.mark.parametrize("host", ["https://api.twitter.com", "https://api.x.com"])
def test_conflict_on_create_is_recognised_for_either_status_and_host(
    hook: XComplianceHook, mocked, status: int, host: str
) -> None:
    mocked.post(JOBS, status=status, json=problem("conflict", host))
    with pytest.raises(JobConflictError):
        hook.create_job("tweets", name="nightly")
    assert len(mocked.calls) == 1  # not retried, and no lookup: nothing was created


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_transient_statuses_are_retried(hook: XComplianceHook, clock: FakeClock, mocked, status: int) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", status=status)
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data()})
    assert hook.get_job(JOB_ID).id == JOB_ID
    assert len(mocked.calls) == 2
    assert len(clock.sleeps) == 1
    assert 0 <= clock.sleeps[0] <= POLICY.backoff_base


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, problem("invalid-request", errors=[{"message": "bad id"}]), InvalidRequestError),
        (401, {"title": "Unauthorized", "type": "about:blank"}, AuthenticationError),
        (403, problem("unsupported-authentication"), AuthenticationError),
        (404, problem("resource-not-found"), NotFoundError),
        (429, problem("usage-capped"), UsageCappedError),
    ],
)
def test_other_client_errors_are_not_retried(
    hook: XComplianceHook, clock: FakeClock, mocked, status: int, body: dict, error: type
) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", status=status, json=body)
    with pytest.raises(error):
        hook.get_job(JOB_ID)
    assert len(mocked.calls) == 1
    assert clock.sleeps == []


def test_retries_stop_after_max_attempts(hook: XComplianceHook, clock: FakeClock, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", status=503)
    with pytest.raises(ServerError) as raised:
        hook.get_job(JOB_ID)
    assert raised.value.status == 503
    assert len(mocked.calls) == POLICY.max_attempts
    assert len(clock.sleeps) == POLICY.max_attempts - 1


def test_retries_stop_when_total_time_is_spent(clock: FakeClock, mocked) -> None:
    policy = RetryPolicy(max_attempts=50, max_elapsed=20.0, backoff_base=4.0, backoff_cap=8.0)
    mocked.get(f"{JOBS}/{JOB_ID}", status=500)
    with pytest.raises(ServerError):
        make_hook(clock, policy).get_job(JOB_ID)
    assert clock.elapsed <= 20.0
    assert len(mocked.calls) < 50


def test_connection_errors_are_retried_then_reported(hook: XComplianceHook, clock: FakeClock, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(ServerError, match="could not be reached"):
        hook.get_job(JOB_ID)
    assert len(mocked.calls) == POLICY.max_attempts


def test_rate_limited_call_waits_until_the_reset(hook: XComplianceHook, clock: FakeClock, mocked) -> None:
    reset = NOW + 60
    mocked.get(
        f"{JOBS}/{JOB_ID}",
        status=429,
        headers=rate_headers(0, reset),
        json={
            "title": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
            "detail": "Too Many Requests",
        },
    )
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data()}, headers=rate_headers(149, NOW + 900))
    assert hook.get_job(JOB_ID).id == JOB_ID
    assert clock.sleeps == [pytest.approx(61.0)]


def test_rate_limit_reset_beyond_the_bound_is_not_waited_for(clock: FakeClock, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", status=429, headers=rate_headers(0, NOW + 800), json={"title": "Too Many"})
    hook = make_hook(clock, RetryPolicy(max_rate_limit_wait=60.0))
    with pytest.raises(RateLimitedError) as raised:
        hook.get_job(JOB_ID)
    assert raised.value.reset_at is not None
    assert raised.value.reset_at.timestamp() == NOW + 800
    assert clock.sleeps == []


def test_rate_headers_are_tracked_per_endpoint(hook: XComplianceHook, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data()}, headers=rate_headers(42, NOW + 300))
    hook.get_job(JOB_ID)
    limit = hook.rate_limits.get(GET_JOB)
    assert limit is not None
    assert (limit.remaining, limit.reset_at) == (42, NOW + 300)


def test_spent_rate_budget_waits_for_the_reset_instead_of_calling(
    hook: XComplianceHook, clock: FakeClock, mocked
) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data()}, headers=rate_headers(0, NOW + 120))
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data()}, headers=rate_headers(149, NOW + 1020))
    hook.get_job(JOB_ID)
    assert clock.sleeps == []
    hook.get_job(JOB_ID)
    assert clock.sleeps == [pytest.approx(121.0)]
    assert len(mocked.calls) == 2


# --- create without duplicates -----------------------------------------------------------------------


def test_create_retried_after_a_timeout_adopts_the_job_the_first_attempt_made(
    hook: XComplianceHook, mocked
) -> None:
    mocked.post(JOBS, body=requests.ReadTimeout("read timed out"))
    mocked.get(JOBS, json={"data": [job_data(name="nightly")]})
    job = hook.create_job("tweets", name="nightly")
    assert job.id == JOB_ID
    assert len(api_calls(mocked, "POST")) == 1


def test_create_retried_after_a_5xx_creates_again_when_no_job_was_made(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, status=503)
    mocked.get(JOBS, json={})
    mocked.post(JOBS, json={"data": job_data(name="nightly")})
    assert hook.create_job("tweets", name="nightly").id == JOB_ID
    assert len(api_calls(mocked, "POST")) == 2
    assert len(api_calls(mocked, "GET")) == 1


def test_create_that_conflicts_after_a_lost_answer_adopts_the_late_job(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, body=requests.ConnectionError("connection reset"))
    mocked.get(JOBS, json={})  # not listed yet
    mocked.post(JOBS, status=409, json=problem("conflict"))
    mocked.get(JOBS, json={"data": [job_data(name="nightly")]})
    assert hook.create_job("tweets", name="nightly").id == JOB_ID
    assert len(api_calls(mocked, "POST")) == 2


def test_create_ignores_an_older_finished_job_of_the_same_name(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, status=500)
    mocked.get(JOBS, json={"data": [job_data("complete", id="1", name="nightly")]})
    mocked.post(JOBS, json={"data": job_data(name="nightly")})
    assert hook.create_job("tweets", name="nightly").id == JOB_ID


def test_create_without_a_name_cannot_look_for_an_earlier_attempt(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, status=503)
    mocked.post(JOBS, json={"data": job_data()})
    hook.create_job("tweets")
    assert len(api_calls(mocked, "GET")) == 0


# --- wait ------------------------------------------------------------------------------------------------


def test_wait_for_job_polls_until_complete(hook: XComplianceHook, clock: FakeClock, mocked) -> None:
    for status in ("created", "in_progress", "complete"):
        mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data(status)})
    assert hook.wait_for_job(JOB_ID, poll_interval=30).status == JobStatus.COMPLETE
    assert clock.sleeps == [30, 30]


def test_wait_for_job_stretches_polls_when_the_rate_budget_runs_low(
    hook: XComplianceHook, clock: FakeClock, mocked
) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("in_progress")}, headers=rate_headers(2, NOW + 600))
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("complete")})
    hook.wait_for_job(JOB_ID, poll_interval=30)
    assert clock.sleeps == [pytest.approx(300.0)]


def test_wait_for_failed_job_raises_with_its_error(hook: XComplianceHook, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("failed", error="bad file")})
    with pytest.raises(JobFailedError, match="bad file"):
        hook.wait_for_job(JOB_ID)


def test_wait_for_expired_job_raises(hook: XComplianceHook, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("expired")})
    with pytest.raises(JobExpiredError):
        hook.wait_for_job(JOB_ID)


def test_wait_for_job_times_out(hook: XComplianceHook, clock: FakeClock, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data("in_progress")})
    with pytest.raises(JobTimeoutError, match="in_progress"):
        hook.wait_for_job(JOB_ID, poll_interval=30, timeout=100)
    assert clock.elapsed == pytest.approx(100)


# --- upload and download (retry and resume mechanics: tests/unit/test_transfers.py) ----------------------


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_bytes(
        b"".join(b"%d\n" % (10**15 + i) for i in range(999)) + b"12345"
    )  # last line unterminated
    return path


def simple_job(status: str = "created", **fields: Any) -> Job:
    return Job.from_api(job_data(status, **fields))


def test_upload_streams_the_file_as_text_plain_without_authorization(
    hook: XComplianceHook, mocked, ids_file: Path
) -> None:
    received: list[bytes] = []

    def storage(request: Any) -> tuple[int, dict, str]:
        assert "Authorization" not in request.headers
        assert request.headers["Content-Type"] == "text/plain"
        assert int(request.headers["Content-Length"]) == ids_file.stat().st_size
        received.append(request.body)  # ``responses`` has read the streamed file object
        return 200, {}, ""

    mocked.add_callback(responses.PUT, UPLOAD_URL.split("?")[0], callback=storage)
    report = hook.upload_ids(simple_job(), ids_file)
    assert received == [ids_file.read_bytes()]
    assert (report.bytes, report.lines) == (ids_file.stat().st_size, 1000)


def test_expired_upload_url_is_refused_before_sending(hook: XComplianceHook, mocked, ids_file: Path) -> None:
    with pytest.raises(UploadUrlExpiredError):
        hook.upload_ids(simple_job(upload_expires_at="2023-11-14T21:00:00.000Z"), ids_file)
    assert len(mocked.calls) == 0


RESULTS = b"".join(b'{"id":"%d","action":"delete","reason":"deleted"}\n' % i for i in range(2000))


def test_download_writes_the_results_and_counts_lines(hook: XComplianceHook, mocked, tmp_path: Path) -> None:
    mocked.get(DOWNLOAD_URL.split("?")[0], body=RESULTS)
    report = hook.download_results(simple_job("complete"), tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == RESULTS
    assert (report.bytes, report.lines, report.uri) == (len(RESULTS), 2000, str(tmp_path / "out.jsonl"))


def test_download_after_expiry_is_refused_before_any_request(hook: XComplianceHook, mocked, tmp_path) -> None:
    with pytest.raises(DownloadUrlExpiredError):
        hook.download_results(
            simple_job("complete", download_expires_at="2023-11-01T00:00:00.000Z"), tmp_path
        )
    assert len(mocked.calls) == 0


def test_no_secret_reaches_logs_or_error_messages(
    hook: XComplianceHook, mocked, ids_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.post(JOBS, status=503)
    mocked.get(JOBS, json={})
    mocked.post(JOBS, json={"data": job_data(name="n")})
    mocked.put(UPLOAD_URL.split("?")[0], status=503)
    mocked.put(UPLOAD_URL.split("?")[0], status=403, body="<Error><Code>SignatureDoesNotMatch</Code></Error>")
    mocked.get(DOWNLOAD_URL.split("?")[0], status=500)
    mocked.get(DOWNLOAD_URL.split("?")[0], body=RESULTS)
    job = hook.create_job("tweets", name="n")
    with pytest.raises(TransferError) as upload_error:
        hook.upload_ids(job, ids_file)
    hook.download_results(job, tmp_path / "out.jsonl")
    texts = [record.getMessage() for record in caplog.records] + [str(upload_error.value), repr(job)]
    assert any("storage.googleapis.com" in text for text in texts)  # URLs are logged, redacted
    for text in texts:
        assert TOKEN not in text
        assert SIGNATURE not in text
        assert "X-Goog-Credential" not in text


def test_token_and_used_upload_url_are_registered_with_the_masker(
    hook: XComplianceHook, mocked, ids_file: Path
) -> None:
    signature = "a1b2c3-only-in-this-test"  # the masker is process-wide: a fresh value proves this test
    upload_url = f"{STORAGE}/{JOB_ID}/submission/u?X-Goog-Signature={signature}"
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data(upload_url=upload_url)})
    mocked.put(upload_url.split("?")[0], status=200)
    hook.upload_ids(hook.get_job(JOB_ID), ids_file)

    redacted = secrets_masker().redact(f"token {TOKEN} url {upload_url}")
    assert TOKEN not in redacted
    assert signature not in redacted


def test_status_polls_do_not_register_signed_urls(hook: XComplianceHook, mocked) -> None:
    """Airflow's masker slows with every secret added: a triggerer polling many jobs must not feed it URLs."""
    signature = "d4e5f6-polled-but-never-used"
    url = f"{STORAGE}/{JOB_ID}/delivery/d?X-Goog-Signature={signature}"
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data(download_url=url)})
    hook.get_job(JOB_ID)

    assert signature in secrets_masker().redact(url)


# --- async -----------------------------------------------------------------------------------------------


def async_hook(clock: FakeClock, handler: Callable[[httpx.Request], httpx.Response]) -> XComplianceHook:
    hook = make_hook(clock)
    clients: list[httpx.AsyncClient] = []

    def factory(**kwargs: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler), **kwargs)
        clients.append(client)
        return client

    hook._async_client_factory = factory
    hook.clients = clients  # type: ignore[attr-defined]
    return hook


async def test_aget_job_reads_the_connection_and_authenticates(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": job_data("in_progress")}, headers=rate_headers(7, NOW + 60))

    hook = async_hook(clock, handler)
    job = await hook.aget_job(JOB_ID)
    assert job.status == JobStatus.IN_PROGRESS
    assert str(seen[0].url.copy_with(query=None)) == f"{JOBS}/{JOB_ID}"
    assert dict(seen[0].url.params) == JOB_FIELDS  # the fields it relies on, asked for
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    limit = hook.rate_limits.get(GET_JOB)
    assert limit is not None
    assert limit.remaining == 7


async def test_aget_job_retries_transient_errors(clock: FakeClock) -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers=rate_headers(0, NOW + 30))])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json={"data": job_data()})

    hook = async_hook(clock, handler)
    assert (await hook.aget_job(JOB_ID)).id == JOB_ID
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] >= 30


async def test_aget_job_retries_transport_errors_within_the_budget(clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServerError, match="could not be reached"):
        await async_hook(clock, handler).aget_job(JOB_ID)
    assert len(clock.sleeps) == POLICY.max_attempts - 1


async def test_aget_job_does_not_retry_permanent_errors(clock: FakeClock) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404, json=problem("resource-not-found", "https://api.x.com"))

    with pytest.raises(NotFoundError):
        await async_hook(clock, handler).aget_job(JOB_ID)
    assert calls == [1]


async def test_async_context_shares_one_client(clock: FakeClock) -> None:
    hook = async_hook(clock, lambda request: httpx.Response(200, json={"data": job_data()}))
    async with hook:
        await hook.aget_job(JOB_ID)
        await hook.aget_job(JOB_ID)
    assert len(hook.clients) == 1  # type: ignore[attr-defined]
    assert hook.clients[0].is_closed  # type: ignore[attr-defined]


async def test_acancel_job(clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE"
        return httpx.Response(200, json={"data": job_data("failed")})

    assert (await async_hook(clock, handler).acancel_job(JOB_ID)).status == JobStatus.FAILED


async def test_acancel_on_an_api_without_delete(clock: FakeClock) -> None:
    hook = async_hook(clock, lambda request: httpx.Response(405, json={"title": "Method Not Allowed"}))
    with pytest.raises(CancelNotSupportedError):
        await hook.acancel_job(JOB_ID)


async def test_async_and_sync_classify_alike(clock: FakeClock) -> None:
    hook = async_hook(
        clock, lambda request: httpx.Response(400, json=problem("conflict", "https://api.x.com"))
    )
    with pytest.raises(JobConflictError) as raised:
        await hook.aget_job(JOB_ID)
    assert isinstance(raised.value, XApiError)


async def test_async_clients_share_one_tls_context(monkeypatch) -> None:
    """A triggerer resuming many waits must not rebuild a TLS context (CA bundle load) per job."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT", json.dumps({"conn_type": "x_api", "host": BASE, "password": "t"})
    )
    contexts = []

    def factory(**kwargs: Any) -> httpx.AsyncClient:
        contexts.append(kwargs["verify"])
        return httpx.AsyncClient(**kwargs)

    for _ in range(2):
        hook = XComplianceHook()
        hook._async_client_factory = factory
        async with hook:
            pass
    assert isinstance(contexts[0], ssl.SSLContext)
    assert contexts[0] is contexts[1]


# --- reading the API tolerantly ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("resource-not-found", NotFoundError), ("conflict", JobConflictError), ("invalid-request", XApiError)],
)
def test_get_answered_with_errors_and_no_data_is_classified(
    hook: XComplianceHook, mocked, kind: str, expected: type
) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"errors": [problem(kind)]})
    with pytest.raises(expected):
        hook.get_job(JOB_ID)


def test_create_answered_with_a_conflict_inside_errors_is_a_conflict(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, json={"errors": [problem("invalid-request"), problem("conflict", "https://api.x.com")]})
    with pytest.raises(JobConflictError):
        hook.create_job("tweets")


def test_create_answered_409_without_problem_details_is_a_conflict(hook: XComplianceHook, mocked) -> None:
    mocked.post(JOBS, status=409, body=b"")
    with pytest.raises(JobConflictError):
        hook.create_job("tweets")


def test_an_unreadable_job_object_is_an_api_error_not_a_key_error(hook: XComplianceHook, mocked) -> None:
    mocked.get(f"{JOBS}/{JOB_ID}", json={"data": {"type": "tweets"}})
    with pytest.raises(XApiError, match="unreadable job object"):
        hook.get_job(JOB_ID)


def test_create_asked_resumable_uploads_resumable_whatever_the_answer_says(
    hook: XComplianceHook, mocked
) -> None:
    opaque = f"{BASE}/2/compliance/jobs/{JOB_ID}/upload?token=t"  # spec 2.168's token route: no signature
    answer = {k: v for k, v in job_data(upload_url=opaque).items() if k != "resumable"}
    mocked.post(JOBS, json={"data": answer})
    assert hook.create_job("tweets", resumable=True).resumable is True


def test_a_listing_skips_entries_it_cannot_use_and_keeps_unknown_statuses(
    hook: XComplianceHook, mocked, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        job_data(id="3", status="processing"),
        job_data(id="2", type="spaces"),
        {"type": "tweets", "status": "complete"},
        "not an object",
        job_data(id="1", status="complete"),
    ]
    mocked.get(JOBS, json={"data": entries, "meta": {"result_count": 5}})
    with caplog.at_level(logging.INFO):
        jobs = hook.list_jobs("tweets")
    assert [(job.id, job.status.value) for job in jobs] == [("3", "processing"), ("1", "complete")]
    assert "Skipped 3 listed entries" in caplog.text


def test_a_listing_answered_with_errors_and_no_data_is_an_error_not_an_empty_list(
    hook: XComplianceHook, mocked
) -> None:
    mocked.get(JOBS, json={"errors": [problem("client-forbidden")]})
    with pytest.raises(AuthenticationError):
        hook.list_jobs("tweets")


def test_an_empty_object_is_an_empty_listing(hook: XComplianceHook, mocked) -> None:
    mocked.get(JOBS, json={})
    assert hook.list_jobs("tweets") == []


def test_an_unknown_status_is_polled_on_and_named_once(
    hook: XComplianceHook, mocked, caplog: pytest.LogCaptureFixture
) -> None:
    for status in ("processing", "processing", "processing", "complete"):
        mocked.get(f"{JOBS}/{JOB_ID}", json={"data": job_data(status)})
    with caplog.at_level(logging.INFO):
        assert hook.wait_for_job(JOB_ID, poll_interval=30).status == JobStatus.COMPLETE
    unknown = [r for r in caplog.records if "does not know" in r.getMessage()]
    assert len(unknown) == 1
    assert unknown[0].levelno == logging.WARNING
    assert "'processing'" in unknown[0].getMessage()

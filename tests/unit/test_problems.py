"""Specification of HTTP error classification: RFC 7807 problems from the API, XML errors from storage."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_provider_xcompliance.exceptions import (
    AuthenticationError,
    DownloadUrlExpiredError,
    InvalidRequestError,
    JobConflictError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransferError,
    UploadRejectedError,
    UploadUrlExpiredError,
    UsageCappedError,
    XApiError,
)
from airflow_provider_xcompliance.problems import (
    error_from_response,
    error_in_body,
    is_transient,
    transfer_error,
)

PROBLEM_HEADERS = {"content-type": "application/problem+json"}


def problem(kind: str, host: str = "https://api.twitter.com", **fields: object) -> str:
    return json.dumps({"type": f"{host}/2/problems/{kind}", "title": kind.title(), **fields})


@pytest.mark.parametrize("status", [409, 400])
@pytest.mark.parametrize("host", ["https://api.twitter.com", "https://api.x.com"])
def test_conflict_is_recognised_by_problem_type_whatever_status_and_host(status: int, host: str) -> None:
    body = problem("conflict", host, detail="You cannot create a new job if one is already in progress")
    error = error_from_response(status, PROBLEM_HEADERS, body)
    assert isinstance(error, JobConflictError)
    assert error.problem_type == "/2/problems/conflict"
    assert "already in progress" in str(error)
    assert not error.retryable


def test_rate_limited_carries_the_reset_time_and_is_retryable() -> None:
    body = '{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"Too Many Requests"}'
    error = error_from_response(429, {"x-rate-limit-reset": "1700000000"}, body)
    assert isinstance(error, RateLimitedError)
    assert error.reset_at == datetime.fromtimestamp(1700000000, tz=timezone.utc)
    assert error.retryable


def test_usage_capped_is_not_retryable_although_it_is_a_429() -> None:
    error = error_from_response(
        429, {}, problem("usage-capped", "https://api.x.com", detail="Usage cap exceeded")
    )
    assert isinstance(error, UsageCappedError)
    assert not error.retryable
    assert not is_transient(429, "https://api.x.com/2/problems/usage-capped")


def test_invalid_request_keeps_the_per_parameter_errors() -> None:
    body = json.dumps(
        {
            "errors": [
                {"parameters": {"type": ["posts"]}, "message": "The `type` query parameter value is invalid"}
            ],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }
    )
    error = error_from_response(400, PROBLEM_HEADERS, body)
    assert isinstance(error, InvalidRequestError)
    assert error.errors[0]["parameters"] == {"type": ["posts"]}
    assert "`type` query parameter" in str(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, '{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}'),
        (403, problem("unsupported-authentication")),
        (403, problem("client-forbidden", reason="client-not-enrolled")),
    ],
)
def test_authentication_problems(status: int, body: str) -> None:
    error = error_from_response(status, PROBLEM_HEADERS, body)
    assert isinstance(error, AuthenticationError)
    assert "bearer token" in str(error)


def test_resource_not_found_problem_is_not_found_whatever_status() -> None:
    assert isinstance(error_from_response(400, {}, problem("resource-not-found")), NotFoundError)


def test_server_errors_are_retryable() -> None:
    error = error_from_response(503, {}, "Service Unavailable")
    assert isinstance(error, ServerError)
    assert error.retryable
    assert error.status == 503


def test_a_body_that_is_not_json_still_gives_a_message() -> None:
    error = error_from_response(418, {}, b"\xff\xfe not json")
    assert type(error) is XApiError
    assert "HTTP 418" in str(error)


def test_message_carries_title_and_detail() -> None:
    error = error_from_response(404, {}, problem("resource-not-found", detail="Could not find job 123"))
    assert "Resource-Not-Found" in str(error)
    assert "Could not find job 123" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_timeouts_and_rate_limits_are_transient(status: int) -> None:
    assert is_transient(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413])
def test_other_client_errors_are_not_transient(status: int) -> None:
    assert not is_transient(status)


GCS_EXPIRED = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    "<Message>The provided token has expired.</Message>"
    "<Details>Request signature expired at: 2021-08-11T19:57:55+00:00</Details></Error>"
)
GCS_SIGNATURE = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code>"
    "<Message>The request signature we calculated does not match the signature you provided.</Message>"
    "<StringToSign>GOOG4-RSA-SHA256 X-Goog-Credential=secret-credential</StringToSign></Error>"
)


@pytest.mark.parametrize("status", [400, 403])
def test_expired_download_url(status: int) -> None:
    error = transfer_error(status, GCS_EXPIRED, direction="download", job_id="42")
    assert isinstance(error, DownloadUrlExpiredError)
    assert "42" in str(error)


def test_expired_upload_url() -> None:
    assert isinstance(
        transfer_error(400, GCS_EXPIRED, direction="upload", job_id="42"), UploadUrlExpiredError
    )


def test_signature_mismatch_explains_the_content_type_and_hides_the_signed_data() -> None:
    error = transfer_error(403, GCS_SIGNATURE, direction="upload", job_id="42")
    assert type(error) is TransferError
    assert "text/plain" in str(error)
    assert "secret-credential" not in str(error)


def test_too_large_upload_suggests_splitting() -> None:
    error = transfer_error(413, "", direction="upload", job_id="42")
    assert isinstance(error, UploadRejectedError)
    assert "max_ids_per_job" in str(error)


def test_a_409_is_a_conflict_without_problem_details() -> None:
    assert isinstance(error_from_response(409, {}, b""), JobConflictError)


def test_conflict_is_found_inside_errors_whatever_comes_first() -> None:
    body = {
        "errors": [
            {"type": "https://api.x.com/2/problems/invalid-request", "message": "first"},
            {"type": "https://api.x.com/2/problems/conflict", "detail": "already in progress"},
        ],
        "title": "Invalid Request",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }

    assert isinstance(error_from_response(400, {}, json.dumps(body)), JobConflictError)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("resource-not-found", NotFoundError),
        ("conflict", JobConflictError),
        ("invalid-request", InvalidRequestError),
        ("client-forbidden", AuthenticationError),
        ("something-new", XApiError),
    ],
)
def test_a_success_answer_with_errors_and_no_data_is_classified(kind: str, expected: type) -> None:
    body = {"errors": [{"type": f"https://api.x.com/2/problems/{kind}", "title": "T", "detail": "D"}]}

    error = error_in_body(200, body)

    assert type(error) is expected
    assert error is not None
    assert not error.retryable
    assert "D" in str(error)


@pytest.mark.parametrize("body", [{"data": {"id": "1"}, "errors": [{"title": "partial"}]}, {"data": []}, {}])
def test_a_body_with_data_or_without_errors_carries_no_error(body: dict[str, object]) -> None:
    assert error_in_body(200, body) is None

"""The one place that turns an HTTP error answer into a provider exception.

The API answers with RFC 7807 problem details; the signed storage URLs answer with Google Cloud Storage XML
errors. Both the sync (requests) and async (httpx) paths of the hook, and the trigger, classify through here,
so a status is retried or surfaced the same way everywhere. Pure: no Airflow, no HTTP library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

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

# Problem type URIs come with either host (api.twitter.com or api.x.com): match on the path only.
CONFLICT = "/2/problems/conflict"
USAGE_CAPPED = "/2/problems/usage-capped"
INVALID_REQUEST = "/2/problems/invalid-request"
NOT_FOUND = "/2/problems/resource-not-found"
RATE_LIMITED = "/2/problems/rate-limit-exceeded"
_AUTH_PROBLEMS = frozenset(
    {
        "/2/problems/unsupported-authentication",
        "/2/problems/client-forbidden",
        "/2/problems/not-authorized-for-resource",
    }
)

# GCS XML error codes on the signed URLs.
EXPIRED_TOKEN = "ExpiredToken"
SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"
_GCS_CODE = re.compile(r"<Code>\s*([^<]+?)\s*</Code>")
_GCS_MESSAGE = re.compile(r"<Message>\s*([^<]+?)\s*</Message>")


def problem_path(problem_type: object) -> str | None:
    """The path of a problem ``type`` URI (``about:blank`` and missing types give None)."""
    if not isinstance(problem_type, str) or not problem_type.startswith(("http://", "https://")):
        return None
    return urlsplit(problem_type).path.rstrip("/") or None


def is_success(status: int) -> bool:
    """True for 2xx only: a resumable upload session's 308 means "not finished" (unlike ``Response.ok``)."""
    return 200 <= status < 300


def is_transient(status: int, problem_type: str | None = None) -> bool:
    """True when retrying the same request later may succeed: 5xx, 408 and 429 (unless usage-capped).

    ``problem_type`` may be the full problem URI or its path.
    """
    if (problem_path(problem_type) or problem_type) == USAGE_CAPPED:
        return False
    return status >= 500 or status in (408, 429)


def _as_text(body: bytes | str | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body


def _problem(body: bytes | str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(_as_text(body))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _reset_at(headers: Mapping[str, str]) -> datetime | None:
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        return datetime.fromtimestamp(float(lowered["x-rate-limit-reset"]), tz=timezone.utc)
    except (KeyError, ValueError, OverflowError):
        return None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes | str | None) -> XApiError:
    """Build the provider exception for an API error answer (never from request data, so no secrets)."""
    return error_from_problem(status, _problem(body), headers)


def error_in_body(status: int, body: Mapping[str, Any]) -> XApiError | None:
    """The error a success answer carries instead of ``data`` (spec: create and get may answer
    ``{"errors": [...]}`` alone), or None when the body has ``data`` or no ``errors``."""
    if body.get("data") is not None or not body.get("errors"):
        return None
    return error_from_problem(status, dict(body), {})


def _problem_paths(problem: Mapping[str, Any], errors: list[Any]) -> list[str]:
    """Every problem type path the body carries: its own, then those of its ``errors`` items."""
    types = [problem.get("type"), *(item.get("type") for item in errors if isinstance(item, dict))]
    return [path for path in map(problem_path, types) if path is not None]


def error_from_problem(status: int, problem: Mapping[str, Any], headers: Mapping[str, str]) -> XApiError:
    """Classify a problem body: by its type wherever the body carries one, else by the HTTP status."""
    raw_errors = problem.get("errors")
    errors: list[Any] = raw_errors if isinstance(raw_errors, list) else []
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    if detail is None and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message") or errors[0].get("detail")
        detail = detail if isinstance(detail, str) else None
    paths = _problem_paths(problem, errors)
    # The conflict is the one problem a caller must act on: found wherever it is, and a 409 is one too.
    path = CONFLICT if CONFLICT in paths or status == 409 else (paths[0] if paths else None)
    summary = ": ".join(part for part in (title, detail) if part) or "no problem details in the answer"
    message = f"X API answered HTTP {status}: {summary}"
    fields: dict[str, Any] = {"status": status, "title": title, "detail": detail, "problem_type": path}

    error: XApiError
    if path == CONFLICT:
        error = JobConflictError(
            f"{message}. Another unfinished job of this type holds the app's only slot: wait for it "
            "to finish, or cancel it",
            **fields,
        )
    elif path == USAGE_CAPPED:
        error = UsageCappedError(f"{message}. The app's usage cap is spent; waiting will not help", **fields)
    elif status == 429 or path == RATE_LIMITED:
        error = RateLimitedError(message, reset_at=_reset_at(headers), **fields)
    elif path in _AUTH_PROBLEMS or status in (401, 403):
        error = AuthenticationError(
            f"{message}. Check the connection's bearer token (an app-only token is required)", **fields
        )
    elif path == NOT_FOUND or status == 404:
        error = NotFoundError(message, **fields)
    elif path == INVALID_REQUEST or status == 400:
        error = InvalidRequestError(_with_parameters(message, errors), errors=errors, **fields)
    elif status >= 500:
        error = ServerError(message, **fields)
    else:
        error = XApiError(message, **fields)
    error.retryable = is_transient(status, path)
    return error


def _with_parameters(message: str, errors: list[Any]) -> str:
    notes = [str(item["message"]) for item in errors if isinstance(item, dict) and item.get("message")]
    return f"{message} ({'; '.join(notes)})" if notes else message


def storage_error_code(body: bytes | str | None) -> tuple[str | None, str | None]:
    """The ``<Code>`` and ``<Message>`` of a GCS XML error body (the rest may echo signed request data)."""
    text = _as_text(body)
    code = _GCS_CODE.search(text)
    note = _GCS_MESSAGE.search(text)
    return (code.group(1) if code else None, note.group(1) if note else None)


def transfer_error(
    status: int, body: bytes | str | None, *, direction: Literal["upload", "download"], job_id: str
) -> TransferError:
    """Build the exception for a failed answer from a signed upload or download URL."""
    code, note = storage_error_code(body)
    said = f" ({code}: {note})" if code and note else f" ({code})" if code else ""
    where = f"{direction} URL of compliance job {job_id}"
    if code == EXPIRED_TOKEN or (status in (400, 403) and note and "expired" in note.lower()):
        if direction == "upload":
            return UploadUrlExpiredError(f"The {where} has expired{said}: create a new job")
        return DownloadUrlExpiredError(
            f"The {where} has expired{said}: results are kept 7 days; run the job again"
        )
    if direction == "upload" and (status == 413 or code == "EntityTooLarge"):
        return UploadRejectedError(
            f"Storage rejected the upload to the {where} as too large (HTTP {status}{said}): "
            "split the IDs into smaller jobs (max_ids_per_job)"
        )
    if code == SIGNATURE_DOES_NOT_MATCH:
        return TransferError(
            f"Storage refused the signature of the {where} (HTTP {status}{said}); uploads must be sent "
            "as Content-Type text/plain without an Authorization header"
        )
    if direction == "upload" and 400 <= status < 500:
        return UploadRejectedError(
            f"Storage rejected the upload to the {where} (HTTP {status}{said}); "
            "if the file is large, split the IDs into smaller jobs (max_ids_per_job)"
        )
    return TransferError(f"The {where} answered HTTP {status}{said}")

"""Exceptions of the provider, rooted in :class:`XComplianceError`.

Messages say what failed, for which job, and what to do next. They never carry the bearer token or a
signed URL: build them from the API's problem ``title``/``detail`` and from ids, never from request objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any


class XComplianceError(Exception):
    """Base class of every error this provider raises."""


# --- Errors answered by the API (RFC 7807 problem details) ---------------------------------------------


class XApiError(XComplianceError):
    """The API answered with an error. ``problem_type`` is the problem's ``type`` URI path, if any."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        problem_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.detail = detail
        self.problem_type = problem_type


class AuthenticationError(XApiError):
    """401/403: the token is wrong, not an app-only bearer token, or the app lacks access."""


class NotFoundError(XApiError):
    """The job (or endpoint) does not exist for this app."""


class InvalidRequestError(XApiError):
    """400 invalid-request: ``errors`` holds the API's per-parameter messages."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors or []


class JobConflictError(XApiError):
    """Another unfinished job of the same type holds the app's single slot for that type."""


class RateLimitedError(XApiError):
    """429 Too Many Requests; ``reset_at`` is when the window resets (from ``x-rate-limit-reset``)."""

    retryable = True

    def __init__(self, message: str, *, reset_at: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class UsageCappedError(XApiError):
    """429 usage-capped: the app's monthly cap is spent; waiting for the window does not help."""


class ServerError(XApiError):
    """5xx from the API: transient, retried by the hook."""

    retryable = True


class CancelNotSupportedError(XApiError):
    """The API does not offer ``DELETE /2/compliance/jobs/{id}`` (added in spec 2.168)."""


# --- Job outcomes ----------------------------------------------------------------------------------------


class JobFailedError(XComplianceError):
    """The job ended ``failed``; ``error`` is the API's error text when it gave one."""

    def __init__(self, job_id: str, error: str | None = None) -> None:
        text = f": {error}" if error else ""
        super().__init__(f"Compliance job {job_id} failed{text}")
        self.job_id = job_id
        self.error = error


class JobExpiredError(XComplianceError):
    """The job ended ``expired``: nothing was uploaded within its upload window. Run the job again."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Compliance job {job_id} expired before its IDs were uploaded; create a new job")
        self.job_id = job_id


class JobTimeoutError(XComplianceError, TimeoutError):
    """The job did not finish before the caller's deadline (the job itself may still be running)."""


# --- Transfers to and from the signed storage URLs ------------------------------------------------------


class TransferError(XComplianceError):
    """An upload or download to a signed URL failed after its retries."""


class UploadUrlExpiredError(TransferError):
    """The job's upload URL is past ``upload_expires_at``: create a new job."""


class DownloadUrlExpiredError(TransferError):
    """The job's download URL is past ``download_expires_at`` (7 days): the job must be run again."""


class UploadRejectedError(TransferError):
    """The storage refused the upload (for example as too large): consider ``max_ids_per_job``."""


# --- Input data ------------------------------------------------------------------------------------------


class InvalidIdsError(XComplianceError, ValueError):
    """An ID source holds invalid lines; the message names file, line numbers and values.

    ``samples`` are the first invalid lines (each with ``source``, ``line``, ``value``, ``reason``) and
    ``total`` how many there were, for callers that report them their own way.
    """

    def __init__(self, message: str, *, samples: Sequence[Any] = (), total: int = 0) -> None:
        super().__init__(message)
        self.samples = tuple(samples)
        self.total = total


class IdSourceError(XComplianceError, ValueError):
    """An ID source cannot be read as a whole: missing, corrupt, truncated, or not of its format.

    The message names the file and, where there is one, the line or Parquet row group; the library's own
    error is the ``__cause__``. ``on_invalid="skip"`` does not skip these: IDs that cannot be read are
    IDs that might need action, so the run fails closed.
    """

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class ResultsRejectedError(XComplianceError, ValueError):
    """More result lines were rejected than the configured threshold allows. ``summary`` is the
    conversion's summary (already written with the tables and the rejects)."""

    def __init__(self, message: str, *, summary: Any = None) -> None:
        super().__init__(message)
        self.summary = summary


class ResultsIncompleteError(XComplianceError, ValueError):
    """Result tables without their ``_summary.json``, or whose summary does not reconcile: not applied."""


class UnmappedActionError(XComplianceError, ValueError):
    """The results hold an action the apply step has no operation for; map it with ``actions=``."""


class SourceChangedError(XComplianceError):
    """The ID source changed since a task run split it into chunks: resuming would mix two versions.

    Restore the source, or start a new DAG run (its chunks are planned afresh).
    """

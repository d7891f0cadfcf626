"""XComplianceHook: the only door to the X API batch compliance endpoints and their signed storage URLs.

Sync calls share one pooled ``requests.Session``; the async calls (for the trigger) come from the light
:class:`~airflow_provider_xcompliance.hooks.aio.XComplianceAsyncHook` this hook extends. Both loops only
send: one :class:`CallRetry` decides every answer (errors classified by :mod:`problems`), so they behave
the same. The signed upload/download URLs go through a second session that never carries the bearer
token, driven by :class:`transfers.JobTransfer`; this module adds the connection and the masking.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, cast

import requests

from airflow_provider_xcompliance import problems, redaction
from airflow_provider_xcompliance.exceptions import JobConflictError, JobTimeoutError, ServerError, XApiError
from airflow_provider_xcompliance.hooks.aio import (
    JOB_FIELDS,
    JOBS_PATH,
    XComplianceAsyncHook,
    _api_headers,
    _cancel_error,
    _check_job_id,
    _job,
    _Settings,
    _settings_from,
)
from airflow_provider_xcompliance.lifecycle import job_outcome_error
from airflow_provider_xcompliance.models import Job, JobStatus, JobType, TransferReport
from airflow_provider_xcompliance.retry import CANCEL_JOB, CREATE_JOB, GET_JOB, LIST_JOBS, RetryPolicy
from airflow_provider_xcompliance.transfers import JobTransfer, storage_session

# A stdlib logger: Airflow routes it through its masking log pipeline in tasks, and tests can capture it.
log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
LISTABLE_STATUSES = frozenset(
    {JobStatus.CREATED, JobStatus.IN_PROGRESS, JobStatus.FAILED, JobStatus.COMPLETE}
)


def _job_type(job_type: JobType | str) -> JobType:
    try:
        return JobType(job_type)
    except ValueError:
        raise ValueError(f"job_type must be 'tweets' or 'users', not {job_type!r}") from None


def _check_name(name: str | None) -> str | None:
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
        raise ValueError(f"A job name is a string of at most {MAX_NAME_LENGTH} characters")
    return name


def _listed_jobs(body: dict[str, Any]) -> list[Job]:
    """The jobs of a listing that this provider can use; other entries (other apps' jobs of types it does
    not know, entries without an id) are skipped, never fatal. ``errors`` without ``data`` is no listing."""
    if (error := problems.error_in_body(200, body)) is not None:
        raise error
    entries = body.get("data")
    jobs, skipped = [], []
    for entry in entries if isinstance(entries, list) else []:
        try:
            jobs.append(Job.from_api(entry))
        except (ValueError, AttributeError) as exc:
            skipped.append(str(exc) if isinstance(exc, ValueError) else "an entry that is no object")
    if skipped:
        log.info("Skipped %d listed entries that are no usable job: %s", len(skipped), "; ".join(skipped[:3]))
    return jobs


def _may_have_reached_server(failure: Exception) -> bool:
    """True when a failed request may still have been acted on (a 5xx, or a connection lost after connect)."""
    if isinstance(failure, XApiError):
        return isinstance(failure, ServerError)
    return not isinstance(failure, requests.exceptions.ConnectTimeout)


class XComplianceHook(XComplianceAsyncHook):
    """Create, upload, poll, cancel and download X API batch compliance jobs.

    :param x_conn_id: an ``x_api`` connection: bearer token in the password, API base URL in the host, and
        optional extras ``timeout`` (seconds per request) and ``max_retries``.
    :param retry_policy: how transient failures are retried; defaults to the connection's ``max_retries``.
    """

    def __init__(
        self,
        x_conn_id: str = XComplianceAsyncHook.default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(x_conn_id, retry_policy=retry_policy)
        self._session: requests.Session | None = None
        self._storage_session: requests.Session | None = None
        self._sleep: Callable[[float], None] = time.sleep  # a seam for tests, like the async ones
        self.resumable_chunk_size: int | None = None  # None: the rest of the file in one streamed request

    # --- connection ------------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow < 3.2 (newer versions read ``get_provider_info()`` instead)."""
        from airflow_provider_xcompliance import UI_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    def _load_settings(self) -> _Settings:
        if self._settings is None:
            self._settings = _settings_from(self.get_connection(self.x_conn_id))
            redaction.mask(self._settings.token)
        return self._settings

    def get_conn(self) -> requests.Session:
        """The pooled, authenticated API session (created on first use)."""
        if self._session is None:
            settings = self._load_settings()
            session = requests.Session()
            session.headers.update(_api_headers(settings))
            self._session = session
        return self._session

    def _storage(self) -> requests.Session:
        # Signed URLs carry their own credentials: this session must never hold the bearer token.
        if self._storage_session is None:
            self._storage_session = storage_session()
        return self._storage_session

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list recent tweets jobs); never raises, never shows the token."""
        try:
            base = self._load_settings().base_url
            jobs = self._list(JobType.TWEETS, None, RetryPolicy(max_attempts=1))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {redaction.redact_url(base)}: {len(jobs)} recent tweets compliance jobs"

    # --- API calls -------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        policy: RetryPolicy | None = None,
        on_failure: Callable[[Exception], bool] | None = None,
    ) -> dict[str, Any]:
        """One API call with rate-limit pacing and retries; returns the JSON body.

        ``on_failure`` sees every transient failure before its retry; returning True ends the call with an
        empty body instead (how a create adopts the job an earlier attempt made).
        """
        session = self.get_conn()
        settings = self._load_settings()
        call = self._call(method, path, endpoint, policy)
        while True:
            if (wait := call.wait_before_send()) > 0:
                self._sleep(wait)
            try:
                response = session.request(
                    method, settings.base_url + path, params=params, json=json_body, timeout=settings.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                call.broke(exc)
            else:
                body = call.answered(response.status_code, response.headers, response.content)
                if body is not None:
                    return body
            if on_failure is not None and on_failure(call.failure):
                return {}
            self._sleep(call.next_delay())

    def create_job(self, job_type: JobType | str, name: str | None = None, resumable: bool = False) -> Job:
        """Create a job. A retried create never leaves a duplicate behind, provided the job has a name.

        When an attempt may have reached the server (timeout, dropped connection, 5xx), the hook looks for
        a fresh job with this name before trying again. Without a name there is nothing to look for, so
        callers that need the guarantee (the operators do) pass a deterministic name.
        """
        kind = _job_type(job_type)
        _check_name(name)
        body: dict[str, Any] = {"type": kind.value}
        if name is not None:
            body["name"] = name
        if resumable:
            body["resumable"] = True
        maybe_created = False
        adopted: Job | None = None

        def adopt(failure: Exception) -> bool:
            nonlocal maybe_created, adopted
            if _may_have_reached_server(failure):
                maybe_created = True
                adopted = self._created_job_named(kind, name)
            return adopted is not None

        try:
            answer = self._request(
                "POST", JOBS_PATH, CREATE_JOB, params=JOB_FIELDS, json_body=body, on_failure=adopt
            )
        except JobConflictError:
            # The earlier attempt may be the job that now holds the slot.
            adopted = self._created_job_named(kind, name) if maybe_created else None
            if adopted is None:
                raise
        if adopted is not None:
            log.warning("An earlier create attempt reached the API: using its job %s", adopted.id)
            return adopted
        job = self._noted(_job(answer, resumable))
        log.info("Created compliance job %s (%s, name %r)", job.id, job.type.value, job.name)
        return job

    def _created_job_named(self, kind: JobType, name: str | None) -> Job | None:
        if name is None:
            return None
        job = self.find_job(kind, name)
        return job if job is not None and job.status == JobStatus.CREATED else None

    def get_job(self, job_id: str) -> Job:
        _check_job_id(job_id)
        return self._noted(_job(self._request("GET", f"{JOBS_PATH}/{job_id}", GET_JOB, params=JOB_FIELDS)))

    def list_jobs(self, job_type: JobType | str, status: JobStatus | str | None = None) -> list[Job]:
        """Recent jobs of a type, optionally of one status (``expired`` is not a filter the API accepts)."""
        return self._list(_job_type(job_type), status, None)

    def _list(self, kind: JobType, status: JobStatus | str | None, policy: RetryPolicy | None) -> list[Job]:
        params = {"type": kind.value, **JOB_FIELDS}
        if status is not None:
            try:
                wanted = JobStatus(status)
            except ValueError:
                wanted = None
            if wanted not in LISTABLE_STATUSES:
                raise ValueError(
                    f"status must be one of created, in_progress, failed, complete; not {status!r}"
                )
            params["status"] = cast("JobStatus", wanted).value
        return _listed_jobs(self._request("GET", JOBS_PATH, LIST_JOBS, params=params, policy=policy))

    def find_job(self, job_type: JobType | str, name: str) -> Job | None:
        """The newest job of this type with exactly this name, or None."""
        matches = [job for job in self.list_jobs(job_type) if job.name == name]
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        return max(matches, key=lambda job: (job.created_at or epoch, int(job.id)), default=None)

    def cancel_job(self, job_id: str) -> Job:
        """Cancel an unfinished job (it becomes ``failed`` and frees its type's slot)."""
        _check_job_id(job_id)
        try:
            body = self._request("DELETE", f"{JOBS_PATH}/{job_id}", CANCEL_JOB)
        except XApiError as exc:
            raise _cancel_error(exc, job_id) from exc
        job = _job(body)
        log.info("Cancelled compliance job %s: now %s", job.id, job.status.value)
        return job

    def wait_for_job(self, job_id: str, poll_interval: float = 30.0, timeout: float | None = None) -> Job:
        """Poll until the job ends; returns it when complete, raises when it failed, expired or timed out.

        Polls are paced by the GET rate window so that waiting never spends the app's whole budget.
        """
        _check_job_id(job_id)
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            job = self.get_job(job_id)
            if job.status == JobStatus.COMPLETE:
                return job
            if error := job_outcome_error(job_id, job.status, job.error):
                raise error
            interval = self.rate_limits.paced_interval(GET_JOB, poll_interval, self._now())
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise JobTimeoutError(
                        f"Compliance job {job_id} is still {job.status.value} after {timeout:.0f} s"
                    )
                interval = min(interval, left)
            log.info("Compliance job %s is %s; next check in %.0f s", job_id, job.status.value, interval)
            self._sleep(interval)

    # --- transfers -------------------------------------------------------------------------------------

    def upload_ids(self, job: Job, source: str | os.PathLike[str]) -> TransferReport:
        """Stream an ID file (local path or object-storage URI) to the job's signed upload URL.

        Memory stays flat: simple uploads stream the file object, resumable ones hold one chunk at a time.
        """
        return self._transfer(job).upload(source, self.resumable_chunk_size)

    def download_results(self, job: Job, destination: str | os.PathLike[str]) -> TransferReport:
        """Stream the job's results to ``destination`` atomically (complete file or no file at all).

        ``destination`` is a file, or a folder (ending in ``/`` or existing) that receives ``<job id>.jsonl``.
        A broken stream resumes with a ``Range`` request when the server supports it, else starts over.
        """
        return self._transfer(job).download(destination)

    def _transfer(self, job: Job) -> JobTransfer:
        return JobTransfer(
            job,
            self._storage(),
            timeout=self._load_settings().timeout,
            policy=self.retry_policy,
            mask_url=redaction.mask_url,
            sleep=self._sleep,
            clock=self._clock,
            now=self._now,
        )

"""XComplianceHook: the only door to the X API batch compliance endpoints and their signed storage URLs.

Sync calls share one pooled ``requests.Session``; async calls (for the trigger) use ``httpx.AsyncClient``.
Both loops only send: one :class:`CallRetry` decides every answer (errors classified by :mod:`problems`), so
they behave the same. The signed upload/download URLs go through a second session that never carries the
bearer token, driven by :class:`transfers.JobTransfer`; this module adds the connection and the masking.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import requests
from airflow.sdk import BaseHook

from airflow_provider_xcompliance import problems, redaction
from airflow_provider_xcompliance.exceptions import (
    AuthenticationError,
    CancelNotSupportedError,
    JobConflictError,
    JobTimeoutError,
    NotFoundError,
    ServerError,
    XApiError,
)
from airflow_provider_xcompliance.lifecycle import job_outcome_error
from airflow_provider_xcompliance.models import Job, JobStatus, JobType, TransferReport
from airflow_provider_xcompliance.retry import (
    CANCEL_JOB,
    CREATE_JOB,
    GET_JOB,
    LIST_JOBS,
    CallRetry,
    RateLimitTracker,
    RetryPolicy,
)
from airflow_provider_xcompliance.transfers import JobTransfer, storage_session

# A stdlib logger: Airflow routes it through its masking log pipeline in tasks, and tests can capture it.
log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.x.com"
DEFAULT_TIMEOUT = 30.0
JOBS_PATH = "/2/compliance/jobs"
MAX_NAME_LENGTH = 64
_JOB_ID = re.compile(r"^[0-9]{1,19}$")
LISTABLE_STATUSES = frozenset(
    {JobStatus.CREATED, JobStatus.IN_PROGRESS, JobStatus.FAILED, JobStatus.COMPLETE}
)


@dataclass(frozen=True)
class _Settings:
    """What the hook reads from its connection."""

    base_url: str
    token: str
    timeout: float
    max_retries: int | None


def _base_url(host: str | None, schema: str | None, port: int | None) -> str:
    """The API base URL from the connection's host (with or without scheme), schema and port fields."""
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        loopback = text.split(":")[0] in ("127.0.0.1", "localhost", "::1")
        scheme = schema if schema in ("http", "https") else ("http" if loopback else "https")
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    if port and parts.port is None:
        text = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"
    return text


def _api_headers(settings: _Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.token}", "Accept": "application/json"}


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    # The connection form stores custom fields with or without the legacy "extra__<type>__" prefix.
    value = extras.get(name, extras.get(f"extra__{XComplianceHook.conn_type}__{name}"))
    return None if value in (None, "") else value


def _settings_from(conn: Any) -> _Settings:
    extras = conn.extra_dejson or {}
    token = conn.password
    if not token:
        raise AuthenticationError(
            f"Connection {conn.conn_id!r} has no bearer token: put the app's bearer token in its password"
        )
    timeout = _extra(extras, "timeout")
    max_retries = _extra(extras, "max_retries")
    return _Settings(
        base_url=_base_url(conn.host, conn.schema, conn.port),
        token=token,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        max_retries=int(max_retries) if max_retries is not None else None,
    )


def _job_type(job_type: JobType | str) -> JobType:
    try:
        return JobType(job_type)
    except ValueError:
        raise ValueError(f"job_type must be 'tweets' or 'users', not {job_type!r}") from None


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ValueError(f"A compliance job id is 1 to 19 digits, not {job_id!r}")
    return job_id


def _check_name(name: str | None) -> str | None:
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
        raise ValueError(f"A job name is a string of at most {MAX_NAME_LENGTH} characters")
    return name


def _job(data: Any) -> Job:
    """The job in an answer's ``data``. Its signed URLs are masked where they are used (:mod:`transfers`)."""
    if not isinstance(data, dict):
        raise XApiError("The X API answered without a job object in 'data'")
    return Job.from_api(data)


def _may_have_reached_server(failure: Exception) -> bool:
    """True when a failed request may still have been acted on (a 5xx, or a connection lost after connect)."""
    if isinstance(failure, XApiError):
        return isinstance(failure, ServerError)
    return not isinstance(failure, requests.exceptions.ConnectTimeout)


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One TLS context per process for every async client.

    Building one loads the CA bundle (about 80 ms here) inside the event loop: a triggerer resuming a
    thousand waiting jobs would stall for over a minute and hold ~800 KiB per job (bench/bench_triggers.py).
    """
    return httpx.create_ssl_context()


class XComplianceHook(BaseHook):
    """Create, upload, poll, cancel and download X API batch compliance jobs.

    :param x_conn_id: an ``x_api`` connection: bearer token in the password, API base URL in the host, and
        optional extras ``timeout`` (seconds per request) and ``max_retries``.
    :param retry_policy: how transient failures are retried; defaults to the connection's ``max_retries``.
    """

    conn_name_attr = "x_conn_id"
    default_conn_name = "x_default"
    conn_type = "x_api"
    hook_name = "X API"

    def __init__(
        self, x_conn_id: str = default_conn_name, *, retry_policy: RetryPolicy | None = None
    ) -> None:
        super().__init__()
        self.x_conn_id = x_conn_id
        self._retry_policy = retry_policy
        self.rate_limits = RateLimitTracker()
        self._settings: _Settings | None = None
        self._session: requests.Session | None = None
        self._storage_session: requests.Session | None = None
        self._aclient: httpx.AsyncClient | None = None
        # Seams for tests: time and the async transport are injected, never patched globally.
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Any] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic
        self._now: Callable[[], float] = time.time
        self._async_client_factory: Callable[..., httpx.AsyncClient] = httpx.AsyncClient
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

    async def _aload_settings(self) -> _Settings:
        if self._settings is None:
            self._settings = _settings_from(await self.aget_connection(self.x_conn_id))
            await redaction.amask(self._settings.token)
        return self._settings

    @property
    def retry_policy(self) -> RetryPolicy:
        if self._retry_policy is not None:
            return self._retry_policy
        retries = self._settings.max_retries if self._settings else None
        return RetryPolicy() if retries is None else RetryPolicy(max_attempts=retries + 1)

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

    def _call(self, method: str, path: str, endpoint: str, policy: RetryPolicy | None = None) -> CallRetry:
        return CallRetry(
            method,
            path,
            endpoint,
            policy or self.retry_policy,
            self.rate_limits,
            clock=self._clock,
            now=self._now,
        )

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
            data = self._request("POST", JOBS_PATH, CREATE_JOB, json_body=body, on_failure=adopt)
        except JobConflictError:
            # The earlier attempt may be the job that now holds the slot.
            adopted = self._created_job_named(kind, name) if maybe_created else None
            if adopted is None:
                raise
        if adopted is not None:
            log.warning("An earlier create attempt reached the API: using its job %s", adopted.id)
            return adopted
        job = _job(data.get("data"))
        log.info("Created compliance job %s (%s, name %r)", job.id, job.type.value, job.name)
        return job

    def _created_job_named(self, kind: JobType, name: str | None) -> Job | None:
        if name is None:
            return None
        job = self.find_job(kind, name)
        return job if job is not None and job.status == JobStatus.CREATED else None

    def get_job(self, job_id: str) -> Job:
        _check_job_id(job_id)
        return _job(self._request("GET", f"{JOBS_PATH}/{job_id}", GET_JOB).get("data"))

    def list_jobs(self, job_type: JobType | str, status: JobStatus | str | None = None) -> list[Job]:
        """Recent jobs of a type, optionally of one status (``expired`` is not a filter the API accepts)."""
        return self._list(_job_type(job_type), status, None)

    def _list(self, kind: JobType, status: JobStatus | str | None, policy: RetryPolicy | None) -> list[Job]:
        params = {"type": kind.value}
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
        body = self._request("GET", JOBS_PATH, LIST_JOBS, params=params, policy=policy)
        return [_job(item) for item in body.get("data") or []]

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
        job = _job(body.get("data"))
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

    # --- async (triggers) ------------------------------------------------------------------------------

    async def __aenter__(self) -> XComplianceHook:
        self._aclient = await self._new_async_client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    async def _new_async_client(self) -> httpx.AsyncClient:
        settings = await self._aload_settings()
        return self._async_client_factory(
            base_url=settings.base_url,
            headers=_api_headers(settings),
            timeout=settings.timeout,
            verify=shared_tls_context(),
        )

    async def aget_job(self, job_id: str) -> Job:
        """Async :meth:`get_job`, safe inside a trigger (reads the connection with ``aget_connection``)."""
        _check_job_id(job_id)
        body = await self._arequest("GET", f"{JOBS_PATH}/{job_id}", GET_JOB)
        return _job(body.get("data"))

    async def acancel_job(self, job_id: str) -> Job:
        """Async :meth:`cancel_job` (for a trigger's ``on_kill``)."""
        _check_job_id(job_id)
        try:
            body = await self._arequest("DELETE", f"{JOBS_PATH}/{job_id}", CANCEL_JOB)
        except XApiError as exc:
            raise _cancel_error(exc, job_id) from exc
        return _job(body.get("data"))

    async def _arequest(self, method: str, path: str, endpoint: str) -> dict[str, Any]:
        if self._aclient is not None:
            return await self._arequest_with(self._aclient, method, path, endpoint)
        async with await self._new_async_client() as client:
            return await self._arequest_with(client, method, path, endpoint)

    async def _arequest_with(
        self, client: httpx.AsyncClient, method: str, path: str, endpoint: str
    ) -> dict[str, Any]:
        call = self._call(method, path, endpoint)
        while True:
            if (wait := call.wait_before_send()) > 0:
                await self._asleep(wait)
            try:
                response = await client.request(method, path)
            except httpx.TransportError as exc:
                call.broke(exc)
            else:
                body = call.answered(response.status_code, response.headers, response.content)
                if body is not None:
                    return body
            await self._asleep(call.next_delay())


def _cancel_error(exc: XApiError, job_id: str) -> XApiError:
    """A missing DELETE route (404 without a not-found problem, or 405) means the API cannot cancel."""
    route_missing = exc.status == 405 or (
        isinstance(exc, NotFoundError) and exc.problem_type != problems.NOT_FOUND
    )
    if not route_missing:
        return exc
    return CancelNotSupportedError(
        f"This X API does not offer job cancellation (DELETE answered HTTP {exc.status}); "
        f"job {job_id} keeps running until it ends or expires",
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        problem_type=exc.problem_type,
    )

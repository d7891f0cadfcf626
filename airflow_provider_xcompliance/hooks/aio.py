"""The async half of the X API hook: all a trigger needs to poll or cancel a job, and nothing more.

The triggerer imports a trigger's module inside its event loop, so this module stays light: no
``requests``, no transfer, ID or results code. :class:`~airflow_provider_xcompliance.hooks.compliance.
XComplianceHook` extends it with the synchronous calls, so the connection, the settings and the one retry
engine (:class:`CallRetry`, errors classified by :mod:`problems`) are shared by both.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from airflow_provider_xcompliance import problems, redaction
from airflow_provider_xcompliance.exceptions import (
    AuthenticationError,
    CancelNotSupportedError,
    NotFoundError,
    XApiError,
)
from airflow_provider_xcompliance.models import Job
from airflow_provider_xcompliance.retry import CANCEL_JOB, GET_JOB, CallRetry, RateLimitTracker, RetryPolicy
from airflow_provider_xcompliance.version_compat import BaseHook, aget_connection

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.x.com"
DEFAULT_TIMEOUT = 30.0
JOBS_PATH = "/2/compliance/jobs"

# Every job field is optional in spec 2.167: ask for those the provider relies on. Not ``resumable``, which
# spec 2.159 does not know (the protocol is read from the upload URL's signature instead).
JOB_FIELDS = {
    "compliance_job.fields": "id,type,name,status,created_at,upload_url,upload_expires_at,"
    "download_url,download_expires_at"
}
_JOB_ID = re.compile(r"^[0-9]{1,19}$")
_Hook = TypeVar("_Hook", bound="XComplianceAsyncHook")


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
    value = extras.get(name, extras.get(f"extra__{XComplianceAsyncHook.conn_type}__{name}"))
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


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ValueError(f"A compliance job id is 1 to 19 digits, not {job_id!r}")
    return job_id


def _job(body: dict[str, Any], resumable: bool | None = None) -> Job:
    """The job in an answer's ``data``. Its signed URLs are masked where they are used (:mod:`transfers`).

    A success answer may carry ``errors`` instead (spec): those are classified like an error answer.
    ``resumable`` is what the creator asked for, when the answer is to a create.
    """
    if (error := problems.error_in_body(200, body)) is not None:
        raise error
    data = body.get("data")
    if not isinstance(data, dict):
        raise XApiError("The X API answered without a job object in 'data'")
    try:
        return Job.from_api(data, resumable=resumable)
    except ValueError as exc:
        raise XApiError(f"The X API answered with an unreadable job object: {exc}") from None


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One TLS context per process for every async client.

    Building one loads the CA bundle inside the event loop: a triggerer resuming a thousand waiting jobs
    would stall on it and hold a context per job (bench/README.md has the figures).
    """
    return httpx.create_ssl_context()


class XComplianceAsyncHook(BaseHook):
    """Poll and cancel X API batch compliance jobs from the event loop (``async with hook:`` for one client).

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
        self._aclient: httpx.AsyncClient | None = None
        # Seams for tests: time and the async transport are injected, never patched globally.
        self._asleep: Callable[[float], Any] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic
        self._now: Callable[[], float] = time.time
        self._async_client_factory: Callable[..., httpx.AsyncClient] = httpx.AsyncClient
        self._unknown_statuses: set[str] = set()  # status names already logged as unknown

    async def _aload_settings(self) -> _Settings:
        if self._settings is None:
            self._settings = _settings_from(await aget_connection(self, self.x_conn_id))
            await redaction.amask(self._settings.token)
        return self._settings

    @property
    def retry_policy(self) -> RetryPolicy:
        if self._retry_policy is not None:
            return self._retry_policy
        retries = self._settings.max_retries if self._settings else None
        return RetryPolicy() if retries is None else RetryPolicy(max_attempts=retries + 1)

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

    def _noted(self, job: Job) -> Job:
        """Say once per hook (not every poll) that a job reports a status this provider does not know."""
        if not job.status.is_known and job.status.value not in self._unknown_statuses:
            self._unknown_statuses.add(job.status.value)
            log.warning(
                "Compliance job %s reports status %r, which this provider does not know: it counts as "
                "unfinished (and as holding its type's slot) until X reports an end",
                job.id,
                job.status.value,
            )
        return job

    # --- async (triggers) ------------------------------------------------------------------------------

    async def __aenter__(self: _Hook) -> _Hook:
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
        body = await self._arequest("GET", f"{JOBS_PATH}/{job_id}", GET_JOB, JOB_FIELDS)
        return self._noted(_job(body))

    async def acancel_job(self, job_id: str) -> Job:
        """Async :meth:`cancel_job` (for a trigger's ``on_kill``)."""
        _check_job_id(job_id)
        try:
            body = await self._arequest("DELETE", f"{JOBS_PATH}/{job_id}", CANCEL_JOB)
        except XApiError as exc:
            raise _cancel_error(exc, job_id) from exc
        return _job(body)

    async def _arequest(
        self, method: str, path: str, endpoint: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        if self._aclient is not None:
            return await self._arequest_with(self._aclient, method, path, endpoint, params)
        async with await self._new_async_client() as client:
            return await self._arequest_with(client, method, path, endpoint, params)

    async def _arequest_with(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        call = self._call(method, path, endpoint)
        while True:
            if (wait := call.wait_before_send()) > 0:
                await self._asleep(wait)
            try:
                response = await client.request(method, path, params=params)
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

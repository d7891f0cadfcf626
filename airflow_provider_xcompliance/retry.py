"""Retry and rate-limit policy of the API client: how long to back off, and how to spend a rate window.

Pure Python (no Airflow, no HTTP library) and clock-injectable, so the hook, the trigger and the tests
share one definition and no test has to sleep.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_xcompliance import problems
from airflow_provider_xcompliance.exceptions import (
    RateLimitedError,
    ServerError,
    XApiError,
    XComplianceError,
)

log = logging.getLogger(__name__)

CREATE_JOB = "POST /2/compliance/jobs"
GET_JOB = "GET /2/compliance/jobs/:id"
LIST_JOBS = "GET /2/compliance/jobs"
CANCEL_JOB = "DELETE /2/compliance/jobs/:id"

# A reset time is an epoch second; waiting a moment past it avoids racing the server's own clock.
RESET_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: bounded both in attempts and in total elapsed time."""

    max_attempts: int = 6
    max_elapsed: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_rate_limit_wait: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_elapsed, self.backoff_base, self.backoff_cap, self.max_rate_limit_wait) < 0:
            raise ValueError("retry times must not be negative")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter (a uniform draw below the exponential ceiling) keeps many workers that failed together
        from retrying in lockstep against the same app-wide rate budget.
        """
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** max(attempt - 1, 0))
        return (rng or random).uniform(0.0, ceiling)

    def rate_limit_wait(self, reset_at: float | None, now: float) -> float | None:
        """Seconds to wait for a rate window to reset, or None when the reset is unknown or too far away."""
        if reset_at is None:
            return None
        wait = max(reset_at - now, 0.0) + RESET_MARGIN_SECONDS
        return wait if wait <= self.max_rate_limit_wait else None


@dataclass(frozen=True)
class RateLimit:
    """The rate window of one endpoint as last reported by the ``x-rate-limit-*`` headers."""

    limit: int
    remaining: int
    reset_at: float  # epoch seconds


def rate_limit_from_headers(headers: Mapping[str, str]) -> RateLimit | None:
    """Read the ``x-rate-limit-*`` headers; None when any is missing or malformed."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        return RateLimit(
            limit=int(lowered["x-rate-limit-limit"]),
            remaining=int(lowered["x-rate-limit-remaining"]),
            reset_at=float(lowered["x-rate-limit-reset"]),
        )
    except (KeyError, ValueError):
        return None


class RateLimitTracker:
    """Remembers each endpoint's rate window so callers wait for a reset instead of provoking a 429.

    Thread-safe: one hook may be used from several threads (for example chunked uploads of a split job).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, RateLimit] = {}

    def update(self, endpoint: str, headers: Mapping[str, str]) -> None:
        limit = rate_limit_from_headers(headers)
        if limit is not None:
            with self._lock:
                self._limits[endpoint] = limit

    def get(self, endpoint: str) -> RateLimit | None:
        with self._lock:
            return self._limits.get(endpoint)

    def delay_before_call(self, endpoint: str, now: float | None = None) -> float:
        """Seconds to wait before calling ``endpoint``: positive only when its window's budget is spent."""
        limit = self.get(endpoint)
        current = time.time() if now is None else now
        if limit is None or limit.remaining > 0 or limit.reset_at <= current:
            return 0.0
        return limit.reset_at - current + RESET_MARGIN_SECONDS

    def paced_interval(self, endpoint: str, base_interval: float, now: float | None = None) -> float:
        """Stretch a poll interval so the calls left in the window last until it resets.

        Every caller of one app shares the window, so spreading the remaining calls evenly over the time
        left keeps a long wait from starving other DAGs (or itself) at the end of the window.
        """
        limit = self.get(endpoint)
        current = time.time() if now is None else now
        if limit is None or limit.reset_at <= current:
            return base_interval
        time_left = limit.reset_at - current
        if limit.remaining <= 0:
            return max(base_interval, time_left + RESET_MARGIN_SECONDS)
        return max(base_interval, time_left / limit.remaining)


class RetryBudget:
    """The retry state of one logical call: decides whether, and how long, to wait before the next attempt.

    Backoff waits count against both ``max_attempts`` and ``max_elapsed``. Waits for a rate window to reset
    count as attempts but are bounded by ``max_rate_limit_wait`` instead, because a window is 15 minutes long
    and waiting it out is the correct, cheap thing to do. :meth:`progressed` restarts the budget, so a long
    transfer that keeps moving forward is not failed by its total duration.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self.failures = 0
        self._started = clock()

    def progressed(self) -> None:
        self.failures = 0
        self._started = self._clock()

    def next_delay(self, rate_limit_reset_at: float | None = None, now: float | None = None) -> float | None:
        """Seconds to wait before retrying after one more failure, or None when the budget is spent.

        ``rate_limit_reset_at`` (epoch seconds) marks a 429 whose window reset is known; ``now`` is the wall
        clock that reset is compared with.
        """
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            return None
        if rate_limit_reset_at is not None:
            return self.policy.rate_limit_wait(rate_limit_reset_at, time.time() if now is None else now)
        delay = self.policy.backoff(self.failures, self._rng)
        if self._clock() - self._started + delay > self.policy.max_elapsed:
            return None
        return delay


class CallRetry:
    """The retry state of one API call, shared by the hook's sync and async loops so both behave alike.

    A loop only sends: this decides whether an answer is the body to return, an error to raise, or a
    failure to retry after :meth:`next_delay`, and keeps the endpoint's rate window up to date.
    """

    def __init__(
        self,
        method: str,
        path: str,
        endpoint: str,
        policy: RetryPolicy,
        rate_limits: RateLimitTracker,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.policy = policy
        self._rate_limits = rate_limits
        self._now = now
        self._budget = RetryBudget(policy, clock)
        self._failure: Exception | None = None
        self._reset_at: float | None = None

    @property
    def failure(self) -> Exception:
        """Why the last attempt failed."""
        if self._failure is None:
            raise RuntimeError(f"No attempt of {self.method} {self.path} has failed yet")
        return self._failure

    def wait_before_send(self) -> float:
        """Seconds to wait for the endpoint's spent rate window to reset; 0 while calls are left.

        Raises :class:`RateLimitedError` when the reset is further away than the policy lets a call wait.
        """
        delay = self._rate_limits.delay_before_call(self.endpoint, self._now())
        if delay <= 0:
            return 0.0
        if delay > self.policy.max_rate_limit_wait:
            raise RateLimitedError(
                f"The rate window of {self.endpoint} is spent and resets in {delay:.0f} s, beyond the "
                f"{self.policy.max_rate_limit_wait:.0f} s this hook may wait",
                status=429,
                reset_at=datetime.fromtimestamp(self._now() + delay, tz=timezone.utc),
            )
        log.info("Rate window of %s spent: waiting %.0f s for its reset", self.endpoint, delay)
        return delay

    def answered(self, status: int, headers: Mapping[str, str], content: bytes) -> dict[str, Any] | None:
        """The JSON body of a success; None for a transient error worth retrying; raises any other error."""
        self._rate_limits.update(self.endpoint, headers)
        if problems.is_success(status):
            return json_body(content)
        error = problems.error_from_response(status, headers, content)
        if not error.retryable:
            raise error
        self._failure = error
        reset_at = error.reset_at if isinstance(error, RateLimitedError) else None
        self._reset_at = reset_at.timestamp() if reset_at is not None else None
        log.warning("%s %s answered HTTP %d, retrying", self.method, self.path, status)
        return None

    def broke(self, failure: Exception) -> None:
        """Record an attempt that got no answer (refused, dropped or timed-out connection)."""
        self._failure = failure
        self._reset_at = None
        log.warning("%s %s did not complete: %s", self.method, self.path, type(failure).__name__)

    def next_delay(self) -> float:
        """Seconds before the next attempt; raises the error to surface once the retry budget is spent."""
        delay = self._budget.next_delay(self._reset_at, self._now())
        if delay is None:
            raise self._final_error()
        return delay

    def _final_error(self) -> XComplianceError:
        # The API's own error when it answered; an unreachable-API error when it never did.
        failure = self.failure
        if isinstance(failure, XApiError):
            return failure
        return ServerError(
            f"{self.method} {self.path}: the X API could not be reached ({type(failure).__name__}), "
            "retries spent"
        )


def json_body(content: bytes) -> dict[str, Any]:
    """An API answer's JSON object (empty for an empty body or a non-object)."""
    if not content.strip():
        return {}
    try:
        body = json.loads(content)
    except ValueError:
        raise XApiError("The X API answered with a body that is not JSON") from None
    return body if isinstance(body, dict) else {}

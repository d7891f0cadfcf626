"""The trigger that waits, in the triggerer, for one compliance job to end."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_xcompliance import lifecycle
from airflow_provider_xcompliance.exceptions import RateLimitedError, XComplianceError
from airflow_provider_xcompliance.hooks.aio import XComplianceAsyncHook
from airflow_provider_xcompliance.models import Job, JobStatus
from airflow_provider_xcompliance.retry import GET_JOB, RetryPolicy
from airflow_provider_xcompliance.task_state import atask_state

# Airflow 3.3 added ``BaseTrigger.on_kill`` and calls it itself when a person acts on a deferred task.
TRIGGERER_CALLS_ON_KILL = hasattr(BaseTrigger, "on_kill")

# The trigger owns the retries of its polls (counted against ``max_transient_errors``, spaced by its own
# clock), so the hook must not retry underneath it; the backoff still comes from the one retry policy.
_POLL_POLICY = RetryPolicy(max_attempts=1, backoff_cap=600.0)


def is_permanent_poll_error(error: BaseException) -> bool:
    """True when polling again cannot help: auth, not-found, usage cap, bad request, or an unknown bug.

    Server errors, rate limits, timeouts and dropped connections are transient: a wait of hours must not
    fail on one blip.
    """
    if isinstance(error, XComplianceError):
        return not getattr(error, "retryable", False)
    return not isinstance(error, (httpx.TransportError, OSError))


def transient_retry_delay(error: BaseException, errors_in_a_row: int, interval: float, now: float) -> float:
    """Seconds before the next poll after a transient error: at least the poll interval, more after a 429."""
    delay = max(interval, _POLL_POLICY.backoff(errors_in_a_row))
    if isinstance(error, RateLimitedError) and error.reset_at is not None:
        wait = _POLL_POLICY.rate_limit_wait(error.reset_at.timestamp(), now)
        delay = max(delay, wait if wait is not None else _POLL_POLICY.backoff_cap)
    return delay


class XComplianceJobTrigger(BaseTrigger):
    """Poll one compliance job until it is terminal, then fire exactly one event.

    The event is ``{"status": "success"|"error"|"timeout", "job_id", "job_status", "message", "polls",
    "deadline"}``: it carries the deadline so that a resumed task knows what its wait was bounded by (the
    resume kwargs of a deferral are not a reliable channel: ``dag.test()`` replaces them with the event).
    ``deadline`` is wall-clock epoch seconds rather than a duration because the trigger is serialized and
    may resume in another triggerer process, where a monotonic clock or a start time would be meaningless.

    :param job_id: the job to wait for.
    :param x_conn_id: the X API connection (the only credential reference the trigger holds).
    :param poll_interval: seconds between status calls; stretched when the app's rate window runs low,
        because every waiting job of one app shares the same 150 calls per 15 minutes.
    :param deadline: epoch seconds after which a ``timeout`` event fires; None waits indefinitely.
    :param max_transient_errors: transient poll failures in a row tolerated before an ``error`` event.
    :param cancel_on_kill: cancel the job when the waiting task is killed; False when the job is not ours
        (an operator waiting for another job to free its type's slot).
    """

    def __init__(
        self,
        job_id: str,
        x_conn_id: str = XComplianceAsyncHook.default_conn_name,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_transient_errors: int = 10,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.x_conn_id = x_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_transient_errors = max_transient_errors
        self.cancel_on_kill = cancel_on_kill
        # Seams for tests: a fake clock drives deadlines and pacing without real sleeps.
        self._now: Callable[[], float] = time.time
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._random: Callable[[], float] = random.random

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "x_conn_id": self.x_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_transient_errors": self.max_transient_errors,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _make_hook(self) -> XComplianceAsyncHook:
        return XComplianceAsyncHook(self.x_conn_id, retry_policy=_POLL_POLICY)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The task checked the job just before deferring, so the first poll can wait. Spreading it over one
        # interval keeps a triggerer that resumes a thousand waits at once from setting up a thousand clients
        # in one instant (a loop stall, bench/README.md) and from polling in a burst.
        start_after = self._bounded_by_deadline(self._random() * self.poll_interval)
        if start_after > 0:
            await self._sleep(start_after)
        hook = self._make_hook()
        try:
            async with hook:  # one HTTP client for the whole wait
                event = await self._poll_until_done(hook)
        except asyncio.CancelledError:
            if not TRIGGERER_CALLS_ON_KILL:  # before 3.3 a cancelled run() is the only sign of a kill
                await self.on_kill()
            raise
        yield TriggerEvent(event)

    async def _poll_until_done(self, hook: XComplianceAsyncHook) -> dict[str, Any]:
        status: JobStatus | None = None
        polls = errors_in_a_row = 0
        while True:
            polls += 1
            try:
                job = await hook.aget_job(self.job_id)
            except Exception as error:
                errors_in_a_row += 1
                if is_permanent_poll_error(error) or errors_in_a_row > self.max_transient_errors:
                    return self._event("error", status, f"Polling job {self.job_id} failed: {error}", polls)
                delay = transient_retry_delay(error, errors_in_a_row, self.poll_interval, self._now())
                self.log.warning("Polling job %s failed (%s); retrying in %.0f s", self.job_id, error, delay)
            else:
                errors_in_a_row = 0
                if job.status != status:
                    self.log.info("Compliance job %s is %s", self.job_id, job.status.value)
                status = job.status
                if status.is_terminal:
                    return self._terminal_event(job, polls)
                delay = hook.rate_limits.paced_interval(GET_JOB, self.poll_interval, now=self._now())
            if self.deadline is not None and self._now() >= self.deadline:
                message = f"Job {self.job_id} did not end before its deadline (last status: {_value(status)})"
                return self._event("timeout", status, message, polls)
            await self._sleep(self._bounded_by_deadline(delay))

    def _bounded_by_deadline(self, delay: float) -> float:
        # Sleeping past the deadline would delay the timeout event; the poll at the deadline still counts.
        if self.deadline is None:
            return delay
        return max(0.0, min(delay, self.deadline - self._now()))

    def _terminal_event(self, job: Job, polls: int) -> dict[str, Any]:
        if job.status is JobStatus.COMPLETE:
            return self._event("success", job.status, f"Job {job.id} is complete", polls)
        reason = f": {job.error}" if job.error else ""
        event = self._event("error", job.status, f"Job {job.id} ended {job.status.value}{reason}", polls)
        event["error"] = job.error
        return event

    def _event(self, status: str, job_status: JobStatus | None, message: str, polls: int) -> dict[str, Any]:
        return {
            "status": status,
            "job_id": self.job_id,
            "job_status": _value(job_status),
            "message": message,
            "polls": polls,
            "deadline": self.deadline,
        }

    async def on_kill(self) -> None:
        """Cancel the job when the deferred task is stopped for good (Airflow 3.3+ calls this).

        Airflow calls it when a person acts on the task (mark failed or success, clear) and when another
        triggerer takes the trigger over; only the first two kinds stop the task, and a cleared task's next
        try reattaches to this very job. So the job is cancelled only once the task instance's state says no
        try will run again (:data:`~airflow_provider_xcompliance.lifecycle.STOPPED_FOR_GOOD`). Best-effort:
        a cancel that fails (or an API without ``DELETE``) is logged, never raised, because the job ends on
        its own.
        """
        if self.cancel_on_kill and await self._stopped_for_good():
            await self._cancel()

    async def _stopped_for_good(self) -> bool:
        ti = self.task_instance
        if ti is None:
            self.log.warning("Not cancelling job %s: the trigger does not know its task", self.job_id)
            return False
        try:
            state = await atask_state(ti)
        except Exception as error:
            # An unknown state leaves the job running: a wrong cancel loses work, a missed one costs none.
            self.log.warning("Not cancelling job %s: the task's state is unknown (%s)", self.job_id, error)
            return False
        if not lifecycle.stopped_for_good(state):
            self.log.info(
                "Not cancelling job %s: the task is %s (cleared, retried or moved), its next try reattaches",
                self.job_id,
                state,
            )
            return False
        return True

    async def _cancel(self) -> None:
        hook = self._make_hook()
        try:
            async with hook:
                job = await hook.acancel_job(self.job_id)
            self.log.info(
                "Cancelled compliance job %s (now %s): its task was stopped", self.job_id, job.status.value
            )
        except Exception as error:
            self.log.warning("Could not cancel compliance job %s: %s", self.job_id, error)


def _value(status: JobStatus | None) -> str | None:
    return status.value if status is not None else None

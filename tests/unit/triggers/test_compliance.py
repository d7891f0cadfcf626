from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_xcompliance.exceptions import (
    AuthenticationError,
    CancelNotSupportedError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UsageCappedError,
)
from airflow_provider_xcompliance.models import Job, JobStatus, JobType
from airflow_provider_xcompliance.retry import GET_JOB, RateLimitTracker, RetryPolicy
from airflow_provider_xcompliance.triggers import compliance as trigger_module
from airflow_provider_xcompliance.triggers.compliance import (
    XComplianceJobTrigger,
    is_permanent_poll_error,
    transient_retry_delay,
)

JOB_ID = "1425543269983784962"
START = 1_800_000_000.0


def job(status: JobStatus, error: str | None = None) -> Job:
    return Job(id=JOB_ID, type=JobType.TWEETS, status=status, error=error)


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeHook:
    """Answers ``aget_job`` from a script of jobs and exceptions; counts client sessions."""

    def __init__(self, script: list[Job | BaseException], cancel: Job | BaseException | None = None) -> None:
        self.script = list(script)
        self.cancel = cancel
        self.rate_limits = RateLimitTracker()
        self.sessions_opened = self.sessions_closed = 0
        self.cancelled: list[str] = []

    async def __aenter__(self) -> FakeHook:
        self.sessions_opened += 1
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.sessions_closed += 1

    async def aget_job(self, job_id: str) -> Job:
        answer = self.script.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def acancel_job(self, job_id: str) -> Job:
        self.cancelled.append(job_id)
        if isinstance(self.cancel, BaseException):
            raise self.cancel
        return self.cancel or job(JobStatus.FAILED)


def make_trigger(
    hook: FakeHook, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> XComplianceJobTrigger:
    trigger = XComplianceJobTrigger(job_id=JOB_ID, poll_interval=30.0, **kwargs)
    monkeypatch.setattr(trigger, "_make_hook", lambda: hook)
    trigger._now = clock.time
    trigger._sleep = clock.sleep
    trigger._random = lambda: (
        0.0
    )  # first poll at once; test_first_poll_is_spread_over_one_interval covers the rest
    return trigger


async def events_of(trigger: XComplianceJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def server_error() -> ServerError:
    return ServerError("503 Service Unavailable", status=503)


# --- serialization ---------------------------------------------------------------------------------------


def test_serialize_round_trips_every_kwarg():
    trigger = XComplianceJobTrigger(
        job_id=JOB_ID,
        x_conn_id="x_prod",
        poll_interval=12.5,
        deadline=START,
        max_transient_errors=3,
        cancel_on_kill=False,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_xcompliance.triggers.compliance.XComplianceJobTrigger"
    assert kwargs == {
        "job_id": JOB_ID,
        "x_conn_id": "x_prod",
        "poll_interval": 12.5,
        "deadline": START,
        "max_transient_errors": 3,
        "cancel_on_kill": False,
    }


def test_reinstantiated_trigger_serializes_identically():
    from tests.version_compat import import_string

    classpath, kwargs = XComplianceJobTrigger(job_id=JOB_ID, deadline=START).serialize()
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)


def test_serialized_kwargs_are_primitives():
    _, kwargs = XComplianceJobTrigger(job_id=JOB_ID, deadline=START).serialize()
    assert all(isinstance(value, (str, int, float, bool, type(None))) for value in kwargs.values())


# --- events ----------------------------------------------------------------------------------------------


async def test_complete_job_fires_one_success_event(monkeypatch):
    hook = FakeHook([job(JobStatus.IN_PROGRESS), job(JobStatus.COMPLETE)])
    events = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["job_id"] == JOB_ID
    assert events[0]["job_status"] == "complete"
    assert events[0]["polls"] == 2


async def test_failed_job_fires_error_event_with_its_error_text(monkeypatch):
    hook = FakeHook([job(JobStatus.FAILED, error="file too large")])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert event["status"] == "error"
    assert event["job_status"] == "failed"
    assert "file too large" in event["message"]
    assert event["error"] == "file too large"


async def test_expired_job_fires_error_event(monkeypatch):
    hook = FakeHook([job(JobStatus.CREATED), job(JobStatus.EXPIRED)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert (event["status"], event["job_status"]) == ("error", "expired")


async def test_deadline_fires_timeout_event_with_last_status(monkeypatch):
    clock = FakeClock()
    hook = FakeHook([job(JobStatus.IN_PROGRESS)] * 10)
    [event] = await events_of(make_trigger(hook, clock, monkeypatch, deadline=START + 70))
    assert (event["status"], event["job_status"]) == ("timeout", "in_progress")
    assert clock.now == START + 70


async def test_an_unknown_status_is_waited_on_until_the_deadline(monkeypatch):
    clock = FakeClock()
    hook = FakeHook([job(JobStatus("processing"))] * 10)
    [event] = await events_of(make_trigger(hook, clock, monkeypatch, deadline=START + 70))
    assert (event["status"], event["job_status"]) == ("timeout", "processing")


async def test_an_unknown_status_then_complete_is_a_success(monkeypatch):
    hook = FakeHook([job(JobStatus("processing")), job(JobStatus("processing")), job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert (event["status"], event["polls"]) == ("success", 3)


async def test_last_sleep_stops_at_the_deadline(monkeypatch):
    clock = FakeClock()
    hook = FakeHook([job(JobStatus.IN_PROGRESS)] * 10)
    await events_of(make_trigger(hook, clock, monkeypatch, deadline=START + 70))
    assert clock.sleeps == [30.0, 30.0, 10.0]


async def test_job_completing_at_the_deadline_is_a_success(monkeypatch):
    hook = FakeHook([job(JobStatus.IN_PROGRESS), job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch, deadline=START + 30))
    assert event["status"] == "success"


async def test_past_deadline_still_reports_a_finished_job(monkeypatch):
    hook = FakeHook([job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch, deadline=START - 1))
    assert event["status"] == "success"


@pytest.mark.parametrize(
    "blip",
    [
        server_error(),
        RateLimitedError("Too Many Requests", status=429),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("connection refused"),
    ],
    ids=["5xx", "429", "timeout", "connection"],
)
async def test_transient_errors_then_success_is_a_success(monkeypatch, blip):
    hook = FakeHook([blip, blip, job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert event["status"] == "success"
    assert event["polls"] == 3


async def test_too_many_transient_errors_in_a_row_fire_an_error_event(monkeypatch):
    hook = FakeHook([server_error()] * 4)
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch, max_transient_errors=3))
    assert (event["status"], event["job_status"]) == ("error", None)
    assert "503" in event["message"]
    assert hook.script == []


async def test_a_successful_poll_resets_the_transient_error_count(monkeypatch):
    script = [server_error(), server_error(), job(JobStatus.IN_PROGRESS), server_error(), server_error()]
    hook = FakeHook([*script, job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch, max_transient_errors=2))
    assert event["status"] == "success"


async def test_permanent_error_fires_error_event_at_once(monkeypatch):
    hook = FakeHook([AuthenticationError("401 Unauthorized", status=401), job(JobStatus.COMPLETE)])
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert event["status"] == "error"
    assert "401 Unauthorized" in event["message"]
    assert event["polls"] == 1


async def test_every_event_carries_job_id_message_and_deadline(monkeypatch):
    for script in ([job(JobStatus.COMPLETE)], [job(JobStatus.FAILED)], [NotFoundError("gone")]):
        trigger = make_trigger(FakeHook(script), FakeClock(), monkeypatch, deadline=START + 600)
        [event] = await events_of(trigger)
        assert event["job_id"] == JOB_ID
        assert event["message"]
        assert event["deadline"] == START + 600


async def test_one_http_session_serves_the_whole_wait(monkeypatch):
    hook = FakeHook([job(JobStatus.IN_PROGRESS)] * 3 + [job(JobStatus.COMPLETE)])
    await events_of(make_trigger(hook, FakeClock(), monkeypatch))
    assert (hook.sessions_opened, hook.sessions_closed) == (1, 1)


async def test_polling_slows_down_when_the_rate_window_runs_low(monkeypatch):
    clock = FakeClock()
    hook = FakeHook([job(JobStatus.IN_PROGRESS), job(JobStatus.COMPLETE)])
    window = {
        "x-rate-limit-limit": "150",
        "x-rate-limit-remaining": "3",
        "x-rate-limit-reset": str(START + 600),
    }
    hook.rate_limits.update(GET_JOB, window)
    await events_of(make_trigger(hook, clock, monkeypatch))
    assert clock.sleeps == [pytest.approx(200.0)]


async def test_rate_limited_poll_waits_for_the_window_reset(monkeypatch):
    clock = FakeClock()
    reset = datetime.fromtimestamp(START + 300, tz=timezone.utc)
    hook = FakeHook(
        [RateLimitedError("Too Many Requests", status=429, reset_at=reset), job(JobStatus.COMPLETE)]
    )
    await events_of(make_trigger(hook, clock, monkeypatch))
    assert clock.sleeps[0] >= 300


# --- pure helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (server_error(), False),
        (RateLimitedError("429", status=429), False),
        (httpx.ReadTimeout("slow"), False),
        (httpx.RemoteProtocolError("dropped"), False),
        (ConnectionResetError(), False),
        (AuthenticationError("401", status=401), True),
        (NotFoundError("404", status=404), True),
        (UsageCappedError("capped", status=429), True),
        (ValueError("unexpected body"), True),
    ],
)
def test_is_permanent_poll_error(error, permanent):
    assert is_permanent_poll_error(error) is permanent


def test_transient_retry_delay_is_never_shorter_than_the_poll_interval():
    assert transient_retry_delay(server_error(), 1, interval=30.0, now=START) >= 30.0


def test_transient_retry_delay_backs_off_at_most_to_the_cap():
    assert transient_retry_delay(server_error(), 50, interval=1.0, now=START) <= 600.0


# --- on_kill ---------------------------------------------------------------------------------------------


class FakeTaskInstance:
    """The trigger's task instance, answering state queries the way the Execution API does."""

    def __init__(self, state: str | BaseException | None, map_index: int = -1) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "dag", "run", "manual__1", map_index
        self.state = state
        self.queries: list[dict[str, Any]] = []

    def get_task_states(self, **query: Any) -> dict[str, Any]:
        self.queries.append(query)
        if isinstance(self.state, BaseException):
            raise self.state
        key = self.task_id if self.map_index < 0 else f"{self.task_id}_{self.map_index}"
        return {self.run_id: {key: self.state}}


def killed_trigger(
    hook: FakeHook, monkeypatch: pytest.MonkeyPatch, state: str | BaseException | None, **kwargs: Any
) -> XComplianceJobTrigger:
    trigger = make_trigger(hook, FakeClock(), monkeypatch, **kwargs)
    trigger.task_instance = FakeTaskInstance(state, kwargs.pop("map_index", -1))  # type: ignore[assignment]
    return trigger


@pytest.mark.parametrize("state", ["failed", "success", "skipped", "upstream_failed", "removed"])
async def test_on_kill_cancels_the_job_of_a_task_stopped_for_good(monkeypatch, state):
    hook = FakeHook([])
    await killed_trigger(hook, monkeypatch, state).on_kill()
    assert hook.cancelled == [JOB_ID]
    assert (hook.sessions_opened, hook.sessions_closed) == (1, 1)


@pytest.mark.parametrize(
    "state",
    # cleared (None, then scheduled/queued/running/deferred for the next try), restarting, retried, or
    # still deferred because another triggerer took the trigger over
    [None, "scheduled", "queued", "running", "deferred", "restarting", "up_for_retry", "up_for_reschedule"],
)
async def test_on_kill_leaves_the_job_to_the_next_try(monkeypatch, state):
    hook = FakeHook([])
    await killed_trigger(hook, monkeypatch, state).on_kill()
    assert hook.cancelled == []


async def test_on_kill_reads_the_state_of_its_own_mapped_task_instance(monkeypatch):
    hook = FakeHook([])
    trigger = make_trigger(hook, FakeClock(), monkeypatch)
    ti = FakeTaskInstance("failed", map_index=3)
    trigger.task_instance = ti  # type: ignore[assignment]
    await trigger.on_kill()
    assert ti.queries == [{"dag_id": "dag", "task_ids": ["run"], "run_ids": ["manual__1"], "map_index": 3}]
    assert hook.cancelled == [JOB_ID]


async def test_on_kill_leaves_the_job_when_the_state_cannot_be_read(monkeypatch, capsys):
    hook = FakeHook([])
    await killed_trigger(hook, monkeypatch, ConnectionError("api-server down")).on_kill()
    assert hook.cancelled == []
    assert "the task's state is unknown" in capsys.readouterr().out


async def test_on_kill_without_a_task_instance_leaves_the_job(monkeypatch):
    hook = FakeHook([])
    await make_trigger(hook, FakeClock(), monkeypatch).on_kill()
    assert hook.cancelled == []


async def test_on_kill_logs_instead_of_raising_when_cancel_fails(monkeypatch, capsys):
    hook = FakeHook([], cancel=CancelNotSupportedError("no DELETE", status=404))
    await killed_trigger(hook, monkeypatch, "failed").on_kill()
    assert "Could not cancel compliance job" in capsys.readouterr().out


async def test_on_kill_leaves_a_job_that_is_not_ours_alone(monkeypatch):
    hook = FakeHook([])
    await killed_trigger(hook, monkeypatch, "failed", cancel_on_kill=False).on_kill()
    assert hook.cancelled == []


@pytest.mark.parametrize(
    ("calls_on_kill", "state", "cancelled"),
    [
        (False, "failed", [JOB_ID]),  # before 3.3 a cancelled run() is the only sign of a kill
        (False, "deferred", []),  # ... and also what a triggerer restart looks like
        (True, "failed", []),  # from 3.3 Airflow calls on_kill itself: no second cancel from run()
    ],
)
async def test_a_cancelled_run_cancels_the_job_only_before_airflow_3_3_and_only_when_stopped(
    monkeypatch, calls_on_kill, state, cancelled
):
    monkeypatch.setattr(trigger_module, "TRIGGERER_CALLS_ON_KILL", calls_on_kill)
    hook = FakeHook([job(JobStatus.IN_PROGRESS)])
    trigger = killed_trigger(hook, monkeypatch, state)
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.sleep(3600)

    trigger._sleep = sleep
    running = asyncio.create_task(events_of(trigger))
    await waiting.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert hook.cancelled == cancelled


# --- with the real hook over httpx.MockTransport -----------------------------------------------------------


async def test_trigger_polls_through_the_real_hook(monkeypatch):
    from airflow_provider_xcompliance.hooks.compliance import XComplianceHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT", '{"conn_type": "x_api", "host": "http://x.test", "password": "t0ken"}'
    )
    statuses = iter(["in_progress", "server-error", "complete"])
    seen_auth: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen_auth.append(request.headers["authorization"])
        status = next(statuses)
        if status == "server-error":
            return httpx.Response(503, json={"title": "Service Unavailable", "status": 503})
        return httpx.Response(200, json={"data": {"id": JOB_ID, "type": "tweets", "status": status}})

    hook = XComplianceHook(retry_policy=RetryPolicy(max_attempts=1))
    hook._async_client_factory = lambda **kw: httpx.AsyncClient(transport=httpx.MockTransport(answer), **kw)
    [event] = await events_of(make_trigger(hook, FakeClock(), monkeypatch))  # type: ignore[arg-type]
    assert (event["status"], event["polls"]) == ("success", 3)
    assert seen_auth == ["Bearer t0ken"] * 3


async def test_first_poll_is_spread_over_one_interval(monkeypatch):
    """A triggerer resuming many waits at once must not set up every client and poll in the same instant."""
    hook, clock = FakeHook([job(JobStatus.COMPLETE)]), FakeClock()
    trigger = make_trigger(hook, clock, monkeypatch)
    trigger._random = lambda: 0.25

    (event,) = await events_of(trigger)

    assert clock.sleeps == [7.5]  # a quarter of the 30 s interval, then one poll finds the job complete
    assert event["status"] == "success"


async def test_spread_first_poll_never_passes_the_deadline(monkeypatch):
    hook, clock = FakeHook([job(JobStatus.IN_PROGRESS)]), FakeClock()
    trigger = make_trigger(hook, clock, monkeypatch, deadline=START + 5.0)
    trigger._random = lambda: 0.9

    (event,) = await events_of(trigger)

    assert clock.sleeps[0] == 5.0
    assert event["status"] == "timeout"


# --- what the triggerer imports ---------------------------------------------------------------------------

# Modules the async path never needs: loading them in the triggerer's event loop stalls every trigger.
HEAVY_MODULES = (
    "requests",
    "urllib3",
    "pyarrow",
    "numpy",
    "pandas",
    "airflow_provider_xcompliance.hooks.compliance",
    "airflow_provider_xcompliance.transfers",
    "airflow_provider_xcompliance.storage",
    "airflow_provider_xcompliance.ids",
    "airflow_provider_xcompliance.results",
    "airflow_provider_xcompliance.api_lines",
)


def test_trigger_module_imports_only_the_async_path():
    code = (
        "import sys, airflow_provider_xcompliance.triggers.compliance\n"
        f"print(sorted(set({HEAVY_MODULES!r}) & set(sys.modules)))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert fresh.stdout.strip().splitlines()[-1] == "[]"

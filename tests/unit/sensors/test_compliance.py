from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_xcompliance.exceptions import XComplianceError
from airflow_provider_xcompliance.models import Job, JobStatus, JobType
from airflow_provider_xcompliance.sensors.compliance import XComplianceJobSensor
from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger
from airflow_provider_xcompliance.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    TaskDeferred,
)
from tests.version_compat import AirflowSkipException

JOB_ID = "1425543269983784962"


class FakeHook:
    def __init__(self, status: JobStatus, error: str | None = None) -> None:
        self.job = Job(id=JOB_ID, type=JobType.USERS, status=status, error=error)
        self.calls = 0

    def get_job(self, job_id: str) -> Job:
        self.calls += 1
        assert job_id == JOB_ID
        return self.job


def make_sensor(hook: FakeHook, **kwargs: Any) -> XComplianceJobSensor:
    sensor = XComplianceJobSensor(task_id="wait", job_id=JOB_ID, poke_interval=45, timeout=3600, **kwargs)
    sensor.hook = hook  # type: ignore[misc]
    return sensor


def test_poke_is_done_when_the_job_is_complete():
    assert make_sensor(FakeHook(JobStatus.COMPLETE)).poke({}).is_done


@pytest.mark.parametrize("status", [JobStatus.CREATED, JobStatus.IN_PROGRESS, JobStatus("processing")])
def test_poke_keeps_waiting_while_the_job_is_unfinished(status):
    assert not make_sensor(FakeHook(status)).poke({}).is_done


def test_poke_fails_with_the_job_error_text_when_the_job_failed():
    with pytest.raises(AirflowFailException, match="ids file malformed"):
        make_sensor(FakeHook(JobStatus.FAILED, error="ids file malformed")).poke({})


def test_poke_fails_when_the_job_expired():
    with pytest.raises(AirflowFailException, match="expired"):
        make_sensor(FakeHook(JobStatus.EXPIRED)).poke({})


def test_soft_fail_skips_a_failed_job():
    sensor = make_sensor(FakeHook(JobStatus.FAILED, error="boom"), soft_fail=True, mode="poke")
    with pytest.raises(AirflowSkipException):
        sensor.execute({})


def test_completed_job_returns_its_summary_without_secrets():
    value = make_sensor(FakeHook(JobStatus.COMPLETE)).poke({}).xcom_value
    assert value["id"] == JOB_ID
    assert "download_url" not in value


def test_deferrable_sensor_checks_once_before_deferring():
    hook = FakeHook(JobStatus.COMPLETE)
    assert make_sensor(hook, deferrable=True).execute({})["status"] == "complete"
    assert hook.calls == 1


def test_deferrable_sensor_defers_to_the_job_trigger_with_its_timeout():
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        make_sensor(FakeHook(JobStatus.IN_PROGRESS), deferrable=True).execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, XComplianceJobTrigger)
    assert (trigger.job_id, trigger.poll_interval) == (JOB_ID, 45)
    assert trigger.cancel_on_kill is False  # killing the sensor leaves the job to whoever started it
    assert before + 3600 <= trigger.deadline <= time.time() + 3600
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=3600)


def event(status: str, job_status: str | None = None) -> dict[str, Any]:
    return {"status": status, "job_id": JOB_ID, "job_status": job_status, "message": f"job {status}"}


def test_success_event_returns_the_job_summary():
    assert make_sensor(FakeHook(JobStatus.COMPLETE)).execute_complete({}, event("success", "complete"))["id"]


def test_timeout_event_is_a_sensor_timeout():
    with pytest.raises(AirflowSensorTimeout):
        make_sensor(FakeHook(JobStatus.IN_PROGRESS)).execute_complete({}, event("timeout", "in_progress"))


@pytest.mark.parametrize("job_status", ["failed", "expired"])
def test_error_event_of_an_ended_job_fails_without_retry(job_status):
    with pytest.raises(AirflowFailException, match="job error"):
        make_sensor(FakeHook(JobStatus.FAILED)).execute_complete({}, event("error", job_status))


def test_error_event_with_an_unknown_final_status_fails_retryably_not_as_success():
    with pytest.raises(XComplianceError, match="job error"):
        make_sensor(FakeHook(JobStatus.IN_PROGRESS)).execute_complete({}, event("error", "archived"))


def test_error_event_from_polling_fails_retryably():
    with pytest.raises(XComplianceError, match="job error"):
        make_sensor(FakeHook(JobStatus.IN_PROGRESS)).execute_complete({}, event("error", None))


@pytest.mark.parametrize("bad", [None, {}, {"status": "weird", "job_id": JOB_ID}, "success"])
def test_missing_or_unknown_event_fails_closed(bad):
    with pytest.raises(XComplianceError):
        make_sensor(FakeHook(JobStatus.COMPLETE)).execute_complete({}, bad)


@pytest.mark.parametrize("status", ["timeout", "error"])
def test_soft_fail_skips_on_a_timeout_or_failed_job_event(status):
    sensor = make_sensor(FakeHook(JobStatus.FAILED), soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event(status, "failed")}, {})

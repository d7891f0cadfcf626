"""A sensor that waits for a compliance job started elsewhere (another task, another DAG, by hand)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_xcompliance.exceptions import XComplianceError
from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.lifecycle import job_outcome_error
from airflow_provider_xcompliance.models import JobStatus
from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger
from airflow_provider_xcompliance.version_compat import AirflowFailException, AirflowSensorTimeout, conf

if TYPE_CHECKING:
    from airflow.sdk import Context


class XComplianceJobSensor(BaseSensorOperator):
    """Wait until a compliance job is ``complete``; fail (or skip, with ``soft_fail``) if it fails or expires.

    The sensor never cancels the job: stopping the sensor stops the wait, not the work of whoever started it.
    A failed or expired job never recovers, so its error is raised as ``AirflowFailException`` (no pointless
    retries; ``soft_fail`` turns it into a skip) with the job's error text. In deferrable mode the sensor
    checks once, then hands the wait to :class:`XComplianceJobTrigger` with ``timeout`` as the deferral
    timeout, so sensor timeouts and ``soft_fail`` behave as they do for any Airflow sensor.

    :param job_id: the compliance job to wait for (templated).
    :param x_conn_id: the X API connection.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param max_transient_errors: transient poll failures in a row tolerated in deferrable mode.
    """

    template_fields: Sequence[str] = ("job_id",)
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        job_id: str,
        x_conn_id: str = XComplianceHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_transient_errors: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.x_conn_id = x_conn_id
        self.deferrable = deferrable
        self.max_transient_errors = max_transient_errors

    @cached_property
    def hook(self) -> XComplianceHook:
        return XComplianceHook(self.x_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        job = self.hook.get_job(self.job_id)
        self.log.info("Compliance job %s (%s) is %s", job.id, job.type.value, job.status.value)
        error = job_outcome_error(job.id, job.status, job.error)
        if error is not None:
            raise AirflowFailException(str(error)) from error
        return PokeReturnValue(is_done=job.status is JobStatus.COMPLETE, xcom_value=job.to_xcom())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        checked = self.poke(context)
        if checked.is_done:
            return checked.xcom_value
        self.defer(
            trigger=XComplianceJobTrigger(
                job_id=self.job_id,
                x_conn_id=self.x_conn_id,
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
                max_transient_errors=self.max_transient_errors,
                cancel_on_kill=False,  # the job belongs to whoever started it, as in poke mode
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger's event into the sensor's outcome; a missing or unknown event fails."""
        event = event if isinstance(event, dict) else {}
        message = event.get("message") or f"Unexpected trigger event for job {self.job_id}: {event!r}"
        if event.get("status") == "success":
            return self.hook.get_job(self.job_id).to_xcom()
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(message)
        if event.get("status") == "error" and job_outcome_error(self.job_id, event.get("job_status")):
            raise AirflowFailException(message)
        # Polling gave up (or the event is malformed): the job may be fine, so let task retries try again.
        raise XComplianceError(message)

"""The DAG the deployment test runs in real scheduler, dag-processor, triggerer and api-server processes.

One task per situation the test creates, all on the same IDs: each waits for its job in its own way and
reads its IDs and destination from the run's conf. The connection is the default ``x_default``, stored in
the metadata database by the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator

DAG_ID = "xcompliance_deployment"
COMMON = {"job_type": "tweets", "ids": "{{ dag_run.conf['ids'] }}", "poll_interval": 1.0}


def _destination(task_id: str) -> str:
    return "{{ dag_run.conf['out'] }}/" + task_id + "/"


with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False) as dag:
    for task_id in ("deferred_cleared", "deferred_marked_failed"):
        XComplianceRunJobOperator(
            task_id=task_id, destination=_destination(task_id), deferrable=True, retries=0, **COMMON
        )
    XComplianceRunJobOperator(
        task_id="polling_marked_failed",
        destination=_destination("polling_marked_failed"),
        retries=0,
        **COMMON,
    )
    XComplianceRunJobOperator(
        task_id="polling_killed",
        destination=_destination("polling_killed"),
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **COMMON,
    )

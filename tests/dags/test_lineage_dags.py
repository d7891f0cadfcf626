"""OpenLineage: run, report and apply report their inputs and outputs through the OpenLineage provider.

The provider's real listener runs inside ``dag.test()``; its client sends events to an in-memory transport.
This file is both a DAG file (parsed from the dags folder, which ``dag.test()`` requires) and a test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG

from airflow_provider_xcompliance.operators.apply import XComplianceApplyOperator
from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator

X_CONN_ID = "x_lineage"  # not x_default: DAG parsing imports tests/conftest.py, which drops that one

with DAG(
    "xc_lineage", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
) as lineage_dag:
    check = XComplianceRunJobOperator(
        task_id="check",
        job_type="tweets",
        ids="{{ dag_run.conf['ids'] }}",
        destination="{{ dag_run.conf['out'] }}/results/",
        x_conn_id=X_CONN_ID,
        poll_interval=0.2,
    )
    report = XComplianceResultsToParquetOperator(
        task_id="report",
        results=check.output,
        destination="{{ dag_run.conf['out'] }}/tables",
        job_type="tweets",
    )
    XComplianceApplyOperator(
        task_id="apply", tables=report.output, conn_id="warehouse_lineage", table="posts"
    )


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Events the OpenLineage provider's listener emits during the test, through an in-memory transport."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import Transport

    from tests.version_compat import get_listener_manager

    events: list[Any] = []

    class MemoryTransport(Transport):
        kind = "memory"

        def emit(self, event: Any) -> None:
            events.append(event)

    from airflow.providers.openlineage import conf

    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))
    # Emit in a thread of this process (not a forked child), so the in-memory transport sees every event.
    if not hasattr(conf, "execute_in_thread"):
        pytest.skip("the floor's OpenLineage provider has no execute_in_thread switch to emit inline")
    monkeypatch.setattr(conf, "execute_in_thread", lambda: True)
    listener = get_openlineage_listener()
    monkeypatch.setattr(listener.adapter, "_client", OpenLineageClient(transport=MemoryTransport()))
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        yield events
    finally:
        manager.pm.unregister(listener)


def test_each_step_reports_what_it_read_and_wrote(
    emitted: list[Any], x_conn_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [value] = x_conn_env.conn_env().values()
    monkeypatch.setenv(f"AIRFLOW_CONN_{X_CONN_ID.upper()}", value)
    ids = [1_500_000_000_000_000_000 + n * 1_000_003 for n in range(500)]
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE posts AS SELECT unnest($1::BIGINT[]) AS id", [ids])
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_LINEAGE", json.dumps({"conn_type": "duckdb", "host": str(warehouse)})
    )
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in ids))
    out = tmp_path / "out"

    run = lineage_dag.test(run_conf={"ids": str(tmp_path / "ids.txt"), "out": str(out)})

    assert run.state == "success"
    complete = {
        e.job.name.rsplit(".", 1)[-1]: e for e in emitted if e.eventType.value == "COMPLETE" and e.inputs
    }
    [results] = [p for p in (out / "results").glob("*.jsonl")]
    assert names(complete["check"].inputs) == [("file", str(tmp_path / "ids.txt"))]
    assert names(complete["check"].outputs) == [("file", str(results))]
    assert names(complete["report"].inputs) == [("file", str(results))]
    assert names(complete["report"].outputs) == [
        ("file", str(out / "tables" / a)) for a in ("delete", "scrub_geo")
    ]
    assert ("file", str(out / "tables" / "delete")) in names(complete["apply"].inputs)
    assert names(complete["apply"].outputs) == [(f"duckdb://{warehouse}", "posts")]


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(dataset.namespace, dataset.name) for dataset in datasets]

"""Results end to end in real Airflow: the run operator, then the report operator, under each results flag of
the emulator, checked against the emulator's ground truth.

Every run either goes green with every ID the emulator flagged in the table its action calls for, or goes red
naming the rejects (a truncated results file). This file is both a DAG file and a test module (see
``test_lifecycle_dags.py``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import DAG

from airflow_provider_xcompliance.actions import effective_action
from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator

CONN_ID = "x_results_dags"


def _results_dag(dag_id: str, geo_scrub: Any) -> DAG:
    with DAG(
        dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
    ) as dag:
        run = XComplianceRunJobOperator(
            task_id="run",
            job_type="tweets",
            ids="{{ dag_run.conf['ids'] }}",
            destination="{{ dag_run.conf['out'] }}/results/",
            poll_interval=0.2,
            retry_delay=timedelta(0),
            x_conn_id=CONN_ID,
        )
        XComplianceResultsToParquetOperator(
            task_id="report",
            results=run.output,
            destination="{{ dag_run.conf['out'] }}/tables",
            job_type="tweets",
            geo_scrub=geo_scrub,
        )
    return dag


results_dag = _results_dag("xc_results_scrub_geo", "scrub")
results_delete_geo_dag = _results_dag("xc_results_delete_geo", "delete")


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{1_300_000_000_000_000_000 + n * 7919}\n" for n in range(3000)))
    return path


def expected(emulator: Any, geo_scrub: Any) -> set[tuple[int, str]]:
    """(id, table) of every record the emulator's jobs flagged, by the converter's geo-scrub policy."""
    records = [record for job in emulator.state()["jobs"] for record in emulator.ground_truth(job["id"])]
    return {(int(r["id"]), effective_action(r["action"], r.get("reason"), geo_scrub)) for r in records}


def written(tables: Path) -> set[tuple[int, str]]:
    rows = pq.read_table(tables, columns=["id", "action"]).to_pylist()
    return {(row["id"], row["action"]) for row in rows}


def summary_of(tables: Path) -> dict[str, Any]:
    return json.loads((tables / "_summary.json").read_text())  # type: ignore[no-any-return]


FLAGS = {
    "defaults": {},
    "geo_scrubs_with_their_own_action": {"geo_scrub_action": "scrub_geo"},
    "missing_timestamps": {"result_timestamps": "missing"},
    "odd_timestamps": {"result_timestamps": "odd"},
    "crlf": {"crlf": True},
}


@pytest.mark.parametrize("emulator_config", list(FLAGS.values()), indirect=True, ids=list(FLAGS))
def test_every_flagged_id_reaches_its_table(airflow_db, api, emulator_config, ids_file, tmp_path):
    dag_run = results_dag.test(run_conf={"ids": str(ids_file), "out": str(tmp_path)})

    assert dag_run.state == "success"
    truth = expected(api, "scrub")
    assert len(truth) > 50
    assert {table for _, table in truth} == {"delete", "scrub_geo"}
    assert written(tmp_path / "tables") == truth
    summary = summary_of(tmp_path / "tables")
    assert (summary["rejected"], summary["reconciled"]) == (0, True)
    if emulator_config.result_timestamps == "missing":
        assert summary["rows_missing_created_at"] == pytest.approx(len(truth) / 4, abs=3)
    if emulator_config.result_timestamps == "odd":
        assert summary["rows_unreadable_timestamps"] + summary["rows_missing_created_at"] > len(truth) / 8


def test_geo_scrubs_go_to_delete_when_asked(airflow_db, api, ids_file, tmp_path):
    dag_run = results_delete_geo_dag.test(run_conf={"ids": str(ids_file), "out": str(tmp_path)})

    assert dag_run.state == "success"
    assert written(tmp_path / "tables") == expected(api, "delete")
    assert summary_of(tmp_path / "tables")["rows_by_action"]["scrub_geo"] == 0


@pytest.mark.parametrize("emulator_config", [{"truncate_results": True}], indirect=True)
def test_truncated_results_fail_the_report_naming_the_rejects(airflow_db, api, ids_file, tmp_path, capfd):
    dag_run = results_dag.test(run_conf={"ids": str(ids_file), "out": str(tmp_path)})

    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("run").state == "success"
    assert dag_run.get_task_instance("report").state == "failed"
    rejects = tmp_path / "tables" / "_rejects.jsonl"
    [reject] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["reason"] == "malformed_json"
    output = capfd.readouterr()
    assert str(rejects) in output.out + output.err
    summary = summary_of(tmp_path / "tables")
    assert summary["rejected"] == 1
    assert written(tmp_path / "tables") < expected(api, "scrub")  # the lines after the cut are lost

"""XComplianceResultsToParquetOperator: result files from URIs or XCom, tables and a summary out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import Asset

from airflow_provider_xcompliance.exceptions import ResultsRejectedError
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator, result_sources
from tests.unit.operators.outlets import OutletEvents

LINES = [
    {"id": "1265324480517361664", "action": "delete", "created_at": "2019-10-29T17:02:47.000Z",
     "redacted_at": "2020-07-29T17:02:47.000Z", "reason": "deleted"},
    {"id": "1263926741774581761", "action": "scrub_geo", "created_at": "2019-10-29T17:02:47.000Z",
     "reason": "scrub_geo"},
]  # fmt: skip


def write_results(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_plain_uris_get_their_job_id_later_from_the_file_name() -> None:
    assert result_sources(["/r/a.jsonl", "/r/b.jsonl"]) == {"/r/a.jsonl": None, "/r/b.jsonl": None}
    assert result_sources("/r/a.jsonl") == {"/r/a.jsonl": None}


def test_run_operator_xcom_maps_each_chunk_file_to_its_job() -> None:
    xcom = {"job_ids": ["11", "12"], "results_uris": ["/r/1.jsonl", "/r/2.jsonl"], "result_lines": 3}
    assert result_sources(xcom) == {"/r/1.jsonl": "11", "/r/2.jsonl": "12"}


def test_download_operator_xcoms_can_be_combined() -> None:
    xcoms = [{"job_id": "11", "results_uri": "/r/1.jsonl"}, {"job_id": "12", "results_uri": "/r/2.jsonl"}]
    assert result_sources(xcoms) == {"/r/1.jsonl": "11", "/r/2.jsonl": "12"}


@pytest.mark.parametrize(
    "results",
    [[], {"job_ids": ["1"], "results_uris": []}, {"unexpected": "shape"}],
)
def test_results_without_files_are_refused(results: Any) -> None:
    with pytest.raises(ValueError, match="results"):
        result_sources(results)


def test_execute_writes_a_table_per_action_and_returns_the_summary(tmp_path: Path) -> None:
    results = write_results(tmp_path / "1425543269983784962.jsonl", LINES)
    operator = XComplianceResultsToParquetOperator(
        task_id="to_parquet",
        results={"job_ids": ["1425543269983784962"], "results_uris": [results]},
        destination=str(tmp_path / "tables"),
        job_type="tweets",
    )

    summary = operator.execute(context={})  # type: ignore[arg-type]

    assert summary["rows_by_action"] == {"delete": 1, "scrub_geo": 1}
    assert summary["reconciled"] is True
    delete = pq.read_table(summary["tables"]["delete"]).to_pylist()
    assert delete[0]["id"] == 1265324480517361664
    assert delete[0]["job_id"] == "1425543269983784962"
    assert json.loads((tmp_path / "tables" / "_summary.json").read_text())["rows_written"] == 2


def test_asset_outlets_carry_the_row_counts(tmp_path: Path) -> None:
    asset = Asset("file:///lake/compliance/tweets")
    operator = XComplianceResultsToParquetOperator(
        task_id="to_parquet",
        results=write_results(tmp_path / "r.jsonl", LINES),
        destination=str(tmp_path / "tables"),
        job_type="tweets",
        outlets=[asset],
    )
    events = OutletEvents()

    operator.execute(context={"outlet_events": events})  # type: ignore[arg-type]

    assert events[asset].extra["rows_by_action"] == {"delete": 1, "scrub_geo": 1}


def test_any_reject_fails_the_task_by_default_after_writing_everything(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps(LINES[0]) + '\n{"id":"1263926741774581761","action":"de')
    operator = XComplianceResultsToParquetOperator(
        task_id="to_parquet", results=str(results), destination=str(tmp_path / "tables"), job_type="tweets"
    )

    with pytest.raises(ResultsRejectedError, match=r"1 of 2 .*1 of them name an ID") as raised:
        operator.execute(context={})  # type: ignore[arg-type]

    rejects = tmp_path / "tables" / "_rejects.jsonl"
    assert str(rejects) in str(raised.value)
    assert json.loads(rejects.read_text())["id"] == "1263926741774581761"
    assert pq.read_table(tmp_path / "tables" / "delete")["id"].to_pylist() == [1265324480517361664]
    assert json.loads((tmp_path / "tables" / "_summary.json").read_text())["rejected"] == 1


def test_max_rejects_opts_into_tolerance_and_geo_scrub_into_deleting(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in LINES) + "junk\n")
    operator = XComplianceResultsToParquetOperator(
        task_id="to_parquet",
        results=str(results),
        destination=str(tmp_path / "tables"),
        job_type="tweets",
        max_rejects=1,
        geo_scrub="delete",
    )

    summary = operator.execute(context={})  # type: ignore[arg-type]

    assert (summary["rejected"], summary["rows_by_action"]) == (1, {"delete": 2, "scrub_geo": 0})
    assert set(summary["tables"]) == {"delete", "scrub_geo"}

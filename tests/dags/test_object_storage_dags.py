"""The operators on object storage in real Airflow: ``dag.test()`` against the X emulator and an S3 server.

IDs, results, chunk plans and tables live in a moto S3 bucket reached through the ``aws_test`` connection
named in every URI. A worker that dies between chunks retries on an empty local disk (a new temp folder),
as a retry on another Celery or Kubernetes worker would. This file is both a DAG file and a test module.
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath, task

from airflow_provider_xcompliance import storage
from airflow_provider_xcompliance.actions import effective_action
from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator
from tests.conftest import record_calls
from tests.dags.support import (
    CONN_ID,
    CrashBetweenChunksOperator,
    by_id,
    context_try,
    ground_truth,
    new_dag,
    tries_of,
)

LAKE = "{{ dag_run.conf['lake'] }}"
S3_TASK = {
    "ids": "{{ dag_run.conf['ids'] }}",
    "destination": f"{LAKE}/results/",
    "poll_interval": 0.2,
    "retry_delay": timedelta(0),
    "x_conn_id": CONN_ID,
    "job_type": "tweets",
    "deferrable": True,
    "max_ids_per_job": 40,
}


class NewWorkerPerTryOperator(CrashBetweenChunksOperator):
    """Dies between chunks on its first try; every try starts on an empty local disk of its own."""

    def _proceed(self, context: Any, runner: Any) -> Any:  # every entry: a first start, a resume, a retry
        disk = Path(context["dag_run"].conf["disks"]) / f"try-{context_try()}"
        disk.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(disk)
        return super()._proceed(context, runner)


class SourceRewrittenOperator(NewWorkerPerTryOperator):
    """Its source gains an ID after the first chunk ran, before the retry."""

    def _download(self, prepared: Any, chunk: Any, name: str, job: Any) -> Any:
        if context_try() == 1 and chunk.index == 0:
            source = ObjectStoragePath(self.ids)
            source.write_bytes(source.read_bytes() + b"1999999999999999999\n")
        return super()._download(prepared, chunk, name, job)


with new_dag("xc_s3_pipeline") as pipeline_dag:

    @task
    def export_ids(lake: str, count: int) -> str:
        """Like the example's export: the IDs of a stored table, as Parquet in the lake."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = pa.table({"id": pa.array([1_300_000_000_000_000_000 + n * 7919 for n in range(count)])})
        target = ObjectStoragePath(f"{lake}/export/posts.parquet")
        with target.open("wb") as out:
            pq.write_table(ids, out)
        return str(target)

    exported = export_ids(LAKE, 100)
    check = XComplianceRunJobOperator(task_id="run", **{**S3_TASK, "ids": exported})
    XComplianceResultsToParquetOperator(
        task_id="to_parquet", results=check.output, destination=f"{LAKE}/tables", job_type="tweets"
    )

with new_dag("xc_s3_run") as run_dag:
    XComplianceRunJobOperator(task_id="run", **S3_TASK)

with new_dag("xc_s3_worker_dies") as worker_dies_dag:
    NewWorkerPerTryOperator(task_id="run", retries=1, **S3_TASK)

with new_dag("xc_s3_source_changes") as source_changes_dag:
    SourceRewrittenOperator(task_id="run", retries=1, **S3_TASK)


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def ids_source(s3_bucket: str) -> str:
    uri = f"{s3_bucket}/ids/posts.txt"
    ObjectStoragePath(uri).write_text(
        "".join(f"{1_300_000_000_000_000_000 + n * 7919}\n" for n in range(100))
    )
    return uri


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every read of an ID source (``prepare_ids`` call) in this test."""
    from airflow_provider_xcompliance.operators import compliance

    calls = record_calls(monkeypatch, compliance, "prepare_ids")
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)  # the crashing tries move it
    return calls


def results_in(lake: str) -> list[dict[str, Any]]:
    files = sorted(ObjectStoragePath(f"{lake}/results/").glob("*.jsonl"), key=str)
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def lake_files(lake: str) -> list[str]:
    root = ObjectStoragePath(lake)
    return sorted(str(path)[len(str(root)) + 1 :] for path in root.rglob("*") if path.is_file())


def run_with_a_dying_worker(dag: Any, lake: str, ids: str, tmp_path: Path) -> Any:
    """Run ``dag``, whose first try dies between chunks and whose every try has its own empty disk."""
    dag_run = dag.test(run_conf={"lake": lake, "ids": ids, "disks": str(tmp_path / "disks")})
    assert tries_of(dag_run) == 2
    return dag_run


def test_example_style_pipeline_runs_on_s3(airflow_db, api, s3_bucket):
    import pyarrow as pa
    import pyarrow.parquet as pq

    dag_run = pipeline_dag.test(run_conf={"lake": s3_bucket})
    assert dag_run.state == "success"
    jobs = api.state()["jobs"]
    assert [job["uploaded_ids"] for job in jobs] == [40, 40, 20]
    truth = ground_truth(api)
    assert by_id(results_in(s3_bucket)) == by_id(truth)
    tables = ObjectStoragePath(f"{s3_bucket}/tables")
    parts = sorted(tables.rglob("*.parquet"), key=str)
    read = pa.concat_tables(pq.read_table(path.open("rb"), columns=["id", "action"]) for path in parts)
    assert sorted(
        zip(read.column("id").to_pylist(), read.column("action").to_pylist(), strict=True)
    ) == sorted(  # by the report operator's default geo-scrub policy
        (int(record["id"]), effective_action(record["action"], record.get("reason"), "scrub"))
        for record in truth
    )
    plans = [name for name in lake_files(s3_bucket) if name.endswith(".plan.json")]
    assert len(plans) == 1  # the plan stays; the staged ID copies are gone once every chunk is done
    assert not [name for name in lake_files(s3_bucket) if name.endswith(".txt")]


def test_text_sources_on_s3_by_glob(airflow_db, api, s3_bucket):
    for part in range(2):
        ObjectStoragePath(f"{s3_bucket}/ids/part-{part}.txt").write_text(
            "".join(f"{1_400_000_000_000_000_000 + part * 1000 + n}\n" for n in range(30))
        )
    dag_run = run_dag.test(run_conf={"lake": s3_bucket, "ids": f"{s3_bucket}/ids/part-*.txt"})
    assert dag_run.state == "success"
    assert [job["uploaded_ids"] for job in api.state()["jobs"]] == [40, 20]
    assert by_id(results_in(s3_bucket)) == by_id(ground_truth(api))


def test_retry_on_an_empty_disk_resumes_from_the_plan_without_reading_the_source(
    airflow_db, api, s3_bucket, ids_source, reads, tmp_path, monkeypatch
):
    copies = record_calls(monkeypatch, storage, "copy")
    dag_run = run_with_a_dying_worker(worker_dies_dag, s3_bucket, ids_source, tmp_path)
    assert dag_run.state == "success"
    jobs = api.state()["jobs"]
    assert [job["uploaded_ids"] for job in jobs] == [40, 40, 20]
    assert all(job["uploads_completed"] == 1 for job in jobs)  # no chunk uploaded twice
    assert len(reads) == 1  # the source was read by the first try only
    fetched = [str(source)[-9:] for source, _ in copies if str(source).startswith("s3://")]
    assert fetched == ["00001.txt", "00002.txt"]  # the chunks the retry still had to upload, from the bucket
    assert by_id(results_in(s3_bucket)) == by_id(ground_truth(api))


def test_source_changed_between_tries_fails_naming_the_file(
    airflow_db, api, s3_bucket, ids_source, reads, tmp_path, capfd
):
    dag_run = run_with_a_dying_worker(source_changes_dag, s3_bucket, ids_source, tmp_path)
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    assert "SourceChangedError" in output.out + output.err
    assert f"{ids_source} changed size (2000 -> 2020 bytes)" in output.out + output.err
    assert [job["uploaded_ids"] for job in api.state()["jobs"]] == [40]  # no chunk of the new version ran

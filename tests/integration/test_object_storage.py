"""Object storage for real: sources, plans, results and tables on a local S3 server (moto).

Credentials come only from the Airflow connection named in the URIs (``s3://aws_test@bucket/...``), whose
extra points at the server; nothing reads AWS settings from the environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_xcompliance import ids, storage
from airflow_provider_xcompliance.operators.apply import XComplianceApplyOperator, audit_file_name
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator
from tests.conftest import record_calls
from tests.unit.result_tables import write_tables

pytestmark = pytest.mark.integration


def s3_path(uri: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri)


def key_of(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split("@", 1)[1].partition("/")
    return bucket, key


def test_credentials_come_from_the_connection_named_in_the_uri(s3_bucket: str) -> None:
    storage.write_text(f"{s3_bucket}/a/b.txt", "1\n")
    assert storage.read_text(f"{s3_bucket}/a/b.txt") == "1\n"
    assert storage.read_text(f"{s3_bucket}/a/missing.txt") is None


def test_glob_on_s3_keeps_the_connection_in_every_match(s3_bucket: str) -> None:
    for name in ("b.txt", "a.txt", "c.csv"):
        s3_path(f"{s3_bucket}/ids/{name}").write_bytes(b"7\n")
    found = ids.expand_sources(f"{s3_bucket}/ids/*.txt")
    assert [str(path) for path in found] == [f"{s3_bucket}/ids/a.txt", f"{s3_bucket}/ids/b.txt"]


def test_folder_source_on_s3_is_validated_and_chunked(s3_bucket: str, tmp_path: Any) -> None:
    s3_path(f"{s3_bucket}/ids/part-1.txt").write_bytes(b"10\n20\n")
    table = pa.table({"id": pa.array([30, 40, 50], pa.int64())})
    with s3_path(f"{s3_bucket}/ids/part-2.parquet").open("wb") as out:
        pq.write_table(table, out)
    prepared = ids.prepare_ids(f"{s3_bucket}/ids/", tmp_path, max_ids_per_job=4)
    assert [chunk.path.read_text() for chunk in prepared.chunks] == ["10\n20\n30\n40\n", "50\n"]


def test_fingerprint_changes_with_the_object_not_with_the_clock(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/ids.txt"
    s3_path(uri).write_bytes(b"1\n2\n")
    [first] = ids.source_fingerprint(uri)
    s3_path(uri).write_bytes(b"1\n2\n")  # rewritten with the same bytes: same ETag
    assert ids.source_fingerprint(uri) == (first,)
    s3_path(uri).write_bytes(b"1\n3\n")
    [changed] = ids.source_fingerprint(uri)
    assert (changed.uri, changed.size) == (uri, 4)
    assert changed.version != first.version
    assert changed.version.startswith("ETag ")


def big_results_ids(rows: int) -> list[int]:
    return np.random.default_rng(7).integers(10**17, 10**18, rows, dtype=np.int64).tolist()


@pytest.fixture
def big_results(s3_bucket: str) -> tuple[str, int]:
    """A results file whose delete table is several S3 parts large (random IDs barely compress)."""
    rows = 1_000_000
    values = big_results_ids(rows)
    lines = "".join(
        f'{{"id":"{v}","action":"delete","created_at":"2020-01-01T00:00:00.000Z","reason":"deleted"}}\n'
        for v in values
    )
    uri = f"{s3_bucket}/results/1460000000000000000.jsonl"
    s3_path(uri).write_bytes(lines.encode())
    return uri, rows


def test_report_writes_multipart_tables_to_s3(
    s3_bucket: str, big_results: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = s3_path(s3_bucket).fs
    # S3's smallest part size as s3fs's block size, so a table of a few parts takes the multipart path.
    monkeypatch.setattr(fs, "default_block_size", 5 * 2**20)
    calls = record_calls(monkeypatch, fs, "call_s3")
    uri, rows = big_results
    operator = XComplianceResultsToParquetOperator(
        task_id="to_parquet", results=uri, destination=f"{s3_bucket}/tables", job_type="tweets"
    )
    summary = operator.execute(context={})  # type: ignore[arg-type]
    assert summary["rows_by_action"]["delete"] == rows
    methods = [method for method, *_ in calls]
    assert methods.count("upload_part") >= 2
    assert methods.count("complete_multipart_upload") >= 1
    files = sorted(s3_path(summary["tables"]["delete"]).rglob("*.parquet"), key=str)
    assert sum(path.stat()["size"] for path in files) > 5 * 2**20  # more than one part
    read = pa.concat_tables(pq.read_table(path.open("rb")) for path in files)
    assert sorted(read.column("id").to_pylist()) == sorted(big_results_ids(rows))
    written = json.loads(s3_path(f"{s3_bucket}/tables/_summary.json").read_text())
    assert written["rows_by_action"]["delete"] == rows


def upload_folder(folder: Path, uri: str) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            s3_path(f"{uri}/{file.relative_to(folder).as_posix()}").write_bytes(file.read_bytes())


def warehouse_conn(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[dict[str, Any], Callable[[], list[tuple[Any, ...]]]]:
    """An Airflow connection to a fresh ``posts`` table (posts 1..12, every third with geo data, created
    when ``write_tables`` says), and a function returning ``(id, geo_lat)`` of its rows."""
    create = (
        "CREATE TABLE posts (id BIGINT PRIMARY KEY, geo_lat DOUBLE PRECISION, created_at TIMESTAMP); "
        "INSERT INTO posts SELECT i, CASE WHEN i % 3 = 0 THEN 1.5 END, "
        "TIMESTAMP '2020-01-01' + i * INTERVAL '1 minute' FROM generate_series(1, 12) AS t(i)"
    )
    select = "SELECT id, geo_lat FROM posts ORDER BY id"
    if kind == "duckdb":
        path = str(tmp_path / "warehouse.duckdb")
        with duckdb.connect(path) as con:
            con.execute(create)

        def duckdb_rows() -> list[tuple[Any, ...]]:
            with duckdb.connect(path) as con:
                return con.execute(select).fetchall()

        return {"conn_type": "duckdb", "host": path}, duckdb_rows
    import psycopg

    db = request.getfixturevalue("postgres_db")
    with psycopg.connect(**db, autocommit=True) as con:
        con.execute(create)

    def postgres_rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(**db) as con:
            return con.execute(select).fetchall()

    conn = {"conn_type": "postgres", "host": db["host"], "port": int(db["port"]), "login": db["user"]}
    return {**conn, "schema": db["dbname"]}, postgres_rows


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_apply_reads_tables_in_s3_through_the_connection(
    kind: str, s3_bucket: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = write_tables(tmp_path, {("delete", "deleted"): [1, 2, 50], ("scrub_geo", "scrub_geo"): [6, 9]})
    upload_folder(tables, f"{s3_bucket}/tables")
    conn, rows = warehouse_conn(kind, tmp_path, request)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(conn))
    apply = XComplianceApplyOperator(
        task_id="apply",
        tables=f"{s3_bucket}/tables",
        conn_id="warehouse",
        table="posts",
        geo_columns=["geo_lat"],
        created_at_column="created_at",  # its bounds come from the parts' statistics, read from S3
    )

    record = apply.execute(context={"outlet_events": {}})  # type: ignore[arg-type]

    expected = [(i, 1.5 if i % 3 == 0 and i not in (6, 9) else None) for i in range(3, 13)]
    assert rows() == expected
    assert (record["rows_deleted"], record["rows_scrubbed"]) == (2, 2)
    audit = json.loads(
        s3_path(f"{s3_bucket}/tables/{audit_file_name('warehouse', 'posts', dry_run=False)}").read_text()
    )
    assert audit["rows_deleted"] == 2
    again = apply.execute(context={"outlet_events": {}})  # type: ignore[arg-type]
    assert (again["changed"], again["ids_unchanged"], rows()) == (False, 5, expected)

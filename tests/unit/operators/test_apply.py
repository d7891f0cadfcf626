"""XComplianceApplyOperator: tables from XCom or a URI, any SQL connection, an audit record, lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import Asset

from airflow_provider_xcompliance.operators.apply import (
    XComplianceApplyOperator,
    audit_file_name,
    tables_location,
)
from tests.unit.operators.outlets import OutletEvents
from tests.unit.result_tables import write_tables


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    return write_tables(tmp_path, {("delete", "deleted"): [1, 2, 3], ("scrub_geo", "scrub_geo"): [6, 9]})


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE posts AS SELECT i AS id, CASE WHEN i % 3 = 0 THEN 1.5 END AS geo_lat "
            "FROM range(1, 11) t(i)"
        )
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def operator(tables: Any, **kwargs: Any) -> XComplianceApplyOperator:
    options = {"conn_id": "warehouse", "table": "posts", "geo_columns": ["geo_lat"], **kwargs}
    return XComplianceApplyOperator(task_id="apply", tables=tables, **options)


def rows(warehouse: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT id, geo_lat FROM posts ORDER BY id").fetchall()


def test_the_tables_folder_comes_from_the_report_xcom_or_is_given() -> None:
    assert tables_location({"destination": "s3://lake/t/", "tables": {}}) == "s3://lake/t/"
    assert tables_location({"summary_path": "/data/t/_summary.json"}) == "/data/t"
    assert tables_location(Path("/data/t")) == "/data/t"
    with pytest.raises(ValueError, match="Cannot find the tables folder"):
        tables_location({"tables": {}})


def test_execute_applies_the_tables_and_writes_the_audit_record_beside_them(
    tables: Path, warehouse: Path
) -> None:
    events = OutletEvents()
    asset = Asset("x-compliance://warehouse/posts")

    record = operator({"destination": str(tables)}, outlets=[asset]).execute(
        context={"outlet_events": events}  # type: ignore[arg-type]
    )

    assert rows(warehouse) == [(4, None), (5, None), (6, None), (7, None), (8, None), (9, None), (10, None)]
    assert record["rows_deleted"] == 3
    assert record["rows_scrubbed"] == 2
    written = json.loads((tables / audit_file_name("warehouse", "posts", dry_run=False)).read_text())
    assert written == record
    assert written["target"] == {"conn_id": "warehouse", "conn_type": "duckdb", "table": "posts"}
    assert written["job_ids"] == ["1500000000000000001"]
    assert events[asset].extra["rows_deleted"] == 3
    assert events[asset].extra["changed"] is True


def test_a_dry_run_changes_nothing_and_writes_its_own_record(tables: Path, warehouse: Path) -> None:
    before = rows(warehouse)

    record = operator(str(tables), dry_run=True).execute(context={"outlet_events": {}})  # type: ignore[arg-type]

    assert rows(warehouse) == before
    assert (record["dry_run"], record["rows_deleted"], record["rows_scrubbed"]) == (True, 3, 2)
    assert (tables / "_dry_run-warehouse-posts.json").exists()
    assert not (tables / "_applied-warehouse-posts.json").exists()


def test_a_connection_that_is_not_a_sql_warehouse_is_refused(
    tables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOT_SQL", json.dumps({"conn_type": "x_api", "password": "t"}))

    with pytest.raises(TypeError, match=r"not a common\.sql DbApiHook"):
        operator(str(tables), conn_id="not_sql").execute(context={"outlet_events": {}})  # type: ignore[arg-type]


def test_lineage_names_the_parquet_tables_read_and_the_table_changed(tables: Path, warehouse: Path) -> None:
    task = operator(str(tables))
    task.execute(context={"outlet_events": {}})  # type: ignore[arg-type]

    lineage = task.get_openlineage_facets_on_complete(task_instance=None)

    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("file", str(tables / "delete")),
        ("file", str(tables / "scrub_geo")),
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"duckdb://{warehouse}", "posts")]


def test_the_operator_path_loads_no_numpy_or_pyarrow() -> None:
    # DuckDB reads local tables itself: the task's memory is not spent on libraries it does not use.
    code = (
        "import sys, airflow_provider_xcompliance.operators.apply\n"
        "print(sorted({'numpy', 'pyarrow', 'pandas'} & set(sys.modules)))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert fresh.stdout.strip().splitlines()[-1] == "[]"


def test_count_by_reason_counts_each_reason_on_duckdb(tmp_path: Path, warehouse: Path) -> None:
    tables = write_tables(tmp_path, {("delete", "deleted"): [1, 2], ("delete", "suspended"): [3, 99]})

    one_pass = operator(str(tables)).execute(context={"outlet_events": {}})  # type: ignore[arg-type]
    assert one_pass["actions"]["delete"]["by_reason"] == {"deleted": {"ids": 2}, "suspended": {"ids": 2}}
    assert (one_pass["rows_deleted"], one_pass["ids_unchanged"]) == (3, None)

    with duckdb.connect(str(warehouse)) as con:
        con.execute("INSERT INTO posts VALUES (1, NULL), (3, NULL), (3, NULL)")  # an ID may have several rows
    exact = operator(str(tables), count_by_reason=True).execute(context={"outlet_events": {}})  # type: ignore[arg-type]
    assert exact["actions"]["delete"]["by_reason"] == {
        "deleted": {"ids": 2, "rows_changed": 1, "ids_changed": 1, "ids_unchanged": 1},
        "suspended": {"ids": 2, "rows_changed": 2, "ids_changed": 1, "ids_unchanged": 1},
    }
    assert (exact["rows_deleted"], exact["ids_unchanged"]) == (3, 2)


def test_ids_per_statement_splits_duckdb_statements(
    tables: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_xcompliance import warehouse_sql

    asked: list[int] = []

    def ranges(cursor: Any, parquet: str, count: int) -> list[warehouse_sql.IdRange]:
        asked.append(count)
        return real(cursor, parquet, count)

    real = warehouse_sql.id_ranges
    monkeypatch.setattr(warehouse_sql, "id_ranges", ranges)

    record = operator(str(tables), ids_per_statement=2).execute(context={"outlet_events": {}})  # type: ignore[arg-type]

    assert asked == [2, 1]  # delete: 3 IDs, 2 a statement; scrub_geo: 2 IDs
    assert (record["rows_deleted"], record["rows_scrubbed"]) == (3, 2)
    assert rows(warehouse) == [(4, None), (5, None), (6, None), (7, None), (8, None), (9, None), (10, None)]

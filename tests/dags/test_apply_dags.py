"""Run, report, apply, as the README shows it: a PostgreSQL table and a DuckDB file brought into line with the
emulator's ground truth, twice in a row, the second run changing nothing (and its audit record saying so).

This file is both a DAG file (parsed from the dags folder, which ``dag.test()`` requires) and a test module.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG, Asset

from airflow_provider_xcompliance.actions import effective_action
from airflow_provider_xcompliance.operators.apply import XComplianceApplyOperator
from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator
from airflow_provider_xcompliance.version_compat import AIRFLOW_V_3_1_PLUS

X_CONN_ID = "x_apply"  # not x_default: DAG parsing imports tests/conftest.py, which drops that one
POSTS_APPLIED = Asset("x-compliance://warehouse/analytics/posts")
GEO = ["geo_lat", "geo_lon"]

with DAG(
    "xc_apply_readme", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
) as readme_dag:
    check_posts = XComplianceRunJobOperator(
        task_id="check_posts",
        job_type="tweets",
        ids="{{ dag_run.conf['ids'] }}",
        destination="{{ dag_run.conf['out'] }}/results/",
        x_conn_id=X_CONN_ID,
        poll_interval=0.2,
        deferrable=True,
    )
    posts_to_parquet = XComplianceResultsToParquetOperator(
        task_id="posts_to_parquet",
        results=check_posts.output,
        destination="{{ dag_run.conf['out'] }}/tables/",
        job_type="tweets",
    )
    apply_postgres = XComplianceApplyOperator(
        task_id="apply_postgres",
        tables=posts_to_parquet.output,
        conn_id="warehouse_pg",
        table="analytics.posts",
        id_column="id",
        geo_columns=GEO,
        created_at_column="created_at",
        outlets=[POSTS_APPLIED],
    )
    apply_duckdb = XComplianceApplyOperator(
        task_id="apply_duckdb",
        tables=posts_to_parquet.output,
        conn_id="warehouse_duckdb",
        table="posts",
        geo_columns=GEO,
    )


# --- tests --------------------------------------------------------------------------------------------------

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]
POSTS = 3000


def post_ids() -> list[int]:
    return [1_500_000_000_000_000_000 + n * 1_000_003 for n in range(POSTS)]


@pytest.fixture
def warehouses(
    tmp_path: Path, postgres_db: dict[str, str], x_conn_env: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The same posts in a PostgreSQL table and a DuckDB file; connections as env vars; the ID export."""
    import psycopg

    [value] = x_conn_env.conn_env().values()
    monkeypatch.setenv(f"AIRFLOW_CONN_{X_CONN_ID.upper()}", value)
    rows = [
        (i, f"post {n}", *((40.5, -70.5) if n % 3 == 0 else (None, None)), created(i))
        for n, i in enumerate(post_ids())
    ]
    with psycopg.connect(**postgres_db, autocommit=True) as con:
        con.execute("CREATE SCHEMA analytics")
        con.execute(
            "CREATE TABLE analytics.posts (id bigint PRIMARY KEY, text text, geo_lat float8, geo_lon float8, "
            "created_at timestamptz)"
        )
        with con.cursor().copy("COPY analytics.posts FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    duck = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(duck)) as con:
        con.execute(
            "CREATE TABLE posts (id BIGINT PRIMARY KEY, text VARCHAR, geo_lat DOUBLE, geo_lon DOUBLE, "
            "created_at TIMESTAMPTZ)"
        )
        con.executemany("INSERT INTO posts VALUES (?, ?, ?, ?, ?)", rows)
    pg = {"conn_type": "postgres", "host": postgres_db["host"], "port": int(postgres_db["port"])}
    pg |= {"login": postgres_db["user"], "schema": postgres_db["dbname"]}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_PG", json.dumps(pg))
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DUCKDB", json.dumps({"conn_type": "duckdb", "host": str(duck)})
    )
    ids = tmp_path / "post_ids.txt"
    ids.write_text("".join(f"{i}\n" for i in post_ids()))
    return {"pg": postgres_db, "duckdb": duck, "ids": ids, "emulator": x_conn_env}


def created(post_id: int) -> datetime:
    """The emulator's ``created_at`` of a post: its snowflake timestamp."""
    return datetime.fromtimestamp(((post_id >> 22) + 1_288_834_974_657) / 1000, tz=timezone.utc)


def state(warehouses: dict[str, Any]) -> dict[str, tuple[set[int], set[int]]]:
    """(IDs, IDs with geo data) in each warehouse."""
    import psycopg

    with psycopg.connect(**warehouses["pg"]) as con:
        pg = con.execute("SELECT id, geo_lat IS NOT NULL FROM analytics.posts").fetchall()
    with duckdb.connect(str(warehouses["duckdb"]), read_only=True) as con:
        duck = con.execute("SELECT id, geo_lat IS NOT NULL FROM posts").fetchall()
    return {
        name: ({r[0] for r in rows}, {r[0] for r in rows if r[1]})
        for name, rows in (("pg", pg), ("duckdb", duck))
    }


def ground_truth(emulator: Any) -> dict[str, set[int]]:
    actions: dict[str, set[int]] = {}
    for job in emulator.state()["jobs"]:
        for record in emulator.ground_truth(job["id"]):
            action = effective_action(record["action"], record.get("reason"))
            actions.setdefault(action, set()).add(int(record["id"]))
    return actions


def asset_events() -> list[dict[str, Any]]:
    """The ``extra`` of every event of the apply step's asset, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        query = query.where(AssetModel.uri == POSTS_APPLIED.uri).order_by(AssetEvent.id)
        return [dict(extra) for extra in session.scalars(query)]


def audit(out: Path, conn_id: str, table: str) -> dict[str, Any]:
    return json.loads((out / "tables" / f"_applied-{conn_id}-{table}.json").read_text())


@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's dag.test() does not register a DAG's assets: its asset outlets fail as inactive",
)
def test_run_report_apply_brings_postgres_and_duckdb_into_line_twice(
    warehouses: dict[str, Any], tmp_path: Path
) -> None:
    before = state(warehouses)["pg"]

    first = readme_dag.test(run_conf={"ids": str(warehouses["ids"]), "out": str(tmp_path / "run1")})

    assert first.state == "success"
    truth = ground_truth(warehouses["emulator"])
    assert truth["delete"]
    assert truth["scrub_geo"] & before[1]
    expected = (before[0] - truth["delete"], before[1] - truth["delete"] - truth["scrub_geo"])
    assert state(warehouses) == {"pg": expected, "duckdb": expected}
    for conn_id, table in (("warehouse_pg", "analytics.posts"), ("warehouse_duckdb", "posts")):
        record = audit(tmp_path / "run1", conn_id, table)
        assert record["rows_deleted"] == len(truth["delete"])
        assert record["rows_scrubbed"] == len((truth["scrub_geo"] & before[1]) - truth["delete"])
        assert record["changed"] is True

    assert asset_events()[-1]["rows_deleted"] == len(truth["delete"])

    second = readme_dag.test(run_conf={"ids": str(warehouses["ids"]), "out": str(tmp_path / "run2")})

    assert second.state == "success"
    assert state(warehouses) == {"pg": expected, "duckdb": expected}
    for conn_id, table in (("warehouse_pg", "analytics.posts"), ("warehouse_duckdb", "posts")):
        record = audit(tmp_path / "run2", conn_id, table)
        assert (record["rows_deleted"], record["rows_scrubbed"], record["changed"]) == (0, 0, False)
        assert record["ids_unchanged"] == len(truth["delete"] | truth["scrub_geo"])
        assert record["job_ids"] != audit(tmp_path / "run1", conn_id, table)["job_ids"]
    assert asset_events()[-1] | {"job_ids": []} == {
        "conn_id": "warehouse_pg",
        "table": "analytics.posts",
        "job_ids": [],
        "rows_deleted": 0,
        "rows_scrubbed": 0,
        "ids_unchanged": len(truth["delete"] | truth["scrub_geo"]),
        "changed": False,
        "dry_run": False,
    }

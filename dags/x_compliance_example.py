"""Keep a warehouse copy of X posts and users compliant, end to end.

The pipeline a data team runs on a schedule:

1. ``export_ids`` writes the IDs of the stored posts and users to Parquet (a warehouse export; any size:
   the operators stream it, validate it and split it into several jobs when ``MAX_IDS_PER_JOB`` says so).
2. ``check_posts`` and ``check_users`` run one X batch compliance job each, side by side (the API allows one
   unfinished job per type). They wait **deferred**: no worker slot is held for the minutes to hours a
   job takes.
3. ``posts_to_parquet`` / ``users_to_parquet`` turn the JSONL results into one Parquet table per action
   (``delete``, ``scrub_geo``, ...), with bad lines quarantined and counts reconciled.
4. ``apply_posts`` / ``apply_users`` (``XComplianceApplyOperator``) delete the posts and users that must go
   and null the geo columns of posts whose action is ``scrub_geo``, each table in one transaction, and write
   an audit record beside the tables; ``report`` writes what changed, per reason, to ``report.json``.

The warehouse here is an embedded DuckDB file behind the ``warehouse`` connection (connection type
``duckdb``, host = the file's path; ``pip install "airflow-provider-xcompliance[duckdb]"``), so the example
runs anywhere. ``make demo`` runs it against the bundled X API emulator; point the ``x_default`` connection at
``https://api.x.com`` with your app's bearer token to run it for real.

**Another warehouse**: point ``warehouse`` at PostgreSQL (``postgres`` connection type, IDs loaded with
``COPY``) or any other common.sql SQL connection (IDs loaded in batches); the apply tasks stay the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_xcompliance.operators.apply import XComplianceApplyOperator
from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator

# Seconds between job status checks. The real API allows about 150 status calls per 15 minutes per app, shared
# by every DAG using it, and jobs take minutes to hours: a minute or more is right there. The demo, against
# the emulator, sets a few seconds.
POLL_INTERVAL = float(os.environ.get("XCOMPLIANCE_EXAMPLE_POLL_INTERVAL", "60"))
# IDs per compliance job; None runs one job per type however many IDs there are.
MAX_IDS_PER_JOB: int | None = None

WORKDIR = "{{ params.workdir }}"
# The warehouse: a DuckDB connection (host = the database file), e.g.
# AIRFLOW_CONN_WAREHOUSE='{"conn_type": "duckdb", "host": "/data/warehouse.duckdb"}'
WAREHOUSE_CONN_ID = "warehouse"

with DAG(
    dag_id="x_compliance_example",
    description="Check stored posts and users with X batch compliance jobs; apply the results",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one unfinished compliance job per type per app: runs must not overlap
    tags=["x", "compliance", "example"],
    params={
        "workdir": Param(
            "/tmp/x_compliance_example/run",
            type="string",
            description="Folder (or object-storage URI) for exported IDs, results and tables",
        ),
    },
    doc_md=__doc__,
) as dag:

    @task
    def export_ids(workdir: str) -> dict[str, Any]:
        """Export the IDs to check, and the warehouse's counts before any change."""
        export = Path(workdir) / "export"
        export.mkdir(parents=True, exist_ok=True)
        with _warehouse(read_only=True) as con:
            for table in ("posts", "users"):
                con.execute(f"COPY (SELECT id FROM {table}) TO '{export / table}.parquet' (FORMAT parquet)")
            return {"before": _counts(con)}

    exported = export_ids(WORKDIR)

    # One job per type, side by side: the API runs one unfinished job per type, so posts and users never wait
    # for each other.
    tables = {}
    for table, job_type in (("posts", "tweets"), ("users", "users")):
        check = XComplianceRunJobOperator(
            task_id=f"check_{table}",
            job_type=job_type,
            ids=f"{WORKDIR}/export/{table}.parquet",
            id_column="id",
            destination=f"{WORKDIR}/results/{job_type}/",
            max_ids_per_job=MAX_IDS_PER_JOB,
            poll_interval=POLL_INTERVAL,
            deferrable=True,
        )
        to_parquet = XComplianceResultsToParquetOperator(
            task_id=f"{table}_to_parquet",
            results=check.output,
            destination=f"{WORKDIR}/tables/{job_type}",
            job_type=job_type,
        )
        exported >> check
        tables[table] = to_parquet.output

    # One DuckDB file takes one writer at a time: the users wait for the posts.
    applied = {}
    for table, geo_columns in (("posts", ["geo_lat", "geo_lon"]), ("users", None)):
        applied[table] = XComplianceApplyOperator(
            task_id=f"apply_{table}",
            tables=tables[table],
            conn_id=WAREHOUSE_CONN_ID,
            table=table,
            id_column="id",
            geo_columns=geo_columns,
            count_by_reason=True,  # the report below shows rows per reason (on DuckDB, a second pass)
        )
    applied["posts"] >> applied["users"]

    @task
    def report(
        workdir: str, exported: dict[str, Any], posts: dict[str, Any], users: dict[str, Any]
    ) -> dict[str, Any]:
        """Write what changed, per reason, to ``report.json`` beside the tables, and log it."""
        with _warehouse(read_only=True) as con:
            after = _counts(con)
        changes = {
            "posts_deleted": _rows_by_reason(posts, "delete"),
            "posts_geo_scrubbed": _rows_by_reason(posts, "scrub_geo"),
            "users_deleted": _rows_by_reason(users, "delete"),
        }
        summary = {"before": exported["before"], "after": after, "changes": changes, "workdir": workdir}
        Path(workdir, "report.json").write_text(json.dumps(summary, indent=2))
        for kind, reasons in changes.items():
            print(f"{kind:<22} {sum(reasons.values()):>10,}  {reasons}")
        return summary

    report(WORKDIR, exported, applied["posts"].output, applied["users"].output)


def _counts(con: Any) -> dict[str, int]:
    posts, geo = con.execute("SELECT count(*), count(geo_lat) FROM posts").fetchone()
    (users,) = con.execute("SELECT count(*) FROM users").fetchone()
    return {"posts": posts, "posts_with_geo": geo, "users": users}


def _warehouse(read_only: bool) -> Any:
    """A connection to the warehouse through its Airflow connection (the DuckDB provider's hook)."""
    from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

    return DuckDBHook(duckdb_conn_id=WAREHOUSE_CONN_ID, read_only=read_only).get_conn()


def _rows_by_reason(record: dict[str, Any], operation: str) -> dict[str, int]:
    """Rows the apply step changed per reason for one operation, from its audit record."""
    rows: dict[str, int] = {}
    for action in record["actions"].values():
        if action["operation"] == operation:
            for reason, counts in action["by_reason"].items():
                rows[reason] = rows.get(reason, 0) + counts["rows_changed"]
    return rows

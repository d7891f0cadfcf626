"""Keep a warehouse copy of X posts and users compliant, end to end.

The pipeline a data team runs on a schedule:

1. ``export_ids`` writes the IDs of the stored posts and users to Parquet (a warehouse export; any size:
   the operators stream it, validate it and split it into several jobs when ``MAX_IDS_PER_JOB`` says so).
2. ``check_posts`` and ``check_users`` run one X batch compliance job each, side by side (the API allows one
   unfinished job per type). They wait **deferred**: no worker slot is held for the minutes to hours a
   job takes.
3. ``posts_to_parquet`` / ``users_to_parquet`` turn the JSONL results into one Parquet table per action
   (``delete``, ``scrub_geo``, ...), with bad lines quarantined and counts reconciled.
4. ``apply_to_warehouse`` deletes the posts and users that must go and nulls the geo columns of posts whose
   action is ``scrub_geo``; ``report`` writes what changed, per reason, to ``report.json``.

The warehouse here is an embedded DuckDB file (``pip install "airflow-provider-xcompliance[duckdb]"``), so the
example runs anywhere. ``make demo`` runs it against the bundled X API emulator; point the ``x_default``
connection at ``https://api.x.com`` with your app's bearer token to run it for real.

**A SQL warehouse** (Postgres, Snowflake, Redshift, ... through ``common.sql``) applies the same tables once
they are loaded as staging tables::

    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

    apply = SQLExecuteQueryOperator(
        task_id="apply_to_warehouse",
        conn_id="warehouse",
        sql=[
            "DELETE FROM posts WHERE id IN (SELECT id FROM compliance_posts_delete)",
            "UPDATE posts SET geo_lat = NULL, geo_lon = NULL "
            "WHERE id IN (SELECT id FROM compliance_posts_scrub_geo)",
            "DELETE FROM users WHERE id IN (SELECT id FROM compliance_users_delete)",
        ],
    )

**BigQuery** loads the Parquet directly (``bq load --source_format=PARQUET compliance.posts_delete
gs://lake/compliance/tables/tweets/delete/*.parquet``), and **Snowflake** reads it from a stage
(``COPY INTO compliance_posts_delete FROM @lake/compliance/tables/tweets/delete/
FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE``), followed by the same three
statements.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_xcompliance.operators.compliance import XComplianceRunJobOperator
from airflow_provider_xcompliance.operators.report import XComplianceResultsToParquetOperator

# Seconds between job status checks. The real API allows about 150 status calls per 15 minutes per app, shared
# by every DAG using it, and jobs take minutes to hours: a minute or more is right there. The demo, against
# the emulator, sets a few seconds.
POLL_INTERVAL = float(os.environ.get("XCOMPLIANCE_EXAMPLE_POLL_INTERVAL", "60"))
# IDs per compliance job; None runs one job per type however many IDs there are.
MAX_IDS_PER_JOB: int | None = None

WORKDIR = "{{ params.workdir }}"

with DAG(
    dag_id="x_compliance_example",
    description="Check stored posts and users with X batch compliance jobs; apply the results",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one unfinished compliance job per type per app: runs must not overlap
    tags=["x", "compliance", "example"],
    params={
        "warehouse": Param(
            "/tmp/x_compliance_example/warehouse.duckdb", type="string", description="DuckDB warehouse file"
        ),
        "workdir": Param(
            "/tmp/x_compliance_example/run",
            type="string",
            description="Folder (or object-storage URI) for exported IDs, results and tables",
        ),
    },
    doc_md=__doc__,
) as dag:

    @task
    def export_ids(warehouse: str, workdir: str) -> dict[str, Any]:
        """Export the IDs to check, and the warehouse's counts before any change."""
        import duckdb

        export = Path(workdir) / "export"
        export.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(warehouse, read_only=True) as con:
            for table in ("posts", "users"):
                con.execute(f"COPY (SELECT id FROM {table}) TO '{export / table}.parquet' (FORMAT parquet)")
            return {"before": _counts(con)}

    exported = export_ids("{{ params.warehouse }}", WORKDIR)

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

    @task
    def apply_to_warehouse(warehouse: str, posts: dict[str, Any], users: dict[str, Any]) -> dict[str, Any]:
        """Delete what must go and scrub geo data, in one transaction; count the rows changed per reason."""
        import duckdb

        changes: dict[str, dict[str, int]] = {}
        with duckdb.connect(warehouse) as con:
            con.execute("BEGIN TRANSACTION")
            changes["posts_deleted"] = _apply(
                con, "posts", "DELETE FROM posts", posts["tables"].get("delete")
            )
            changes["posts_geo_scrubbed"] = _apply(
                con,
                "posts",
                "UPDATE posts SET geo_lat = NULL, geo_lon = NULL",
                posts["tables"].get("scrub_geo"),
            )
            changes["users_deleted"] = _apply(
                con, "users", "DELETE FROM users", users["tables"].get("delete")
            )
            con.execute("COMMIT")
        return changes

    @task
    def report(
        warehouse: str, workdir: str, exported: dict[str, Any], changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Write what changed to ``report.json`` beside the tables, and log it."""
        import duckdb

        with duckdb.connect(warehouse, read_only=True) as con:
            after = _counts(con)
        summary = {"before": exported["before"], "after": after, "changes": changes, "workdir": workdir}
        Path(workdir, "report.json").write_text(json.dumps(summary, indent=2))
        for kind, reasons in changes.items():
            print(f"{kind:<22} {sum(reasons.values()):>10,}  {reasons}")
        return summary

    changes = apply_to_warehouse("{{ params.warehouse }}", tables["posts"], tables["users"])
    report("{{ params.warehouse }}", WORKDIR, exported, changes)


def _counts(con: Any) -> dict[str, int]:
    posts, geo = con.execute("SELECT count(*), count(geo_lat) FROM posts").fetchone()
    (users,) = con.execute("SELECT count(*) FROM users").fetchone()
    return {"posts": posts, "posts_with_geo": geo, "users": users}


def _apply(con: Any, target: str, statement: str, table: str | None) -> dict[str, int]:
    """Run ``statement`` on ``target`` rows whose id is in the Parquet ``table``; rows changed per reason."""
    if table is None:
        return {}
    source = f"read_parquet('{table}/*.parquet')"
    per_reason = dict(
        con.execute(
            f"SELECT reason, count(*) FROM {target} JOIN {source} USING (id) GROUP BY reason ORDER BY 1"
        ).fetchall()
    )
    con.execute(f"{statement} WHERE id IN (SELECT id FROM {source})")
    return {str(reason): int(n) for reason, n in per_reason.items()}

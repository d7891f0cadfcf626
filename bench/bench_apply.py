"""Benchmark: XComplianceApplyOperator against hand-written SQL, 1M IDs to delete from a 10M-row table.

Targets (issue 11): PostgreSQL within 1.5x of a hand-written ``COPY`` + ``DELETE ... USING`` in the same
run; DuckDB within 1.2x of a hand-written ``DELETE ... WHERE id IN (SELECT id FROM read_parquet(...))``;
peak RSS of the operator's process under 300 MB.

    .venv/bin/python bench/bench_apply.py                    # 10M rows, 1M IDs, 3 runs of each kind
    .venv/bin/python bench/bench_apply.py --rows 1000000 --ids 100000 --runs 1
    .venv/bin/python bench/bench_apply.py --kinds duckdb-operator,duckdb-sql --ids 4000000 --order random

The DuckDB table is stored in ID order, as a table loaded over time is (X's IDs grow with time), so each of
the operator's statements (one per range of IDs) skips the blocks outside its range; ``--order random``
stores it in random order, where each statement reads the whole table.

The result tables are made by ``results_to_parquet`` from JSON Lines (four delete reasons). Each measured
run is a fresh process on a fresh copy of the warehouse (a file copy for DuckDB, a database created from a
template for PostgreSQL, which runs from the ``pgserver`` wheel on a unix socket); only the apply is timed:
the operator's ``execute`` (reading the summary, staging, counting per reason, changing, committing, writing
the audit record) against the hand-written statements and their commit. Kinds alternate within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATA, LoadLog, median, memory_mib, run_child, write_report

HERE = Path(__file__).resolve()
REASONS = ("deleted", "suspended", "protected", "deactivated")
BASE = 1_500_000_000_000_000_000
MIB = 1 << 20
KINDS = ("duckdb-operator", "duckdb-sql", "postgres-operator", "postgres-sql")
# Not in the default run: the operator with count_by_reason=True (exact counts per reason, a second pass).
EXTRA_KINDS = ("duckdb-by-reason-operator",)


def make_tables(folder: Path, rows: int, ids: int) -> Path:
    """Result tables for ``ids`` IDs spread over a ``rows``-row table (every ``rows // ids``-th post)."""
    from airflow_provider_xcompliance.results import results_to_parquet

    tables = folder / "tables"
    if (tables / "_summary.json").exists():
        return tables
    source = folder / "results-1500000000000000001.jsonl"
    step = rows // ids
    with source.open("w") as out:
        for n in range(ids):
            post = BASE + n * step * 7
            out.write(
                f'{{"id":"{post}","action":"delete","created_at":"2020-01-01T00:00:00.000Z",'
                f'"redacted_at":"2021-01-01T00:00:00.000Z","reason":"{REASONS[n % 4]}"}}\n'
            )
    results_to_parquet(source, tables, job_type="tweets")
    return tables


def seed_duckdb(path: Path, rows: int, order: str) -> Path:
    """The posts in ID order (as loaded over time: X's IDs grow with time), or in random order."""
    import duckdb

    if not path.exists():
        with duckdb.connect(str(path)) as con:
            con.execute(
                f"CREATE TABLE posts AS SELECT ({BASE} + i * 7)::BIGINT AS id, 'post number ' || i AS text, "
                "CASE WHEN i % 3 = 0 THEN 40.5 END AS geo_lat, "
                "CASE WHEN i % 3 = 0 THEN -70.5 END AS geo_lon, "
                f"TIMESTAMP '2020-01-01' + to_seconds(i) AS created_at FROM range({rows}) t(i)"
                + (" ORDER BY hash(i)" if order == "random" else "")
            )
    return path


def seed_postgres(server: dict[str, str], rows: int) -> str:
    """A template database holding ``posts`` (primary key on ``id``); returns its name."""
    import psycopg

    name = f"bench_template_{rows}"
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as con:
        if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return name
        con.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(**server, dbname=name, autocommit=True) as con:
        con.execute(
            "CREATE TABLE posts (id bigint PRIMARY KEY, text text, geo_lat float8, geo_lon float8, "
            "created_at timestamp)"
        )
        con.execute(
            f"INSERT INTO posts SELECT {BASE} + i * 7, 'post number ' || i, "
            "CASE WHEN i % 3 = 0 THEN 40.5 END, CASE WHEN i % 3 = 0 THEN -70.5 END, "
            "TIMESTAMP '2020-01-01' + i * INTERVAL '1 second' "
            f"FROM generate_series(0, {rows - 1}) AS t(i)"
        )
        con.execute("VACUUM ANALYZE posts")
    return name


# --- the measured children --------------------------------------------------------------------------------


def child(kind: str, target: str, tables: str, memory_limit: str, ids_per_statement: str) -> dict[str, Any]:
    """One measured run; what its path needs (and nothing more) is imported before the clock starts."""
    if kind.startswith("duckdb") and kind.endswith("operator"):
        from airflow.providers.duckdb.hooks.duckdb import DuckDBHook  # noqa: F401
    elif kind == "postgres-operator":
        from airflow.providers.postgres.hooks.postgres import PostgresHook  # noqa: F401
    elif kind == "duckdb-sql":
        import duckdb  # noqa: F401
    else:
        import psycopg  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    if kind.endswith("operator"):
        # A task process is forked from its supervisor and runs the task runner: both are loaded already.
        import airflow.sdk.execution_time.supervisor
        import airflow.sdk.execution_time.task_runner  # noqa: F401

        from airflow_provider_xcompliance.operators.apply import XComplianceApplyOperator

    before = memory_mib("VmRSS")
    cpu = time.process_time()
    start = time.perf_counter()
    if kind.endswith("operator"):
        operator = XComplianceApplyOperator(
            task_id="apply",
            tables=tables,
            conn_id="bench",
            table="posts",
            count_by_reason="by-reason" in kind,
            **({"ids_per_statement": int(ids_per_statement)} if ids_per_statement else {}),
        )
        record = operator.execute(context={"outlet_events": {}})  # type: ignore[arg-type]
        deleted = record["rows_deleted"]
    elif kind == "duckdb-sql":
        deleted = duckdb_sql(target, tables, memory_limit)
    else:
        deleted = postgres_sql(json.loads(target), tables)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "deleted": deleted,
        "rss_before": before,
        "rss_peak": memory_mib("VmHWM"),
    }


def duckdb_sql(path: str, tables: str, memory_limit: str) -> int:
    import duckdb

    with duckdb.connect(path, config={"memory_limit": memory_limit} if memory_limit else {}) as con:
        sql = f"DELETE FROM posts WHERE id IN (SELECT id FROM read_parquet('{tables}/delete/*.parquet'))"
        (deleted,) = con.execute(sql).fetchone()  # type: ignore[misc]
    return int(deleted)


def postgres_sql(db: dict[str, str], tables: str) -> int:
    """The hand-written way: Parquet ids as CSV into ``COPY``, then ``DELETE ... USING``, commit."""
    import io

    import psycopg
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with psycopg.connect(**db) as con, con.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ids (id bigint) ON COMMIT DROP")
        with cur.copy("COPY ids FROM STDIN (FORMAT csv)") as copy:
            for part in sorted(Path(tables, "delete").glob("*.parquet")):
                for batch in pq.ParquetFile(part).iter_batches(columns=["id"]):
                    buffer = io.BytesIO()
                    pcsv.write_csv(batch, buffer, pcsv.WriteOptions(include_header=False))
                    copy.write(buffer.getvalue())
        cur.execute("DELETE FROM posts USING ids WHERE posts.id = ids.id")
        deleted = cur.rowcount
        con.commit()
    return int(deleted)


# --- the parent --------------------------------------------------------------------------------------------


def run_kind(kind: str, work: Path, setup: dict[str, Any]) -> dict[str, Any]:
    """A fresh warehouse copy, then one measured child process."""
    env = {"AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    if kind.startswith("duckdb"):
        target = work / "run.duckdb"
        shutil.copyfile(setup["duckdb"], target)
        os.sync()
        limit = setup["memory_limit"]
        extra = {"memory_limit": limit} if limit else {}
        env["AIRFLOW_CONN_BENCH"] = json.dumps({"conn_type": "duckdb", "host": str(target), "extra": extra})
        return run_child(HERE, [kind, str(target), setup["tables"], limit, setup["ids_per_statement"]], env)
    import psycopg

    server = setup["postgres"]
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS bench_run")
        con.execute(f"CREATE DATABASE bench_run TEMPLATE {setup['template']}")
    con = psycopg.connect(**server, dbname="bench_run", autocommit=True)
    con.execute("CHECKPOINT")  # the copy's writes are flushed before the run, not during it
    con.close()
    db = {**server, "dbname": "bench_run"}
    conn = {"conn_type": "postgres", "host": server["host"], "port": int(server["port"]), "login": "postgres"}
    env["AIRFLOW_CONN_BENCH"] = json.dumps({**conn, "schema": "bench_run"})
    return run_child(HERE, [kind, json.dumps(db), setup["tables"], "", ""], env)


def report_table(runs: dict[str, list[dict[str, Any]]], rows: int, ids: int) -> tuple[str, dict[str, float]]:
    """Medians of wall and CPU seconds (the CPU of the measured process: steadier on a shared machine)."""
    lines = [
        f"{ids:,} IDs to delete from a {rows:,}-row table, {len(next(iter(runs.values())))} runs each "
        "(RSS in MiB)",
        f"{'kind':<28}{'median s':>10}{'min s':>8}{'max s':>8}{'ratio':>7}{'CPU s':>8}{'CPU ratio':>11}"
        f"{'RSS before':>12}{'peak RSS':>10}",
    ]
    medians = {kind: median(r["seconds"] for r in results) for kind, results in runs.items()}
    cpus = {kind: median(r["cpu"] for r in results) for kind, results in runs.items()}
    for kind, results in runs.items():
        base = kind.split("-")[0] + "-sql"
        seconds = [r["seconds"] for r in results]
        wall_ratio = medians[kind] / medians[base] if base in medians else float("nan")
        cpu_ratio = cpus[kind] / cpus[base] if base in cpus else float("nan")
        lines.append(
            f"{kind:<28}{medians[kind]:>10.2f}{min(seconds):>8.2f}{max(seconds):>8.2f}{wall_ratio:>7.2f}"
            f"{cpus[kind]:>8.2f}{cpu_ratio:>11.2f}{median(r['rss_before'] for r in results):>12.0f}"
            f"{max(r['rss_peak'] for r in results):>10.0f}"
        )
    return "\n".join(lines), medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS + EXTRA_KINDS)}"
    )
    parser.add_argument("--duckdb-memory-limit", default="", help="DuckDB memory_limit for both DuckDB kinds")
    parser.add_argument("--ids-per-statement", default="", help="the operator's, if not its default (DuckDB)")
    parser.add_argument(
        "--order", choices=("id", "random"), default="id", help="the DuckDB table's row order (id: as loaded)"
    )
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    import pgserver

    data = DATA / f"apply-{args.rows}-{args.ids}"
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="xcompliance-bench-apply-"))
    pgdata = Path(tempfile.mkdtemp(prefix="xcompliance-bench-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    info = server.get_postmaster_info()
    postgres = {"host": str(info.socket_dir), "port": str(info.port), "user": "postgres"}
    try:
        setup = {
            "tables": str(make_tables(data, args.rows, args.ids)),
            "duckdb": seed_duckdb(data / f"warehouse-{args.order}.duckdb", args.rows, args.order),
            "postgres": postgres,
            "template": seed_postgres(postgres, args.rows) if "postgres-sql" in kinds else "",
            "memory_limit": args.duckdb_memory_limit,
            "ids_per_statement": args.ids_per_statement,
        }
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        with LoadLog() as load:
            for _ in range(args.runs):
                for kind in kinds:
                    runs[kind].append(run_kind(kind, work, setup))
                    print(kind, runs[kind][-1], flush=True)
        table, medians = report_table(runs, args.rows, args.ids)
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(table)
    notes = notes_for(runs, medians)
    command = " ".join([".venv/bin/python", *sys.argv])
    name = f"apply-{args.rows}-{args.ids}"
    if kinds != list(KINDS) or args.duckdb_memory_limit:
        warehouses = "-".join(sorted({kind.split("-")[0] for kind in kinds}))
        name += f"-{warehouses}-{args.duckdb_memory_limit or 'default'}"
    if any("by-reason" in kind for kind in kinds):
        name += "-by-reason"
    if args.ids_per_statement:
        name += f"-{args.ids_per_statement}-per-statement"
    if args.order != "id":
        name += f"-{args.order}-order"
    path = write_report(name, command, table, notes, {"runs": runs}, load)
    print(f"report: {path}")


def notes_for(runs: dict[str, list[dict[str, Any]]], medians: dict[str, float]) -> list[str]:
    from importlib import metadata

    targets = {"duckdb": ("the hand-written delete", 1.2), "postgres": ("COPY + DELETE ... USING", 1.5)}
    notes = [f"- duckdb {metadata.version('duckdb')}, psycopg {metadata.version('psycopg')}"]
    for warehouse, (baseline, bound) in targets.items():
        if f"{warehouse}-operator" in medians and f"{warehouse}-sql" in medians:
            ratio = medians[f"{warehouse}-operator"] / medians[f"{warehouse}-sql"]
            verdict = "met" if ratio <= bound else "missed"
            notes.append(f"- {warehouse}: operator within {bound}x of {baseline}: {verdict}, {ratio:.2f}x")
        if f"{warehouse}-operator" in runs:
            peak = max(r["rss_peak"] for r in runs[f"{warehouse}-operator"])
            verdict = "met" if peak * MIB < 300e6 else "missed"
            notes.append(
                f"- {warehouse}: operator peak RSS under 300 MB: {verdict}, {peak * MIB / 1e6:.0f} MB "
                f"({peak:.0f} MiB)"
            )
    deleted = {kind: sorted({r["deleted"] for r in results}) for kind, results in runs.items()}
    return [
        *notes,
        f"- rows deleted per kind (every run): {deleted}",
        "- the operator also writes the audit record (PostgreSQL: rows and IDs per reason; DuckDB: rows per "
        "action, IDs per reason, or per reason too with count_by_reason); the hand-written statements count "
        "nothing",
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:7])))
    else:
        main()

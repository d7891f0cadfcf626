"""Result tables applied to real warehouses: DuckDB files and a real PostgreSQL server (see conftest.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from airflow_provider_xcompliance.exceptions import ResultsIncompleteError, UnmappedActionError
from airflow_provider_xcompliance.sql_names import Quoting
from airflow_provider_xcompliance.warehouse import (
    ApplyRecord,
    apply_tables,
    format_record,
    plan_changes,
    read_result_tables,
)
from airflow_provider_xcompliance.warehouse_sql import DuckDBEngine, GenericEngine, PostgresEngine
from tests.unit.result_tables import write_tables

POSTS = 3000
DELETED = range(1, 301)  # reason "deleted"
SUSPENDED = range(301, 401)  # reason "suspended"
SCRUBBED = range(999, 1500, 3)  # geo scrubs of posts that carry geo data (id % 3 == 0)
ABSENT = range(900_001, 900_011)  # deletes of posts the warehouse does not hold
GEO = ["geo_lat", "geo_lon"]
# DuckDB engines by kind: rows counted per action (its default) or per reason; the small tables here are one
# range of IDs unless a few IDs per statement split them into many.
DUCKDB = {
    "duckdb": DuckDBEngine(),
    "duckdb-ranges": DuckDBEngine(ids_per_statement=16),
    "duckdb-by-reason": DuckDBEngine(count_by_reason=True),
    "duckdb-by-reason-ranges": DuckDBEngine(count_by_reason=True, ids_per_statement=16),
}


@dataclasses.dataclass
class Warehouse:
    """A real database with a ``posts`` table, and how to reach it."""

    kind: str
    connect: Callable[[], Any]
    engine: Any
    run: Callable[[str], None]
    query: Callable[[str], list[tuple[Any, ...]]]

    def ids(self, where: str = "true", table: str = "posts", id_column: str = "id") -> set[int]:
        return {row[0] for row in self.query(f"SELECT {id_column} FROM {table} WHERE {where}")}

    def seed(self, table: str = "posts", id_column: str = "id", rows: int = POSTS) -> None:
        self.run(
            f"CREATE TABLE {table} ({id_column} BIGINT PRIMARY KEY, text VARCHAR, geo_lat DOUBLE PRECISION, "
            "geo_lon DOUBLE PRECISION, created_at TIMESTAMP)"
        )
        self.seed_rows(table, rows)

    def seed_rows(self, table: str = "posts", rows: int = POSTS) -> None:
        """Posts 1..rows; every third has geo data; created one minute apart from 2020-01-01."""
        self.run(
            f"INSERT INTO {table} SELECT i, 'post ' || i, CASE WHEN i % 3 = 0 THEN 40.5 END, "
            "CASE WHEN i % 3 = 0 THEN -70.5 END, TIMESTAMP '2020-01-01' + i * INTERVAL '1 minute' "
            f"FROM generate_series(1, {rows}) AS t(i)"
        )


def _duckdb(path: Path, engine: Any) -> Warehouse:
    def run(sql: str) -> None:
        with duckdb.connect(str(path)) as con:
            con.execute(sql)

    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path)) as con:
            return con.execute(sql).fetchall()

    return Warehouse("duckdb", lambda: duckdb.connect(str(path)), engine, run, query)


def _postgres(db: dict[str, str], engine: Any) -> Warehouse:
    import psycopg

    def run(sql: str) -> None:
        with psycopg.connect(**db, autocommit=True) as con:
            con.execute(sql)

    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(**db) as con:
            return con.execute(sql).fetchall()

    return Warehouse("postgres", lambda: psycopg.connect(**db), engine, run, query)


@pytest.fixture(params=[*DUCKDB, "postgres", "generic"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A warehouse; DuckDB counts per action unless asked per reason, the others per reason."""
    kind = request.param
    if kind in ("postgres", "generic"):
        db = request.getfixturevalue("postgres_db")
        engine = GenericEngine(placeholder="%s") if kind == "generic" else PostgresEngine()
        yield _postgres(db, engine)
    else:
        yield _duckdb(tmp_path / "warehouse.duckdb", DUCKDB[kind])


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    return write_tables(
        tmp_path,
        {
            ("delete", "deleted"): [*DELETED, *ABSENT],
            ("delete", "suspended"): SUSPENDED,
            ("scrub_geo", "scrub_geo"): SCRUBBED,
        },
    )


def apply(
    warehouse: Warehouse,
    tables: Path,
    *,
    table: str = "posts",
    id_column: str = "id",
    geo_columns: list[str] | None = GEO,
    created_at_column: str | None = None,
    dry_run: bool = False,
    actions: dict[str, str] | None = None,
) -> ApplyRecord:
    connection = warehouse.connect()
    try:
        return apply_tables(
            connection,
            warehouse.engine,
            read_result_tables(str(tables)),
            table=table,
            quoting=Quoting(),
            id_column=id_column,
            geo_columns=geo_columns,
            created_at_column=created_at_column,
            actions=actions,
            dry_run=dry_run,
        )
    finally:
        connection.close()


def test_deletes_rows_and_nulls_geo_columns_and_counts_each_reason(
    warehouse: Warehouse, tables: Path
) -> None:
    warehouse.seed()
    everything, geo = warehouse.ids(), warehouse.ids("geo_lat IS NOT NULL")

    record = apply(warehouse, tables)

    gone = set(DELETED) | set(SUSPENDED)
    assert warehouse.ids() == everything - gone
    assert warehouse.ids("geo_lat IS NOT NULL OR geo_lon IS NOT NULL") == geo - gone - set(SCRUBBED)
    assert len(warehouse.ids("text IS NOT NULL AND id IN (999, 1002)")) == 2  # a scrub keeps the row
    actions = record.to_dict()["actions"]
    assert actions["scrub_geo"]["operation"] == "scrub_geo"
    assert actions["scrub_geo"]["rows_changed"] == len(SCRUBBED)
    assert actions["delete"]["rows_changed"] == len(gone)
    counts = {"rows_deleted": len(gone), "rows_scrubbed": len(SCRUBBED), "changed": True, "dry_run": False}
    if isinstance(warehouse.engine, DuckDBEngine) and not warehouse.engine.count_by_reason:
        # Rows per action, IDs per reason: nothing estimated.
        assert actions["delete"] == {
            "operation": "delete",
            "counted": "per_action",
            "ids": len(DELETED) + len(ABSENT) + len(SUSPENDED),
            "rows_changed": len(gone),
            "by_reason": {
                "deleted": {"ids": len(DELETED) + len(ABSENT)},
                "suspended": {"ids": len(SUSPENDED)},
            },
        }
        # One reason in the table: its rows are the action's rows.
        assert actions["scrub_geo"]["by_reason"] == {
            "scrub_geo": {"ids": len(SCRUBBED), "rows_changed": len(SCRUBBED)}
        }
        assert record.counts() == {**counts, "ids_unchanged": None}
        assert "rows counted per action" in format_record(record)
        return
    assert actions["delete"]["counted"] == "per_reason"
    assert actions["delete"]["by_reason"]["deleted"] == {
        "ids": len(DELETED) + len(ABSENT),
        "ids_changed": len(DELETED),
        "rows_changed": len(DELETED),
        "ids_unchanged": len(ABSENT),
    }
    assert actions["delete"]["by_reason"]["suspended"]["rows_changed"] == len(SUSPENDED)
    assert record.counts() == {**counts, "ids_unchanged": len(ABSENT)}


def test_without_geo_columns_geo_scrubs_delete_the_row(warehouse: Warehouse, tables: Path) -> None:
    warehouse.seed()
    everything = warehouse.ids()

    record = apply(warehouse, tables, geo_columns=None)

    assert warehouse.ids() == everything - set(DELETED) - set(SUSPENDED) - set(SCRUBBED)
    assert record.to_dict()["actions"]["scrub_geo"]["operation"] == "delete"
    assert record.counts()["rows_deleted"] == len(DELETED) + len(SUSPENDED) + len(SCRUBBED)
    assert record.counts()["rows_scrubbed"] == 0


def test_dry_run_counts_what_would_change_and_changes_nothing(warehouse: Warehouse, tables: Path) -> None:
    warehouse.seed()
    before = warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id")

    record = apply(warehouse, tables, dry_run=True)

    assert warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id") == before
    assert record.counts() == {
        "rows_deleted": len(DELETED) + len(SUSPENDED),
        "rows_scrubbed": len(SCRUBBED),
        "ids_unchanged": len(ABSENT),
        "changed": True,
        "dry_run": True,
    }
    assert format_record(record).startswith("DRY RUN")


def test_a_rerun_changes_nothing_and_says_so(warehouse: Warehouse, tables: Path) -> None:
    warehouse.seed()
    apply(warehouse, tables)
    after_first = warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id")

    record = apply(warehouse, tables)

    assert warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id") == after_first
    counts = record.counts()
    assert (counts["rows_deleted"], counts["rows_scrubbed"], counts["changed"]) == (0, 0, False)
    assert counts["ids_unchanged"] == len(DELETED) + len(SUSPENDED) + len(ABSENT) + len(SCRUBBED)
    assert "nothing to change" in format_record(record)


def test_a_failure_in_the_middle_rolls_everything_back(warehouse: Warehouse, tables: Path) -> None:
    warehouse.seed()
    before = warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id")

    # The deletes run first and succeed; the scrub then fails on a column the table does not have.
    with pytest.raises(Exception, match=r"(?i)no_such_column"):
        apply(warehouse, tables, geo_columns=["geo_lat", "no_such_column"])

    assert warehouse.query("SELECT id, geo_lat, geo_lon FROM posts ORDER BY id") == before


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_quoted_schema_table_and_column_names(warehouse: Warehouse, tables: Path) -> None:
    warehouse.run('CREATE SCHEMA "x-data"')
    warehouse.seed(table='"x-data"."Posts Table"', id_column='"Post ID"')

    record = apply(warehouse, tables, table='"x-data"."Posts Table"', id_column='"Post ID"')

    remaining = warehouse.ids(table='"x-data"."Posts Table"', id_column='"Post ID"')
    assert remaining.isdisjoint(DELETED)
    assert len(remaining) == POSTS - len(DELETED) - len(SUSPENDED)
    assert record.counts()["rows_scrubbed"] == len(SCRUBBED)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_names_that_could_inject_sql_are_refused_before_anything_runs(
    warehouse: Warehouse, tables: Path
) -> None:
    warehouse.seed()
    for table in ("posts; DROP TABLE posts", 'posts"; DROP TABLE posts; --', "posts WHERE 1=1"):
        with pytest.raises(ValueError, match="Invalid table name"):
            apply(warehouse, tables, table=table)
    with pytest.raises(ValueError, match="Invalid column name"):
        apply(warehouse, tables, id_column="id) OR (1=1")
    assert len(warehouse.ids()) == POSTS


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_created_at_bounds_each_statement_and_still_finds_every_row(
    warehouse: Warehouse, tables: Path
) -> None:
    warehouse.seed()

    record = apply(warehouse, tables, created_at_column="created_at")

    assert warehouse.ids().isdisjoint([*DELETED, *SUSPENDED])
    assert record.counts()["rows_deleted"] == len(DELETED) + len(SUSPENDED)
    assert record.counts()["rows_scrubbed"] == len(SCRUBBED)


@pytest.mark.parametrize("warehouse", ["duckdb-by-reason", "postgres"], indirect=True)
def test_rows_without_a_reason_are_applied_and_counted(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.seed()
    tables = write_tables(tmp_path, {("delete", None): [1, 2], ("delete", "deleted"): [3]})

    record = apply(warehouse, tables)

    assert warehouse.ids().isdisjoint([1, 2, 3])
    by_reason = record.to_dict()["actions"]["delete"]["by_reason"]
    assert (by_reason["(none)"]["rows_changed"], by_reason["deleted"]["rows_changed"]) == (2, 1)


def test_tables_without_their_summary_are_refused(tmp_path: Path, tables: Path) -> None:
    (tables / "_summary.json").unlink()

    with pytest.raises(ResultsIncompleteError, match=r"no _summary\.json"):
        read_result_tables(str(tables))


def test_an_unknown_action_is_refused_unless_mapped(tmp_path: Path) -> None:
    tables = write_tables(tmp_path, {("delete", "deleted"): [1, 2], ("bounced", "bounced"): [3]})
    results = read_result_tables(str(tables))

    with pytest.raises(UnmappedActionError, match=r"'bounced'.*actions=\{'bounced': 'delete'\}"):
        plan_changes(results)
    plan = plan_changes(results, actions={"bounced": "delete"})
    assert [(table.action, table.operation, table.ids) for table in plan] == [
        ("bounced", "delete", 1),
        ("delete", "delete", 2),
    ]
    with pytest.raises(ValueError, match="unknown operations"):
        plan_changes(results, actions={"bounced": "truncate"})


def test_a_partitioned_postgres_table_is_pruned_by_created_at(
    postgres_db: dict[str, str], tables: Path
) -> None:
    import psycopg

    warehouse = _postgres(postgres_db, PostgresEngine())
    warehouse.run(
        "CREATE TABLE posts (id BIGINT, text VARCHAR, geo_lat DOUBLE PRECISION, geo_lon DOUBLE PRECISION, "
        "created_at TIMESTAMP NOT NULL) PARTITION BY RANGE (created_at)"
    )
    for year in (2019, 2020, 2021, 2022):
        warehouse.run(
            f"CREATE TABLE posts_{year} PARTITION OF posts "
            f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
        )
    warehouse.seed_rows()
    warehouse.run(
        # The same IDs in another year: outside the results' created_at range.
        "INSERT INTO posts SELECT i, 'old', NULL, NULL, TIMESTAMP '2022-03-01' + i * INTERVAL '1 second' "
        "FROM generate_series(1, 1000) AS t(i)"
    )

    record = apply(warehouse, tables, created_at_column="created_at")

    assert record.counts()["rows_deleted"] == len(DELETED) + len(SUSPENDED)
    with psycopg.connect(**postgres_db) as con:
        scans = dict(
            con.execute(
                "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                "WHERE relname LIKE 'posts_%'"
            ).fetchall()
        )
    # The results' created_at run from 2020-01-01 (a day's margin reaches 2019) to 2021 (the absent IDs).
    assert min(scans["posts_2019"], scans["posts_2020"], scans["posts_2021"]) > 0
    assert scans["posts_2022"] == 0
    assert len(warehouse.ids("created_at >= '2022-01-01'")) == 1000  # same IDs, other partition: untouched


@pytest.mark.slow
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_a_million_ids(warehouse: Warehouse, tmp_path: Path) -> None:
    ids = range(1, 1_000_001)
    tables = write_tables(tmp_path, {("delete", "deleted"): ids})
    warehouse.seed(rows=1_200_000)

    record = apply(warehouse, tables)

    assert record.counts()["rows_deleted"] == 1_000_000
    assert warehouse.query("SELECT count(*), min(id) FROM posts") == [(200_000, 1_000_001)]


def test_postgres_copies_the_ids_through_psycopg2_too(postgres_db: dict[str, str], tables: Path) -> None:
    import psycopg2

    warehouse = _postgres(postgres_db, PostgresEngine())
    warehouse.seed()
    warehouse.connect = lambda: psycopg2.connect(**postgres_db)

    record = apply(warehouse, tables)

    assert record.counts()["rows_deleted"] == len(DELETED) + len(SUSPENDED)
    assert warehouse.ids().isdisjoint([*DELETED, *SUSPENDED])

"""DuckDB's ranges of IDs: every ID in exactly one statement, whatever the IDs' type or the sample."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_xcompliance.sql_names import Quoting
from airflow_provider_xcompliance.warehouse import apply_tables, read_result_tables
from airflow_provider_xcompliance.warehouse_sql import DuckDBEngine, IdRange, id_ranges
from tests.unit.result_tables import write_tables


def _parquet(path: Path, ids: list[int] | list[str]) -> str:
    pq.write_table(pa.table({"id": ids}), path)
    return f"read_parquet('{path}')"


@pytest.mark.parametrize("count", [2, 7, 50])
@pytest.mark.parametrize("kind", ["int64", "string"])
def test_the_ranges_hold_every_id_once_and_about_equally(tmp_path: Path, count: int, kind: str) -> None:
    numbers = [1_500_000_000_000_000_000 + n * 7919 for n in range(20_000)]
    ids = [str(n) for n in numbers] if kind == "string" else numbers
    con = duckdb.connect()
    parquet = _parquet(tmp_path / "ids.parquet", ids)

    ranges = id_ranges(con, parquet, count)

    assert len(ranges) == count
    assert ranges[0].low is None
    assert ranges[-1].high is None
    sizes = [
        con.execute(f"SELECT count(*) FROM {parquet} WHERE true{bounds.predicate('id')}").fetchone()[0]  # type: ignore[index]
        for bounds in ranges
    ]
    assert sum(sizes) == len(ids)  # the ranges are disjoint and cover every ID
    assert max(sizes) < 2 * len(ids) / count


def test_one_range_is_unbounded_and_duplicate_bounds_collapse(tmp_path: Path) -> None:
    con = duckdb.connect()
    assert id_ranges(con, "unused", 1) == [IdRange()]
    same = _parquet(tmp_path / "same.parquet", [42] * 1000 + [43])

    ranges = id_ranges(con, same, 10)

    assert ranges == [IdRange(None, 42), IdRange(42, None)]


def test_a_bound_is_a_typed_literal_that_quotes_strings() -> None:
    assert IdRange(5, 9).predicate("t.id") == " AND t.id >= 5 AND t.id < 9"
    assert IdRange("it's", None).predicate("id") == " AND id >= 'it''s'"
    with pytest.raises(TypeError, match="integers or strings"):
        IdRange(1.5).predicate("id")  # type: ignore[arg-type]


def test_text_ids_split_into_ranges_delete_exactly_their_rows(tmp_path: Path) -> None:
    # As text, "10" sorts before "9": the ranges follow the warehouse's order, not the numbers'.
    doomed = range(1, 2000, 3)
    tables = write_tables(tmp_path, {("delete", "deleted"): doomed}, id_type="string")
    path = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE posts AS SELECT i::VARCHAR AS id FROM range(1, 3001) t(i)")

    with duckdb.connect(path) as con:
        record = apply_tables(
            con,
            DuckDBEngine(ids_per_statement=25),
            read_result_tables(str(tables)),
            table="posts",
            quoting=Quoting(),
        )
        left = {int(row[0]) for row in con.execute("SELECT id FROM posts").fetchall()}

    assert record.counts()["rows_deleted"] == len(doomed)
    assert left == set(range(1, 3001)) - set(doomed)


@pytest.mark.parametrize(
    ("id_type", "column", "advice"), [("string", "BIGINT", "int64"), ("int64", "VARCHAR", "string")]
)
def test_ids_and_a_column_that_order_otherwise_are_refused(
    tmp_path: Path, id_type: str, column: str, advice: str
) -> None:
    tables = write_tables(tmp_path, {("delete", "deleted"): [1, 2]}, id_type=id_type)  # type: ignore[arg-type]
    path = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(path) as con:
        con.execute(f"CREATE TABLE posts AS SELECT i::{column} AS id FROM range(1, 4) t(i)")
        with pytest.raises(
            TypeError, match=f"posts.id is {column} .* id_type='{advice}'. Nothing was applied"
        ):
            apply_tables(
                con, DuckDBEngine(), read_result_tables(str(tables)), table="posts", quoting=Quoting()
            )
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (3,)


def test_a_statement_needs_at_least_one_id() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DuckDBEngine(ids_per_statement=0)

"""The SQL of :func:`warehouse.apply_changes`, per warehouse family.

* :class:`DuckDBEngine` reads the Parquet parts in the statements themselves (``read_parquet``; parts in
  object storage are copied to local files first) and changes each action's rows with
  ``DELETE``/``UPDATE ... WHERE id IN (SELECT id FROM read_parquet(...))``, one statement per range of about
  ``ids_per_statement`` IDs, counting the rows it changed. Counting per reason as well takes a second pass
  (the join carrying each ID's reason; ``RETURNING`` fetches every column of every changed row), so it is
  asked for with ``count_by_reason``: the rows are then found once into a temporary table of row ids with
  their reasons, counted, and changed by row id. A dry run counts per reason: it is one pass.
* :class:`PostgresEngine` loads the IDs with ``COPY`` into a temporary table and changes rows with a join in
  one statement whose ``RETURNING`` clause gives the counts per reason (a data-modifying CTE).
* :class:`GenericEngine`, for any other DB-API warehouse: the IDs go into a temporary table in batches
  (``executemany``), the rows are counted with a join, then changed with ``IN (SELECT ...)``.

Memory stays flat whatever the number of IDs: the PostgreSQL and generic engines stream the Parquet parts a
batch at a time, and DuckDB's join holds one range of IDs at a time.
Names reaching the SQL come from :class:`warehouse.Target` (validated and quoted); values are bound
parameters or typed literals built here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_xcompliance import paths, storage
from airflow_provider_xcompliance.warehouse import NULL_REASON, ActionTable, Counts, Engine, Target

STAGE = "xcompliance_ids"
HITS = "xcompliance_hits"
BATCH_ROWS = 65_536
IDS_PER_STATEMENT = 250_000

if TYPE_CHECKING:
    import pyarrow as pa


def engine_for(
    conn_type: str | None,
    *,
    placeholder: str = "%s",
    count_by_reason: bool = False,
    ids_per_statement: int = IDS_PER_STATEMENT,
) -> Engine:
    """The engine for an Airflow connection type: DuckDB and PostgreSQL first-class, the rest generic.

    The other options matter to DuckDB only (see :class:`DuckDBEngine`): the other warehouses count per
    reason at no extra pass, and their server holds the IDs.
    """
    if conn_type == "duckdb":
        return DuckDBEngine(count_by_reason=count_by_reason, ids_per_statement=ids_per_statement)
    if conn_type in ("postgres", "postgresql"):
        return PostgresEngine()
    return GenericEngine(placeholder=placeholder)


def id_batches(parts: Sequence[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """``id`` and ``reason`` (as plain strings) of the parts, one batch at a time."""
    import pyarrow as pa  # imported here: DuckDB reads local tables itself, without pyarrow in the process
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for part in parts:
        with storage.open_source(part) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=["id", "reason"]):
                reason = pc.cast(batch.column(1), pa.string())
                yield pa.RecordBatch.from_arrays([batch.column(0), reason], names=["id", "reason"])


def _created_at(target: Target, table: ActionTable, alias: str, p: str) -> tuple[str, list[datetime]]:
    """The ``created_at`` range predicate and its parameters (nothing without a column or a range)."""
    if target.created_at_column is None or table.created_at_range is None:
        return "", []
    return f" AND {alias}{target.created_at_column} BETWEEN {p} AND {p}", list(table.created_at_range)


def _dirty(target: Target, alias: str) -> str:
    """Rows that still hold geo data: a scrub leaves the others alone (so a rerun changes nothing)."""
    assert target.geo_columns is not None
    return " AND (" + " OR ".join(f"{alias}{c} IS NOT NULL" for c in target.geo_columns) + ")"


def _filters(
    target: Target, table: ActionTable, alias: str, p: str, ids: IdRange | None = None
) -> tuple[str, list[datetime]]:
    """The predicates beyond the ID join, with ``p`` as the parameter placeholder."""
    predicate, params = _created_at(target, table, alias, p)
    if ids is not None:
        predicate += ids.predicate(f"{alias}{target.id_column}")
    if table.operation == "scrub_geo":
        predicate += _dirty(target, alias)
    return predicate, params


def _set_nulls(target: Target) -> str:
    assert target.geo_columns is not None
    return ", ".join(f"{c} = NULL" for c in target.geo_columns)


def _count_sql(
    target: Target, table: ActionTable, source: str, p: str, ids: IdRange | None = None
) -> tuple[str, list[datetime]]:
    """Rows and IDs per reason that the table's operation would change."""
    predicate, params = _filters(target, table, "t.", p, ids)
    return (
        f"SELECT s.reason, count(*), count(DISTINCT s.id) FROM {target.table} t "
        f"JOIN {source} s ON t.{target.id_column} = s.id WHERE 1 = 1{predicate} GROUP BY s.reason",
        params,
    )


def _counts(rows: Sequence[Sequence[Any]]) -> Counts:
    """Counts from rows of (reason, rows, IDs)."""
    return Counts.per_reason(
        {NULL_REASON if reason is None else str(reason): (int(n), int(ids)) for reason, n, ids in rows}
    )


class DuckDBEngine:
    """DuckDB: Parquet read in place, one statement per range of IDs per action table.

    A statement's join holds its IDs in the task's process, so the IDs are split into ranges of about
    ``ids_per_statement`` each: memory stays flat whatever their number, and a target stored in ID order
    (X's IDs grow with time) skips the blocks outside each range.
    """

    placeholder = "?"

    def __init__(self, *, count_by_reason: bool = False, ids_per_statement: int = IDS_PER_STATEMENT) -> None:
        if ids_per_statement < 1:
            raise ValueError(f"ids_per_statement must be at least 1, not {ids_per_statement}")
        self.count_by_reason = count_by_reason
        self.ids_per_statement = ids_per_statement

    def begin(self, connection: Any) -> Any:
        # A DuckDB cursor is a second connection with its own transaction: work on the connection itself.
        connection.execute("BEGIN TRANSACTION")
        return connection

    def change(
        self, cursor: Any, target: Target, table: ActionTable, *, id_type: str, dry_run: bool
    ) -> Counts:
        with _local_files(table.parts) as files:
            parquet = "read_parquet([" + ", ".join(_string_literal(f) for f in files) + "])"
            _check_id_types(cursor, target, parquet)
            ranges = id_ranges(cursor, parquet, -(-table.ids // self.ids_per_statement))
            return Counts.total(
                [self._change(cursor, target, table, parquet, ids, dry_run) for ids in ranges]
            )

    def _change(
        self, cursor: Any, target: Target, table: ActionTable, parquet: str, ids: IdRange, dry_run: bool
    ) -> Counts:
        """Change (or, for a dry run, count) the rows of the IDs in one range."""
        source = f"(SELECT id, reason FROM {parquet} WHERE true{ids.predicate('id')})"
        if dry_run:
            sql, params = _count_sql(target, table, source, "?", ids)
            return _counts(cursor.execute(sql, params).fetchall())
        if self.count_by_reason:
            return self._change_by_row_id(cursor, target, table, source, ids)
        predicate, params = _filters(target, table, "", "?", ids)
        where = f"WHERE {target.id_column} IN (SELECT id FROM {source}){predicate}"
        if table.operation == "delete":
            (rows,) = cursor.execute(f"DELETE FROM {target.table} {where}", params).fetchone()
        else:
            (rows,) = cursor.execute(
                f"UPDATE {target.table} SET {_set_nulls(target)} {where}", params
            ).fetchone()
        return Counts(rows_changed=int(rows))

    def _change_by_row_id(
        self, cursor: Any, target: Target, table: ActionTable, source: str, ids: IdRange
    ) -> Counts:
        """Find the rows once with their reasons, count them per reason, change them by row id."""
        predicate, params = _filters(target, table, "t.", "?", ids)
        cursor.execute(
            f"CREATE OR REPLACE TEMP TABLE {HITS} AS SELECT t.rowid AS row_id, s.id, s.reason "
            f"FROM {target.table} t JOIN {source} s ON t.{target.id_column} = s.id WHERE 1 = 1{predicate}",
            params,
        )
        count = f"SELECT reason, count(*), count(DISTINCT id) FROM {HITS} GROUP BY reason"
        counts = _counts(cursor.execute(count).fetchall())
        rows = f"rowid IN (SELECT row_id FROM {HITS})"
        if table.operation == "delete":
            cursor.execute(f"DELETE FROM {target.table} WHERE {rows}")
        else:
            cursor.execute(f"UPDATE {target.table} SET {_set_nulls(target)} WHERE {rows}")
        cursor.execute(f"DROP TABLE {HITS}")
        return counts


@dataclasses.dataclass(frozen=True)
class IdRange:
    """IDs from ``low`` (inclusive) to ``high`` (exclusive); None is unbounded."""

    low: int | str | None = None
    high: int | str | None = None

    def predicate(self, column: str) -> str:
        """`` AND`` clauses bounding ``column`` (typed literals: the bounds are IDs read from the tables)."""
        low = "" if self.low is None else f" AND {column} >= {_literal(self.low)}"
        return low + ("" if self.high is None else f" AND {column} < {_literal(self.high)}")


def id_ranges(cursor: Any, parquet: str, count: int) -> list[IdRange]:
    """``count`` ranges that together hold every ID, split at a sample's quantiles (so about equal).

    The first and last range are unbounded and each bound starts the next range, so no ID falls between
    two ranges whatever the sample.
    """
    if count <= 1:
        return [IdRange()]
    sample = f"SELECT id FROM {parquet} USING SAMPLE reservoir({64 * count} ROWS) REPEATABLE (1)"
    rows = cursor.execute(f"SELECT id FROM ({sample}) WHERE id IS NOT NULL ORDER BY id").fetchall()
    ids = [row[0] for row in rows]
    bounds = list(dict.fromkeys(ids[len(ids) * n // count] for n in range(1, count) if ids))
    edges = [None, *bounds, None]
    return [IdRange(low, high) for low, high in itertools.pairwise(edges)]


def _check_id_types(cursor: Any, target: Target, parquet: str) -> None:
    """Refuse text IDs against a number column and the reverse: they compare in no common order."""
    ids, column = _type(cursor, "id", parquet), _type(cursor, target.id_column, target.table)
    if ids.startswith("VARCHAR") != column.startswith("VARCHAR"):
        id_type = "string" if column.startswith("VARCHAR") else "int64"
        raise TypeError(
            f"{target.table}.{target.id_column} is {column} but the results' IDs are {ids}: write the tables "
            f"with the reporting step's id_type={id_type!r}. Nothing was applied."
        )


def _type(cursor: Any, column: str, relation: str) -> str:
    """The SQL type of ``column`` in ``relation`` (a table or a table function), read without a row."""
    (row,) = cursor.execute(f"DESCRIBE SELECT {column} FROM {relation}").fetchall()
    return str(row[1]).upper()


def _literal(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string_literal(value)
    raise TypeError(f"IDs must be integers or strings, not {type(value).__name__}")


@contextlib.contextmanager
def _local_files(parts: Sequence[str]) -> Iterator[list[str]]:
    """The parts as local files: object-storage parts are copied to a temporary folder first."""
    if all(paths.is_local(part) for part in parts):
        yield [str(paths.as_path(part)) for part in parts]
        return
    with tempfile.TemporaryDirectory(prefix="xcompliance-apply-") as folder:
        files = [os.path.join(folder, f"part-{number}.parquet") for number in range(len(parts))]
        for part, local in zip(parts, files, strict=True):
            storage.copy(part, local)
        yield files


class _DbApiEngine:
    """Engines on DB-API drivers that open a transaction implicitly (autocommit off)."""

    def begin(self, connection: Any) -> Any:
        if getattr(connection, "autocommit", False) is True:
            connection.autocommit = False
        return connection.cursor()


def _string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresEngine(_DbApiEngine):
    """PostgreSQL: ``COPY`` into a temporary table, then one join statement per action table."""

    def change(
        self, cursor: Any, target: Target, table: ActionTable, *, id_type: str, dry_run: bool
    ) -> Counts:
        self._stage(cursor, table, id_type)
        if dry_run:
            sql, params = _count_sql(target, table, STAGE, "%s")
        else:
            predicate, params = _filters(target, table, "t.", "%s")
            if table.operation == "delete":
                change = f"DELETE FROM {target.table} AS t USING {STAGE} s WHERE t.{target.id_column} = s.id"
            else:
                change = (
                    f"UPDATE {target.table} AS t SET {_set_nulls(target)} FROM {STAGE} s "
                    f"WHERE t.{target.id_column} = s.id"
                )
            sql = (
                f"WITH changed AS ({change}{predicate} RETURNING s.id, s.reason) "
                "SELECT reason, count(*), count(DISTINCT id) FROM changed GROUP BY reason"
            )
        cursor.execute(sql, params)
        return _counts(cursor.fetchall())

    def _stage(self, cursor: Any, table: ActionTable, id_type: str) -> None:
        id_sql = "bigint" if id_type == "int64" else "text"
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cursor.execute(f"CREATE TEMP TABLE {STAGE} (id {id_sql}, reason text) ON COMMIT DROP")
        _copy(cursor, f"COPY {STAGE} (id, reason) FROM STDIN (FORMAT csv)", _csv_chunks(table.parts))
        cursor.execute(f"ANALYZE {STAGE}")  # a temporary table has no statistics: the planner needs them


def _csv_chunks(parts: Sequence[str]) -> Iterator[bytes]:
    import pyarrow.csv as pcsv

    options = pcsv.WriteOptions(include_header=False)
    for batch in id_batches(parts):
        buffer = io.BytesIO()
        pcsv.write_csv(batch, buffer, options)
        yield buffer.getvalue()


def _copy(cursor: Any, sql: str, chunks: Iterator[bytes]) -> None:
    """``COPY ... FROM STDIN`` with psycopg 3 (``cursor.copy``) or psycopg2 (``copy_expert``)."""
    if hasattr(cursor, "copy"):
        with cursor.copy(sql) as copy:
            for chunk in chunks:
                copy.write(chunk)
    else:
        cursor.copy_expert(sql, _ChunkReader(chunks))


class _ChunkReader(io.RawIOBase):
    """A read-only file over byte chunks, for psycopg2's ``copy_expert``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class GenericEngine(_DbApiEngine):
    """Any DB-API warehouse: batched ``executemany`` into a temporary table, count, then change."""

    def __init__(self, *, placeholder: str = "%s", batch_rows: int = 10_000) -> None:
        self.placeholder = placeholder
        self.batch_rows = batch_rows

    def change(
        self, cursor: Any, target: Target, table: ActionTable, *, id_type: str, dry_run: bool
    ) -> Counts:
        self._stage(cursor, table, id_type)
        sql, params = _count_sql(target, table, STAGE, self.placeholder)
        cursor.execute(sql, params)
        counts = _counts(cursor.fetchall())
        if not dry_run:
            predicate, params = _filters(target, table, "", self.placeholder)
            where = f"WHERE {target.id_column} IN (SELECT id FROM {STAGE}){predicate}"
            if table.operation == "delete":
                cursor.execute(f"DELETE FROM {target.table} {where}", params)
            else:
                cursor.execute(f"UPDATE {target.table} SET {_set_nulls(target)} {where}", params)
        cursor.execute(f"DROP TABLE {STAGE}")
        return counts

    def _stage(self, cursor: Any, table: ActionTable, id_type: str) -> None:
        id_sql = "BIGINT" if id_type == "int64" else "VARCHAR(32)"
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} (id {id_sql}, reason VARCHAR(255))")
        insert = f"INSERT INTO {STAGE} (id, reason) VALUES ({self.placeholder}, {self.placeholder})"
        for batch in id_batches(table.parts, self.batch_rows):
            ids, reasons = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            cursor.executemany(insert, list(zip(ids, reasons, strict=True)))

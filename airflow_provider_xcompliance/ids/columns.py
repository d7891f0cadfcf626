"""One batch of a table's ID column (CSV, Parquet): integers are range-checked, strings take the text path."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL
from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.text import text_batch
from airflow_provider_xcompliance.ids.values import (
    MAX_ID_DIGITS,
    IdBatch,
    InvalidId,
    as_lines,
    check_value,
    ids_text,
    shown,
)


def _int_column(source: str, first_row: int, column: pa.Array) -> IdBatch:
    """Integers need no parsing, only a range check: 1 to 10**19 - 1."""
    present = pc.is_valid(column, memory_pool=WORKER_MEMORY_POOL).to_numpy(zero_copy_only=False)
    numbers = pc.coalesce(column, pa.scalar(1, column.type), memory_pool=WORKER_MEMORY_POOL)
    checks = [
        (pc.equal(numbers, pa.scalar(0, column.type), memory_pool=WORKER_MEMORY_POOL), "zero is not an ID")
    ]
    if pa.types.is_signed_integer(column.type):
        checks.append((pc.less(numbers, pa.scalar(0, column.type), memory_pool=WORKER_MEMORY_POOL), "signed"))
    if column.type == pa.uint64():
        checks.append(
            (
                pc.greater(
                    numbers, pa.scalar(10**MAX_ID_DIGITS - 1, pa.uint64()), memory_pool=WORKER_MEMORY_POOL
                ),
                f"more than {MAX_ID_DIGITS} digits",
            )
        )
    reasons: dict[int, str] = {}
    for mask, reason in checks:
        for i in np.flatnonzero(mask.to_numpy(zero_copy_only=False) & present).tolist():
            reasons.setdefault(i, reason)
    keep = present.copy()
    keep[list(reasons)] = False
    invalid = tuple(
        InvalidId(source, first_row + i, str(column[i].as_py()), reasons[i], "row") for i in sorted(reasons)
    )
    kept = pc.filter(column, pa.array(keep, memory_pool=WORKER_MEMORY_POOL), memory_pool=WORKER_MEMORY_POOL)
    values = pc.cast(kept, pa.uint64(), memory_pool=WORKER_MEMORY_POOL).to_numpy(zero_copy_only=False)
    blank = len(column) - int(present.sum())
    return IdBatch(source, first_row, len(column), ids_text(values), len(values), blank, invalid, values)


def _string_column(source: str, first_row: int, column: pa.Array) -> IdBatch:
    """Strings take the text path: the cells, one per line, are validated like the lines of a file
    (null cells become blank lines). A cell holding a newline would shift the rows: then cell by cell."""
    text = as_lines(pc.coalesce(column, pa.scalar(b"", column.type), memory_pool=WORKER_MEMORY_POOL))
    if text.count(b"\n") == len(column):
        return text_batch(source, first_row, text, "row")
    out: list[bytes] = []
    invalid: list[InvalidId] = []
    blank = 0
    for i, cell in enumerate(column.to_pylist()):
        raw = cell.encode("utf-8", "surrogateescape") if isinstance(cell, str) else cell or b""
        digits, reason = check_value(raw)
        if digits is not None:
            out.append(digits + b"\n")
        elif reason is None:
            blank += 1
        else:
            invalid.append(InvalidId(source, first_row + i, shown(raw), reason, "row"))
    return IdBatch(source, first_row, len(column), b"".join(out), len(out), blank, tuple(invalid))


def column_batch(source: str, first_row: int, column: pa.Array) -> IdBatch:
    """Validate one batch of an ID column (nulls count as blank)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_integer(column.type):
        return _int_column(source, first_row, column)
    if not any(
        check(column.type)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
        )
    ):
        raise IdSourceError(
            f"{source}: the ID column has type {column.type}; expected integers or strings "
            "(floating point cannot hold 19-digit IDs exactly)",
            source=source,
        )
    return _string_column(source, first_row, column)


def pick_column(names: Sequence[str], id_column: str | None, source: str) -> str:
    if id_column is not None:
        if id_column not in names:
            columns = ", ".join(names)
            raise IdSourceError(f"{source} has no column {id_column!r} (columns: {columns})", source=source)
        return id_column
    if len(names) == 1:
        return names[0]
    raise IdSourceError(
        f"{source} has {len(names)} columns: pass id_column= to say which one holds the IDs", source=source
    )

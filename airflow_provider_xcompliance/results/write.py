"""Writing the tables, and committing a staged output in place of the previous one."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import ExitStack
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL
from airflow_provider_xcompliance.paths import is_local
from airflow_provider_xcompliance.table_files import PART_FILE, REJECTS_FILE, SUMMARY_FILE

__all__ = [
    "PART_FILE",
    "REJECTS_FILE",
    "SUMMARY_FILE",
    "TableWriter",
    "commit",
    "constant_column",
    "move",
    "parquet_options",
    "remove",
    "remove_file",
]

ROW_GROUP_ROWS = 1 << 18  # rows buffered per table before a row group is written


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """``ParquetWriter`` options of the tables: dictionary pages and no statistics for the dictionary
    columns, plain pages and statistics for the others.

    Ids and timestamps are nearly all distinct: for them the writer would build a dictionary, overflow it
    and fall back to plain pages, which costs CPU and file size. Their min/max statistics let readers skip
    row groups; those of the dictionary columns (one action per table, a few reasons) cost writing time and
    prune nothing.
    """
    dictionary = [field.name for field in schema if pa.types.is_dictionary(field.type)]
    return {
        "use_dictionary": dictionary,
        "write_statistics": [field.name for field in schema if field.name not in dictionary],
    }


def constant_column(value: str | None, length: int) -> pa.DictionaryArray:
    """A dictionary column holding one value (or null) on every row: a few bytes however long."""
    if value is None:
        return pa.DictionaryArray.from_arrays(pa.nulls(length, pa.int32()), pa.array([], pa.string()))
    zeros = pa.Array.from_buffers(pa.int32(), length, [None, pa.py_buffer(np.zeros(length, np.int32))])
    return pa.DictionaryArray.from_arrays(zeros, pa.array([value]), safe=False)  # 0 is in range: no scan


class TableWriter:
    """One action's Parquet file, written in row groups of about ``ROW_GROUP_ROWS`` rows."""

    def __init__(self, path: Any, schema: pa.Schema) -> None:
        self._stack = ExitStack()
        stream = self._stack.enter_context(path.open("wb"))
        self._writer = self._stack.enter_context(pq.ParquetWriter(stream, schema, **parquet_options(schema)))
        self._parts: list[pa.Table] = []
        self._rows = 0

    def write(self, part: pa.Table) -> None:
        self._parts.append(part)
        self._rows += part.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            rows = pa.concat_tables(self._parts).unify_dictionaries(memory_pool=WORKER_MEMORY_POOL)
            self._writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)
            self._parts, self._rows = [], 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._stack.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def commit(staging: Any, final: Any) -> None:
    """Swap the staged output into place, replacing a previous run's output."""
    if is_local(final):
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:12]}"
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        remove(old)
        return
    fs = final.fs
    if final.exists():
        fs.rm(final.path, recursive=True)
    # File by file: a recursive mv also copies the folder's own entry, which is no object on S3, and fails.
    files = fs.find(staging.path)
    fs.copy(files, [final.path + file[len(staging.path) :] for file in files])
    fs.rm(staging.path, recursive=True)


def move(source: Any, target: Any) -> None:
    if is_local(source):
        os.replace(source, target)
    else:
        source.fs.mv(source.path, target.path)


def remove_file(path: Any) -> None:
    if is_local(path):
        os.remove(path)
    else:
        path.fs.rm(path.path)


def remove(path: Any) -> None:
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)

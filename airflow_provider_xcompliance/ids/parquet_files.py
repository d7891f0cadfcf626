"""Parquet ID files, row group by row group, so a corrupt one is named with its rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.columns import column_batch, pick_column
from airflow_provider_xcompliance.ids.sources import IdFile
from airflow_provider_xcompliance.ids.values import BatchCall
from airflow_provider_xcompliance.paths import is_local


def read_parquet(file: IdFile, id_column: str | None, block_size: int) -> Iterator[BatchCall]:
    """The Parquet reader: the ``id_column`` (or the only column) of every row group."""
    if file.gzipped:
        raise IdSourceError(
            f"{file.path}: Parquet files compress internally; a .gz Parquet file is not supported",
            source=file.source,
        )
    with ExitStack() as stack:
        # pyarrow reads a local Parquet path natively: faster than through a Python file object
        native = is_local(file.path)
        stream: Any = file.source if native else stack.enter_context(file.open())
        yield from _parquet_batches(stream, file.source, id_column, block_size)


def _parquet_batches(
    stream: IO[bytes] | str, source: str, id_column: str | None, block_size: int
) -> Iterator[BatchCall]:
    try:
        # Without pre-buffering and with a bounded read buffer, pyarrow holds one batch in memory, not a
        # whole row group's column chunk.
        parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=block_size)
    except (pa.ArrowException, OSError) as exc:
        raise IdSourceError(f"{source} is not a readable Parquet file: {exc}", source=source) from exc
    column = pick_column(parquet.schema_arrow.names, id_column, source)
    row = 1
    for group in range(parquet.num_row_groups):
        first = row
        try:
            for batch in parquet.iter_batches(
                batch_size=max(1, block_size // 16), row_groups=[group], columns=[column]
            ):
                if len(batch):
                    yield partial(column_batch, source, row, batch.column(0))
                    row += len(batch)
        except (pa.ArrowException, OSError) as exc:
            rows = parquet.metadata.row_group(group).num_rows
            raise IdSourceError(
                f"{source}: row group {group} (rows {first} to {first + rows - 1}) cannot be read: {exc}",
                source=source,
            ) from exc

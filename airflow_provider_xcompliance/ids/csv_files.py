"""CSV ID files: pyarrow's fast reader, and Python's ``csv`` from the first block it cannot parse on."""

from __future__ import annotations

import csv
import io
import itertools
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv

from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.columns import column_batch, pick_column
from airflow_provider_xcompliance.ids.sources import IdFile
from airflow_provider_xcompliance.ids.values import BOM, WHITESPACE, BatchCall, IdBatch, InvalidId, shown


def read_csv(file: IdFile, id_column: str | None, block_size: int) -> Iterator[BatchCall]:
    """The CSV reader: a header row, then the ``id_column`` (or the only column) of each row."""
    with file.open() as stream:
        yield from _csv_batches(stream, file.open, file.source, id_column, block_size)


def _csv_batches(
    stream: IO[bytes],
    reopen: Callable[[], AbstractContextManager[IO[bytes]]],
    source: str,
    id_column: str | None,
    block_size: int,
) -> Iterator[BatchCall]:
    """pyarrow's reader first; from the first block it cannot parse (a ragged row, a stray quote) on, the
    file is read again with Python's ``csv``, which finds each bad row's line and goes on past it.

    The ID column is read as bytes, so a cell that is not UTF-8 is an invalid value, not a read error.
    """
    header = stream.readline().removeprefix(BOM)
    if not header.strip(WHITESPACE):
        return  # an empty file holds no IDs, like an empty text file
    names = next(csv.reader([header.decode("utf-8", "replace")]), [])
    column = pick_column(names, id_column, source)
    row = 1
    counted = _QuoteCounter(stream, header.count(b'"'))
    try:
        reader = pa_csv.open_csv(
            counted,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=block_size),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[column],
                column_types={column: pa.binary()},
                strings_can_be_null=False,
                null_values=[],
            ),
        )
        for batch in reader:
            if len(batch):
                yield partial(column_batch, source, row, batch.column(0))
                row += len(batch)
    except pa.ArrowInvalid:
        pass  # parsed again below, row by row, from the first row not yet yielded
    except (OSError, EOFError, zlib.error) as exc:
        raise IdSourceError(f"{source} cannot be read after row {row - 1}: {exc}", source=source) from exc
    else:
        if counted.quotes % 2:
            # pyarrow reads an unclosed quote as one value to the end: the rows after it would vanish
            raise IdSourceError(
                f"{source} has an unbalanced quote: the rows after it cannot be told apart; fix the file",
                source=source,
            )
        return
    yield from _csv_rows(reopen, source, names, names.index(column), row, block_size)


class _QuoteCounter:
    """A read-only stream that counts the double quotes it passes on (balanced in any valid CSV file)."""

    def __init__(self, stream: IO[bytes], quotes: int = 0) -> None:
        self.stream = stream
        self.quotes = quotes
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.quotes += data.count(b'"')
        return data


def _csv_rows(
    reopen: Callable[[], AbstractContextManager[IO[bytes]]],
    source: str,
    names: list[str],
    index: int,
    first_row: int,
    block_size: int,
) -> Iterator[BatchCall]:
    """The slow path: rows from ``first_row`` on; a row with the wrong number of fields is an invalid
    record named by its line. Rows are data rows (empty lines skipped), as pyarrow counts them."""
    with reopen() as raw:
        decoded = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(decoded, strict=True)  # an unclosed quote is an error, not the rest of the file
        row, start, cells = 1, first_row, list[bytes]()
        try:
            for record in itertools.islice(reader, 1, None):  # after the header
                if not record:
                    continue
                if row < first_row:  # yielded by the fast path
                    row += 1
                    continue
                if len(record) != len(names):
                    if cells:
                        yield partial(column_batch, source, start, pa.array(cells, pa.binary()))
                    text = shown(",".join(record).encode("utf-8", "surrogateescape"))
                    reason = f"{len(record)} fields, the header has {len(names)}"
                    bad = InvalidId(source, reader.line_num, text, reason)
                    yield partial(IdBatch, source, row, 1, b"", 0, invalid=(bad,))
                    row, start, cells = row + 1, row + 1, []
                    continue
                cells.append(record[index].encode("utf-8", "surrogateescape"))
                row += 1
                if len(cells) * 16 >= block_size:
                    yield partial(column_batch, source, start, pa.array(cells, pa.binary()))
                    start, cells = row, []
        except (csv.Error, OSError, EOFError, zlib.error) as exc:
            raise IdSourceError(
                f"{source} cannot be read at line {reader.line_num}: {exc}", source=source
            ) from exc
        if cells:
            yield partial(column_batch, source, start, pa.array(cells, pa.binary()))

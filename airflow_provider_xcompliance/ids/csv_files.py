"""CSV ID files: pyarrow's fast reader, and Python's ``csv`` from the first block it cannot parse on."""

from __future__ import annotations

import csv
import io
import itertools
import re
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

# How csv names a field over ``csv.field_size_limit()``: the one error a record, not the file, is to blame for
_FIELD_LIMIT_ERROR = "field larger than field limit"
_SEPARATORS = re.compile(r"[,\r\n]")
_SHOWN = 256  # characters of a refused record's first line kept to show it


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
    try:
        names = next(csv.reader([header.decode("utf-8", "replace")]), [])
    except csv.Error as exc:  # a name over csv's field size limit
        message = f"{source} line 1 (the header) cannot be read: {exc}: {shown(header.rstrip(), 80)!r}"
        raise IdSourceError(message, source=source) from exc
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
    """The slow path: rows from ``first_row`` on; a row with the wrong number of fields, or an ID cell over
    csv's size limit, is an invalid record named by its line. Rows are data rows (empty lines skipped), as
    pyarrow counts them."""
    with reopen() as raw:
        lines = _Lines(io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline=""))
        reader = csv.reader(lines, strict=True)  # an unclosed quote is an error, not the rest of the file
        row, start, cells = 1, first_row, list[bytes]()
        try:
            for cell in itertools.islice(_id_cells(reader, lines, source, len(names), index), 1, None):
                if cell is None:  # an empty line
                    continue
                if row < first_row:  # yielded by the fast path
                    row += 1
                    continue
                if isinstance(cell, InvalidId):
                    if cells:
                        yield partial(column_batch, source, start, pa.array(cells, pa.binary()))
                    yield partial(IdBatch, source, row, 1, b"", 0, invalid=(cell,))
                    row, start, cells = row + 1, row + 1, []
                    continue
                cells.append(cell)
                row += 1
                if len(cells) * 16 >= block_size:
                    yield partial(column_batch, source, start, pa.array(cells, pa.binary()))
                    start, cells = row, []
        except (csv.Error, OSError, EOFError, zlib.error) as exc:
            message = f"{source} cannot be read at line {lines.number}: {exc}"
            raise IdSourceError(message, source=source) from exc
        if cells:
            yield partial(column_batch, source, start, pa.array(cells, pa.binary()))


class _Lines:
    """The decoded lines fed to ``csv.reader``, counted, with those of the record being read kept: where
    csv gives up on a record (a field over its size limit), the record is scanned again from them."""

    def __init__(self, text: Iterator[str]) -> None:
        self.text = text
        self.number = 0
        self.record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.skip()
        self.record.append(line)
        return line

    def skip(self) -> str:
        """The next line, counted but not kept."""
        line = next(self.text)
        self.number += 1
        return line


def _id_cells(
    reader: Iterator[list[str]], lines: _Lines, source: str, width: int, index: int
) -> Iterator[bytes | InvalidId | None]:
    """Each record's ID cell (None for an empty line), or why the record is refused: a number of fields not
    the header's ``width``, or an ID cell over csv's size limit. csv cannot read past a field over that
    limit: such a record is scanned here instead (:func:`_long_record`), and reading goes on after it."""
    while True:
        lines.record.clear()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if not str(exc).startswith(_FIELD_LIMIT_ERROR):
                raise
            yield _long_record(lines, source, width, index)
            continue
        if not record:
            yield None
        elif len(record) != width:
            yield _ragged(source, lines.number, ",".join(record), len(record), width)
        else:
            yield record[index].encode("utf-8", "surrogateescape")


def _ragged(source: str, line: int, text: str, fields: int, width: int) -> InvalidId:
    value = shown(text.encode("utf-8", "surrogateescape"))
    return InvalidId(source, line, value, f"{fields} fields, the header has {width}")


def _long_record(lines: _Lines, source: str, width: int, index: int) -> bytes | InvalidId:
    """The ID cell of a record csv gave up on (the long field is another one), or why it is refused."""
    first = lines.number - len(lines.record) + 1
    fields, cell, complete = _scan(itertools.chain(lines.record, iter(lines.skip, None)), index)
    if fields != width:
        return _ragged(source, first, lines.record[0][:_SHOWN].rstrip("\r\n"), fields, width)
    if not complete:
        value = shown(cell[:_SHOWN].encode("utf-8", "surrogateescape"))
        return InvalidId(source, first, value, f"longer than {csv.field_size_limit()} characters")
    return cell.encode("utf-8", "surrogateescape")


def _scan(lines: Iterator[str], wanted: int) -> tuple[int, str, bool]:
    """Read one record by csv's rules (strict, like the reader) up to its last line: its number of fields,
    the start of field ``wanted`` and whether that is all of it (at most ``csv.field_size_limit()`` long)."""
    limit, field, quoted, size = csv.field_size_limit(), 0, False, 0
    kept: list[str] = []

    def keep(line: str, begin: int, end: int) -> None:
        nonlocal size
        if field == wanted and size <= limit:  # past the limit the cell is refused: its start shows it
            kept.append(line[begin : min(end, begin + limit + 1 - size)])
            size += len(kept[-1])

    for line in lines:
        at, field_start = 0, not quoted
        while at < len(line):
            if quoted:
                end = line.find('"', at)
                keep(line, at, len(line) if end < 0 else end)
                if end < 0:
                    break
                if line.startswith('"', end + 1):  # a doubled quote: one quote inside the field
                    keep(line, end, end + 1)
                    at = end + 2
                    continue
                quoted, at = False, end + 1
                if line[at : at + 1] not in ("", ",", "\r", "\n"):
                    raise csv.Error("',' expected after '\"'")
            elif field_start and line.startswith('"', at):
                quoted, at, field_start = True, at + 1, False
            else:
                separator = _SEPARATORS.search(line, at)
                keep(line, at, len(line) if separator is None else separator.start())
                if separator is None or separator.group() != ",":
                    break
                field, at, field_start = field + 1, separator.end(), True
        if not quoted:
            return field + 1, "".join(kept), size <= limit
    raise csv.Error("unexpected end of data")  # a quoted field open at the end, as csv says of it

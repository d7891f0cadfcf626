"""ID sources in, validated and normalised ID text files out: streaming, and free of Airflow.

The compliance API takes one plain-text file of decimal IDs per job and documents nothing about blank,
malformed or duplicate lines, so every ID is checked and normalised here before any job exists.

Rules (one place: :func:`normalise_id` is the reference, the fast paths below must agree with it):

* Around each value, ASCII whitespace (``\\r`` included) and a UTF-8 byte order mark are trimmed.
  Blank lines, empty cells and nulls are skipped and counted as ``blank``.
* A valid ID is 1 to 19 ASCII digits once leading zeros are dropped (``"007"`` becomes ``"7"``).
  That is the API's own ``^[0-9]{1,19}$`` pattern, and every such number fits an unsigned 64-bit integer;
  20 digits are refused even below 2**64 (``2**64 - 1`` included): no real snowflake is that large.
* Zero (``"0"``, ``"000"``) is refused: X never issues it, and in exports it usually stands for a
  missing value.
* Signs, inner whitespace, non-ASCII characters (Arabic-Indic or fullwidth digits too), hex and the
  like are refused.

Positions: ``line`` is the 1-based line number in a text file, and the 1-based data row in CSV
(header and empty lines not counted) and Parquet, where :attr:`InvalidId.unit` says ``"row"``; a CSV
row with the wrong number of fields is an invalid record named by its line in the file.

Errors: an invalid value is an :class:`InvalidId` (``on_invalid`` decides). A source that cannot be read
as a whole (missing, a truncated or corrupt ``.gz``, a corrupt Parquet row group, a missing ID column, a
CSV quote never closed) raises :class:`~airflow_provider_xcompliance.exceptions.IdSourceError` naming the
file and the line or row group, with the library's error as its cause, whatever ``on_invalid`` says: the
IDs it holds are unknown, so skipping it would silently drop IDs that may need action.

Speed: text is read in large byte blocks; a block of plain ``digits\\n`` lines (CRLF allowed) is checked
with a handful of vectorised passes and written out unchanged; only a block with an anomaly takes the
per-line path, which also yields exact line numbers. CSV and Parquet are read in record batches:
integer columns are range-checked with pyarrow compute, string cells are joined into lines and take the
text path. Reading stays in the caller's thread, which numbers the lines; checking and formatting run in
a few threads (:data:`WORKERS`) and come back in input order, so counts, line numbers, rejects and
output are those of a sequential pass. Memory stays bounded by the block/batch size times the batches in
flight (plus the dedupe bound).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, TypeAlias, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL, WORKERS, in_order
from airflow_provider_xcompliance.exceptions import IdSourceError, InvalidIdsError
from airflow_provider_xcompliance.paths import OpenablePath, as_path

log = logging.getLogger(__name__)

Fmt: TypeAlias = Literal["text", "csv", "parquet"]
OnInvalid: TypeAlias = Literal["fail", "skip"]


IdSource: TypeAlias = "str | os.PathLike[str] | OpenablePath"
IdSources: TypeAlias = "IdSource | Sequence[IdSource]"
T = TypeVar("T")

DEFAULT_BLOCK_SIZE = 1 << 20
"""Bytes of text (or rows of CSV/Parquet, divided by 16) handled per step: big enough to amortise, small
enough to stay in cache."""
DEFAULT_DEDUPE_MEMORY_IDS = 2_000_000
"""IDs the exact duplicate count (and ``dedupe=True``) keeps in memory before it spills to disk. Its peak
memory is about 17 bytes per ID of this bound, 26 with ``dedupe=True`` (figures in bench/README.md)."""
MAX_ID_DIGITS = 19
MAX_LINE_BYTES = 1 << 16
"""A line longer than this is refused without being held in memory, whatever it contains."""
MAX_SAMPLES = 5
"""Invalid lines quoted in an :class:`InvalidIdsError`."""
CHUNK_PREFIX = "ids-"
_WHITESPACE = b" \t\r\n\v\f"
_BOM = b"\xef\xbb\xbf"
_GLOB_MAGIC = re.compile(r"[*?\[]")
_SUFFIX_FORMATS: dict[str, Fmt] = {
    "": "text",
    ".txt": "text",
    ".text": "text",
    ".ids": "text",
    ".lst": "text",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# --- Values -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidId:
    """One refused line or cell: where it is, what it held (decoded, possibly shortened), and why."""

    source: str
    line: int
    value: str
    reason: str
    unit: Literal["line", "row"] = "line"

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 40 else self.value[:40] + "..."
        return f"{self.source} {self.unit} {self.line}: {shown!r} ({self.reason})"


@dataclass(frozen=True)
class IdCounts:
    """What a pass over the sources saw.

    ``read`` counts every line or row (``read == blank + valid + invalid``). ``duplicates`` is exact,
    ``dedupe`` or not: valid IDs minus distinct ones, counted within the dedupe memory bound (spilling
    to disk beyond it). ``written`` is the number of IDs in the normalised output.
    """

    read: int
    blank: int
    valid: int
    invalid: int
    duplicates: int
    written: int

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class IdChunk:
    """One normalised ID file, for one job. ``index`` is 0-based and follows the order of the sources."""

    index: int
    path: Path
    ids: int
    size: int


@dataclass(frozen=True)
class PreparedIds:
    """The result of :func:`prepare_ids`. No chunk at all when no valid ID was found."""

    chunks: tuple[IdChunk, ...]
    counts: IdCounts
    rejects_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [chunk.path for chunk in self.chunks]

    def save(self, path: Path) -> None:
        """Write a manifest beside the chunks, so a resumed task reuses them instead of validating again."""
        chunks = [{**asdict(chunk), "path": str(chunk.path)} for chunk in self.chunks]
        rejects = str(self.rejects_path) if self.rejects_path else None
        body = {"chunks": chunks, "counts": self.counts.as_dict(), "rejects_path": rejects}
        path.write_text(json.dumps(body))

    @classmethod
    def load(cls, path: Path) -> PreparedIds:
        """Read a manifest written by :meth:`save` (counts this version does not know, such as the
        ``duplicates_exact`` flag of earlier versions, are dropped: a resumed task must not fail on them)."""
        body = json.loads(path.read_text())
        chunks = tuple(IdChunk(**{**chunk, "path": Path(chunk["path"])}) for chunk in body["chunks"])
        rejects = Path(body["rejects_path"]) if body["rejects_path"] else None
        known = {name: body["counts"][name] for name in IdCounts.__dataclass_fields__}
        return cls(chunks, IdCounts(**known), rejects)


@dataclass(frozen=True)
class IdBatch:
    """A run of consecutive records of one source, validated.

    ``ids`` holds the valid ones, normalised, one per line, each ending in ``\\n``; ``first_line`` and
    ``lines`` say which records (blank and invalid included) the batch covers.
    """

    source: str
    first_line: int
    lines: int
    ids: bytes
    count: int
    blank: int = 0
    invalid: tuple[InvalidId, ...] = ()
    values: np.ndarray | None = field(default=None, repr=False, compare=False)

    def id_values(self) -> np.ndarray:
        """The IDs as a ``uint64`` array (for counting distinct values)."""
        if self.values is not None:
            return self.values
        return _text_values(self.ids)


# --- One value --------------------------------------------------------------------------------------------


def _check(raw: bytes) -> tuple[bytes | None, str | None]:
    """``(normalised, None)``, ``(None, reason)``, or ``(None, None)`` for a blank value."""
    value = raw.strip(_WHITESPACE)
    if value.startswith(_BOM):
        value = value[len(_BOM) :].strip(_WHITESPACE)
    if not value:
        return None, None
    if value.isdigit():  # bytes.isdigit() is ASCII-only: other scripts' digits fall through
        digits = value.lstrip(b"0")
        if not digits:
            return None, "zero is not an ID"
        if len(digits) > MAX_ID_DIGITS:
            return None, f"more than {MAX_ID_DIGITS} digits"
        return digits, None
    if value[:1] in (b"+", b"-"):
        return None, "signed"
    if not value.isascii():
        return None, "non-ASCII characters"
    if any(c in _WHITESPACE for c in value):
        return None, "whitespace inside"
    return None, "not a decimal number"


def normalise_id(value: str | bytes) -> str:
    """Return the normalised form of one ID; raise ``ValueError`` (with the reason) if it is not one.

    A blank value raises too: blank lines are skipped by the readers, not turned into IDs.
    """
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    digits, reason = _check(raw)
    if digits is None:
        raise ValueError(reason or "blank")
    return digits.decode("ascii")


def _shown(raw: bytes, limit: int = 200) -> str:
    """A value fit for a message or a rejects file: decoded safely and bounded."""
    text = raw.decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + "..."


# --- Text -------------------------------------------------------------------------------------------------


def _text_values(ids: bytes) -> np.ndarray:
    """Parse ``digits\\n`` lines into uint64 with one vectorised cast.

    Newlines become ``0`` and the offsets point at them, so line ``i > 0`` reads as ``"0" + digits``:
    the same number, and no copy per line.
    """
    if not ids:
        return np.empty(0, np.uint64)
    newlines = np.flatnonzero(np.frombuffer(ids, np.uint8) == 10)
    offsets = np.empty(len(newlines) + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = newlines
    strings = pa.LargeStringArray.from_buffers(
        len(newlines), pa.py_buffer(offsets), pa.py_buffer(ids.replace(b"\n", b"0"))
    )
    return pc.cast(strings, pa.uint64(), memory_pool=WORKER_MEMORY_POOL).to_numpy()


def _clean_text_block(block: bytes) -> tuple[bytes, int, np.ndarray | None] | None:
    """``(ids, count, values or None)`` when every line is a digit string (CRLF allowed), else None.

    Vectorised checks, picked for speed (a substring search for ``b"\\n0"`` costs more than all of them).
    Lines that are already normalised (no leading zero, at most 19 digits) are passed on unchanged;
    zero-padded ones are parsed with one cast and rewritten, unless a value is out of range.
    """
    if b"\r" in block:
        if block.count(b"\r") != block.count(b"\r\n"):
            return None
        block = block.replace(b"\r\n", b"\n")
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == 10)
    if data.max() > 57 or np.count_nonzero(data < 48) != len(newlines):  # 48..57 are "0".."9"
        return None
    lengths = np.diff(newlines)
    if newlines[0] == 0 or (len(lengths) and lengths.min() < 2):  # a blank line
        return None
    count = len(newlines)
    padded = data[0] == 48 or np.any(data[newlines[:-1] + 1] == 48)
    if (
        not padded
        and newlines[0] <= MAX_ID_DIGITS
        and (not len(lengths) or lengths.max() <= MAX_ID_DIGITS + 1)
    ):
        return block, count, None
    try:
        values = _text_values(block)
    except pa.ArrowInvalid:  # beyond 2**64 - 1
        return None
    if values.min() == 0 or values.max() > 10**MAX_ID_DIGITS - 1:
        return None
    return _ids_text(values), count, values


def _text_batch(source: str, first_line: int, block: bytes, unit: Literal["line", "row"] = "line") -> IdBatch:
    """Validate whole ``\\n``-terminated lines starting at line number ``first_line``."""
    clean = _clean_text_block(block)
    if clean is not None:
        ids, count, values = clean
        return IdBatch(source, first_line, count, ids, count, values=values)
    lines = block.split(b"\n")
    lines.pop()  # the empty string after the final newline
    out: list[bytes] = []
    invalid: list[InvalidId] = []
    blank = 0
    for number, raw in enumerate(lines, first_line):
        digits, reason = _check(raw)
        if digits is not None:
            out.append(digits)
        elif reason is None:
            blank += 1
        else:
            invalid.append(InvalidId(source, number, _shown(raw.rstrip(b"\r")), reason, unit))
    ids = b"\n".join(out) + b"\n" if out else b""
    return IdBatch(source, first_line, len(lines), ids, len(out), blank, tuple(invalid))


def _overlong_line(source: str, line: int, head: bytes) -> IdBatch:
    return IdBatch(source, line, 1, b"", 0, invalid=(InvalidId(source, line, _shown(head), "line too long"),))


def _read(stream: IO[bytes], size: int, source: str, done: int) -> bytes:
    """A block of ``stream``; a failed read (a truncated or corrupt ``.gz``) names the last whole line."""
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdSourceError(f"{source} cannot be read after line {done}: {exc}", source=source) from exc


def _text_batches(stream: IO[bytes], source: str, block_size: int) -> Iterator[Callable[[], IdBatch]]:
    """Calls that validate the file block by block; the lines are numbered here, as the blocks are cut."""
    line = 1
    carry = b""
    overlong: bytes | None = None  # start of a line too long to keep, while we skip to its end
    while chunk := _read(stream, block_size, source, line - 1):
        if overlong is not None:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            yield partial(_overlong_line, source, line, overlong)
            line += 1
            overlong, chunk = None, chunk[end + 1 :]
        buffer = carry + chunk if carry else chunk
        cut = buffer.rfind(b"\n") + 1
        carry = buffer[cut:]
        if cut:
            block = buffer[:cut]
            yield partial(_text_batch, source, line, block)
            line += block.count(b"\n")
        if len(carry) > MAX_LINE_BYTES:
            overlong, carry = carry[:64], b""
    if overlong is not None:
        yield partial(_overlong_line, source, line, overlong)
    elif carry:
        yield partial(_text_batch, source, line, carry + b"\n")


# --- Columns (CSV, Parquet) -------------------------------------------------------------------------------


def _ids_text(values: np.ndarray) -> bytes:
    """uint64 IDs as ``digits\\n`` lines (vectorised: one cast, one join)."""
    if not len(values):
        return b""
    return _as_lines(pc.cast(pa.array(values, pa.uint64()), pa.string(), memory_pool=WORKER_MEMORY_POOL))


def _as_lines(strings: pa.Array) -> bytes:
    """The values of a string array, each followed by ``\\n``, as one bytes object (one copy)."""
    kind = strings.type
    # a fresh array: its offsets start at 0
    lines = pc.binary_join_element_wise(
        strings, pa.scalar(b"", kind), pa.scalar(b"\n", kind), memory_pool=WORKER_MEMORY_POOL
    )
    width = 8 if pa.types.is_large_string(lines.type) or pa.types.is_large_binary(lines.type) else 4
    end = int.from_bytes(lines.buffers()[1][width * len(lines) : width * (len(lines) + 1)], "little")
    data: bytes = lines.buffers()[2][:end].to_pybytes()
    return data


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
    return IdBatch(source, first_row, len(column), _ids_text(values), len(values), blank, invalid, values)


def _string_column(source: str, first_row: int, column: pa.Array) -> IdBatch:
    """Strings take the text path: the cells, one per line, are validated like the lines of a file
    (null cells become blank lines). A cell holding a newline would shift the rows: then cell by cell."""
    text = _as_lines(pc.coalesce(column, pa.scalar(b"", column.type), memory_pool=WORKER_MEMORY_POOL))
    if text.count(b"\n") == len(column):
        return _text_batch(source, first_row, text, "row")
    out: list[bytes] = []
    invalid: list[InvalidId] = []
    blank = 0
    for i, cell in enumerate(column.to_pylist()):
        raw = cell.encode("utf-8", "surrogateescape") if isinstance(cell, str) else cell or b""
        digits, reason = _check(raw)
        if digits is not None:
            out.append(digits + b"\n")
        elif reason is None:
            blank += 1
        else:
            invalid.append(InvalidId(source, first_row + i, _shown(raw), reason, "row"))
    return IdBatch(source, first_row, len(column), b"".join(out), len(out), blank, tuple(invalid))


def _column_batch(source: str, first_row: int, column: pa.Array) -> IdBatch:
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


def _pick_column(names: Sequence[str], id_column: str | None, source: str) -> str:
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


def _csv_batches(
    stream: IO[bytes],
    reopen: Callable[[], AbstractContextManager[IO[bytes]]],
    source: str,
    id_column: str | None,
    block_size: int,
) -> Iterator[Callable[[], IdBatch]]:
    """pyarrow's reader first; from the first block it cannot parse (a ragged row, a stray quote) on, the
    file is read again with Python's ``csv``, which finds each bad row's line and goes on past it.

    The ID column is read as bytes, so a cell that is not UTF-8 is an invalid value, not a read error.
    """
    header = stream.readline().removeprefix(_BOM)
    if not header.strip(_WHITESPACE):
        return  # an empty file holds no IDs, like an empty text file
    names = next(csv.reader([header.decode("utf-8", "replace")]), [])
    column = _pick_column(names, id_column, source)
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
                yield partial(_column_batch, source, row, batch.column(0))
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
) -> Iterator[Callable[[], IdBatch]]:
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
                        yield partial(_column_batch, source, start, pa.array(cells, pa.binary()))
                    text = _shown(",".join(record).encode("utf-8", "surrogateescape"))
                    reason = f"{len(record)} fields, the header has {len(names)}"
                    bad = InvalidId(source, reader.line_num, text, reason)
                    yield partial(IdBatch, source, row, 1, b"", 0, invalid=(bad,))
                    row, start, cells = row + 1, row + 1, []
                    continue
                cells.append(record[index].encode("utf-8", "surrogateescape"))
                row += 1
                if len(cells) * 16 >= block_size:
                    yield partial(_column_batch, source, start, pa.array(cells, pa.binary()))
                    start, cells = row, []
        except (csv.Error, OSError, EOFError, zlib.error) as exc:
            raise IdSourceError(
                f"{source} cannot be read at line {reader.line_num}: {exc}", source=source
            ) from exc
        if cells:
            yield partial(_column_batch, source, start, pa.array(cells, pa.binary()))


def _parquet_batches(
    stream: IO[bytes] | str, source: str, id_column: str | None, block_size: int
) -> Iterator[Callable[[], IdBatch]]:
    """Row group by row group, so a corrupt one is named (with its rows)."""
    try:
        # Without pre-buffering and with a bounded read buffer, pyarrow holds one batch, not a whole row
        # group's column chunk (measured on 1M-row groups of strings: 5 MiB allocated instead of 165 MiB).
        parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=block_size)
    except (pa.ArrowException, OSError) as exc:
        raise IdSourceError(f"{source} is not a readable Parquet file: {exc}", source=source) from exc
    column = _pick_column(parquet.schema_arrow.names, id_column, source)
    row = 1
    for group in range(parquet.num_row_groups):
        first = row
        try:
            for batch in parquet.iter_batches(
                batch_size=max(1, block_size // 16), row_groups=[group], columns=[column]
            ):
                if len(batch):
                    yield partial(_column_batch, source, row, batch.column(0))
                    row += len(batch)
        except (pa.ArrowException, OSError) as exc:
            rows = parquet.metadata.row_group(group).num_rows
            raise IdSourceError(
                f"{source}: row group {group} (rows {first} to {first + rows - 1}) cannot be read: {exc}",
                source=source,
            ) from exc


# --- Sources ----------------------------------------------------------------------------------------------


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _glob(pattern: IdSource) -> list[OpenablePath]:
    """Files matching ``pattern``: the part before the first wildcard is the folder searched.

    A path object (an ``ObjectStoragePath`` with its connection) stays one, so its matches keep it too.
    """
    base: Any = as_path(pattern)
    tail: list[str] = []
    while _has_magic(base) and base.parent != base:
        tail.append(base.name)
        base = base.parent
    matches = sorted((p for p in base.glob("/".join(reversed(tail))) if p.is_file()), key=str)
    if not matches:
        raise IdSourceError(f"No ID files match {str(pattern)!r}", source=str(pattern))
    return matches


def _has_magic(item: object) -> bool:
    return isinstance(item, str | os.PathLike | OpenablePath) and bool(
        _GLOB_MAGIC.search(str(item).split("://", 1)[-1])
    )


def expand_sources(sources: IdSources) -> list[OpenablePath]:
    """The files behind ``sources``, in a deterministic order.

    A string with ``*``, ``?`` or ``[`` is a glob; a folder means every file below it, sorted by path,
    except hidden ones and ``_``-prefixed markers such as ``_SUCCESS``.
    """
    items = (
        [sources] if isinstance(sources, str | os.PathLike) or not isinstance(sources, Sequence) else sources
    )
    files: list[OpenablePath] = []
    for item in items:
        if _has_magic(item):
            files.extend(_glob(item))
            continue
        path: Any = as_path(item)
        if path.is_dir():
            found = sorted(
                (
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not any(_hidden(n) for n in p.relative_to(path).parts)
                ),
                key=str,
            )
            if not found:
                raise IdSourceError(f"No ID files in folder {str(path)!r}", source=str(path))
            files.extend(found)
        else:
            files.append(path)
    return files


@dataclass(frozen=True)
class SourceFile:
    """One source file as it was when its IDs were read: enough to tell later that it changed.

    ``version`` is the object store's ETag where there is one (a rewrite with the same bytes keeps it),
    else the modification time in nanoseconds.
    """

    uri: str
    size: int
    version: str


def source_fingerprint(sources: IdSources) -> tuple[SourceFile, ...]:
    """The files behind ``sources`` with their sizes and versions, from listings and metadata only."""
    return tuple(_source_file(path) for path in expand_sources(sources))


def _source_file(path: Any) -> SourceFile:
    if isinstance(path, Path) and not getattr(path, "protocol", ""):  # an older UPath is a Path too
        stat = path.stat()
        return SourceFile(str(path), stat.st_size, f"modified {stat.st_mtime_ns}")
    path.fs.invalidate_cache(path.path)  # a listing this process cached earlier must not hide a rewrite
    info = path.fs.info(path.path)
    etag = info.get("ETag") or info.get("etag")
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
    version = f"ETag {etag}" if etag else f"modified {modified}"
    return SourceFile(str(path), int(info["size"]), version)


def detect_format(path: OpenablePath, fmt: Fmt | None = None) -> tuple[Fmt, bool]:
    """``(format, gzipped)`` of one file: ``fmt`` if given, else from the suffix (``.gz`` looked through)."""
    name = str(getattr(path, "name", path))
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[: -len(".gz")]
    if fmt is not None:
        if fmt not in ("text", "csv", "parquet"):
            raise ValueError(f"fmt must be 'text', 'csv' or 'parquet', not {fmt!r}")
        return fmt, gzipped
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in _SUFFIX_FORMATS:
        raise IdSourceError(
            f"Cannot tell the format of {str(path)!r} from its suffix: pass fmt='text', 'csv' or 'parquet'",
            source=str(path),
        )
    return _SUFFIX_FORMATS[suffix], gzipped


def _batch_calls(
    sources: IdSources, fmt: Fmt | None, id_column: str | None, block_size: int
) -> Iterator[Callable[[], IdBatch]]:
    """One call per batch of every file behind ``sources``, in order: reading here, validating in the call.

    An error while reading comes as a last call that raises it, so it is raised after the batches read
    before it, as in a sequential pass.
    """
    files = [(path, *detect_format(path, fmt)) for path in expand_sources(sources)]  # fail before reading
    try:
        yield from _read_calls(files, id_column, block_size)
    except Exception as exc:  # raised in its turn, by the call below
        yield partial(_raise, exc)


def _raise(exc: Exception) -> NoReturn:
    raise exc


def _read_calls(
    files: list[tuple[OpenablePath, Fmt, bool]], id_column: str | None, block_size: int
) -> Iterator[Callable[[], IdBatch]]:
    for path, kind, gzipped in files:
        source = str(path)
        if kind == "parquet" and gzipped:
            raise IdSourceError(
                f"{path}: Parquet files compress internally; a .gz Parquet file is not supported",
                source=source,
            )
        try:
            with ExitStack() as stack:
                # pyarrow reads a local Parquet path natively: faster than through a Python file object
                native = kind == "parquet" and isinstance(path, Path)
                stream: Any = str(path) if native else stack.enter_context(_open(path, gzipped))
                if kind == "text":
                    yield from _text_batches(stream, source, block_size)
                elif kind == "csv":
                    reopen = partial(_open, path, gzipped)
                    yield from _csv_batches(stream, reopen, source, id_column, block_size)
                else:
                    yield from _parquet_batches(stream, source, id_column, block_size)
        except (OSError, EOFError, zlib.error) as exc:  # not found, no permission...: the others say where
            raise IdSourceError(f"{source} cannot be read: {exc}", source=source) from exc


@contextmanager
def _open(path: OpenablePath, gzipped: bool) -> Iterator[IO[bytes]]:
    with path.open("rb") as raw:
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:  # type: ignore[arg-type]
            yield unzipped  # type: ignore[misc]


def _validated(
    sources: IdSources,
    fmt: Fmt | None,
    id_column: str | None,
    block_size: int,
    then: Callable[[IdBatch], T],
) -> Iterator[tuple[IdBatch, T]]:
    """Each batch with ``then(batch)``, both computed in the worker threads, yielded in input order.

    ``then`` is the per-batch work that needs no order (e.g. hashing for the distinct count). At most
    ``2 * WORKERS + 1`` batches are in flight: enough to keep the threads busy while this thread reads
    and writes, few enough to bound memory (a few MiB each).
    """

    def work(call: Callable[[], IdBatch]) -> tuple[IdBatch, T]:
        batch = call()
        return batch, then(batch)

    calls = _batch_calls(sources, fmt, id_column, block_size)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="xcompliance-ids") as pool:
        for _, done in in_order(pool, ((None, partial(work, call)) for call in calls), 2 * WORKERS):
            yield done


def iter_id_batches(
    sources: IdSources,
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[IdBatch]:
    """Validated IDs of every file behind ``sources``, batch by batch, with provenance of the invalid ones."""
    for batch, _ in _validated(sources, fmt, id_column, block_size, _nothing):
        yield batch


def _nothing(batch: IdBatch) -> None:
    return None


# --- Counting and deduplication ---------------------------------------------------------------------------


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads snowflakes (clustered by time) evenly over 64 bits.

    A bijection of uint64 (:func:`_unmix64` inverts it), so distinct hashes are distinct IDs.
    """
    with np.errstate(over="ignore"):
        h = values + np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(30)  # in place: two arrays at most, whatever the size
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        return h


def _unmix64(h: np.ndarray) -> np.ndarray:
    """The IDs behind :func:`_mix64` hashes, in place: each step of the finaliser undone in reverse."""
    with np.errstate(over="ignore"):
        h ^= (h >> np.uint64(31)) ^ (h >> np.uint64(62))
        h *= np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
        h ^= (h >> np.uint64(27)) ^ (h >> np.uint64(54))
        h *= np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
        h ^= (h >> np.uint64(30)) ^ (h >> np.uint64(60))
        h -= np.uint64(0x9E3779B97F4A7C15)
        return h


def _hashes(batch: IdBatch) -> np.ndarray | None:
    """The batch's IDs as sorted hashes (in the worker threads: the main thread then only partitions)."""
    if not batch.count:
        return None
    hashes = _mix64(batch.id_values())
    hashes.sort()
    return hashes


def _sorted_unique(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (not ``np.unique``, which would sort it again)."""
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class _Deduplicator:
    """Exact distinct IDs within a memory bound: for the duplicate count, and the output of ``dedupe``.

    IDs come as sorted :func:`_hashes`. Up to ``memory_ids`` are held in memory (8 bytes each); beyond
    it they are appended to 64 files of ``uint64`` by their top hash bits (each sorted batch is cut
    with a binary search, no sort); a file still larger than the bound at the end is split again on the
    next bits. Disk used is at most 8 bytes per ID, freed file by file. :meth:`drain` yields the
    distinct IDs ascending when nothing was spilled, else ascending within each file: deterministic,
    but not the input order.
    """

    fanout_bits = 6

    def __init__(self, spill_dir: Path, memory_ids: int) -> None:
        self.spill_dir = spill_dir
        self.memory_ids = max(1, memory_ids)
        self.pending: list[np.ndarray] = []
        self.pending_ids = 0
        self.spilled = False
        self.unique = 0

    def add(self, hashes: np.ndarray) -> None:
        self.pending.append(hashes)
        self.pending_ids += len(hashes)
        if self.pending_ids > self.memory_ids:
            self._spill(self.pending, self.spill_dir, 0)
            self.pending, self.pending_ids, self.spilled = [], 0, True

    def _partition_path(self, folder: Path, part: int) -> Path:
        return folder / f"part-{part:02d}.u64"

    def _spill(self, runs: Iterable[np.ndarray], folder: Path, depth: int) -> None:
        """Append sorted ``runs`` (sharing the hash bits above this depth's) to files by this depth's."""
        folder.mkdir(parents=True, exist_ok=True)
        fanout = 1 << self.fanout_bits
        shift = 64 - self.fanout_bits * (depth + 1)
        pieces: list[list[np.ndarray]] = [[] for _ in range(fanout)]
        for run in runs:
            if not len(run):
                continue
            prefix = int(run[0]) >> (shift + self.fanout_bits) << (shift + self.fanout_bits)
            starts = np.array([prefix + (part << shift) for part in range(1, fanout)], np.uint64)
            bounds = [0, *np.searchsorted(run, starts).tolist(), len(run)]
            for part in range(fanout):
                if bounds[part] < bounds[part + 1]:
                    pieces[part].append(run[bounds[part] : bounds[part + 1]])
        for part, arrays in enumerate(pieces):
            if arrays:
                with self._partition_path(folder, part).open("ab") as out:
                    out.writelines(array.data for array in arrays)

    def _drain(self, folder: Path, depth: int) -> Iterator[Callable[[], np.ndarray]]:
        """One call per file, in order, that loads it sorted (and removes it)."""
        for part in range(1 << self.fanout_bits):
            path = self._partition_path(folder, part)
            if not path.exists():
                continue
            # Too big for memory: split again on the next hash bits (64 bits give up to 10 levels).
            if path.stat().st_size // 8 > self.memory_ids and self.fanout_bits * (depth + 2) <= 64:
                sub = folder / f"part-{part:02d}"
                with path.open("rb") as src:
                    while block := src.read(8 * self.memory_ids):
                        self._spill([np.sort(np.frombuffer(block, np.uint64))], sub, depth + 1)
                path.unlink()
                yield from self._drain(sub, depth + 1)
                continue
            yield partial(_load_sorted, path)

    def drain(self, ids: bool = False) -> Iterator[np.ndarray]:
        """Count the distinct IDs into :attr:`unique`; with ``ids``, also yield them (ascending within
        each slice of at most ``memory_ids``). Slices are loaded and sorted in two threads, in order."""
        pending, self.pending, self.pending_ids = self.pending, [], 0
        if self.spilled:
            self._spill(pending, self.spill_dir, 0)
            pending.clear()
            loads: Iterable[Callable[[], np.ndarray]] = self._drain(self.spill_dir, 0)
        else:
            loads = [partial(_merged, pending)]
        calls = ((None, partial(_distinct, load, ids)) for load in loads)
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="xcompliance-dedupe") as pool:
            for _, (count, distinct) in in_order(pool, calls, 1):
                self.unique += count
                if distinct is not None:
                    yield distinct


def _load_sorted(path: Path) -> np.ndarray:
    hashes = np.fromfile(path, np.uint64)
    path.unlink()
    hashes.sort()
    return hashes


def _merged(runs: list[np.ndarray]) -> np.ndarray:
    merged = np.concatenate(runs) if runs else np.empty(0, np.uint64)
    runs.clear()  # one copy in memory while sorting, not two
    merged.sort()
    return merged


def _distinct(load: Callable[[], np.ndarray], ids: bool) -> tuple[int, np.ndarray | None]:
    """How many distinct hashes ``load()`` returns and, with ``ids``, the IDs behind them, ascending."""
    run = load()
    if not ids:
        return len(run) - int(np.count_nonzero(run[1:] == run[:-1])), None
    distinct = _sorted_unique(run)
    for start in range(0, len(distinct), 1 << 20):  # in place, in slices: the temporaries stay small
        _unmix64(distinct[start : start + (1 << 20)])
    distinct.sort()
    return len(distinct), distinct


# --- Outputs ----------------------------------------------------------------------------------------------


class _ChunkWriter:
    """Writes normalised IDs into ``ids-00000.txt``, ``ids-00001.txt``... of at most ``max_ids`` each.

    Each file is written under a ``.part`` name and renamed when full, so a listed chunk is complete.
    """

    def __init__(self, out_dir: Path, max_ids: int | None) -> None:
        self.out_dir = out_dir
        self.max_ids = max_ids
        self.chunks: list[IdChunk] = []
        self.stream: IO[bytes] | None = None
        self.in_chunk = 0
        self.size = 0

    def _path(self, index: int) -> Path:
        return self.out_dir / f"{CHUNK_PREFIX}{index:05d}.txt"

    def _finish(self) -> None:
        if self.stream is None:
            return
        self.stream.close()
        self.stream = None
        index = len(self.chunks)
        final = self._path(index)
        os.replace(final.with_name(final.name + ".part"), final)
        self.chunks.append(IdChunk(index, final, self.in_chunk, self.size))

    def write(self, ids: bytes, count: int) -> None:
        while count:
            if self.stream is None:
                part = self._path(len(self.chunks))
                self.stream = part.with_name(part.name + ".part").open("wb")
                self.in_chunk = self.size = 0
            room = count if self.max_ids is None else min(count, self.max_ids - self.in_chunk)
            if room == count:
                head, ids = ids, b""
            else:
                cut = int(np.flatnonzero(np.frombuffer(ids, np.uint8) == 10)[room - 1]) + 1
                head, ids = ids[:cut], ids[cut:]
            self.stream.write(head)
            self.in_chunk += room
            self.size += len(head)
            count -= room
            if self.max_ids is not None and self.in_chunk == self.max_ids:
                self._finish()

    def close(self) -> tuple[IdChunk, ...]:
        self._finish()
        return tuple(self.chunks)

    def discard(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
            part = self._path(len(self.chunks))
            part.with_name(part.name + ".part").unlink(missing_ok=True)
        for chunk in self.chunks:
            chunk.path.unlink(missing_ok=True)
        self.chunks = []


@contextmanager
def _rejects_writer(path: Path) -> Iterator[Any]:
    """CSV ``source,line,value,reason`` (header first), UTF-8: what the user fixes the source from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["source", "line", "value", "reason"])
        yield writer


class _Tally:
    def __init__(self) -> None:
        self.read = self.blank = self.valid = self.invalid = 0
        self.samples: list[InvalidId] = []

    def add(self, batch: IdBatch) -> None:
        self.read += batch.lines
        self.blank += batch.blank
        self.valid += batch.count
        self.invalid += len(batch.invalid)
        if len(self.samples) < MAX_SAMPLES:
            self.samples.extend(batch.invalid[: MAX_SAMPLES - len(self.samples)])

    def error(self) -> InvalidIdsError:
        first = "; ".join(str(sample) for sample in self.samples)
        return InvalidIdsError(
            f"{self.invalid} invalid ID value(s) in {self.read} records; first: {first}. An ID is 1 to "
            f"{MAX_ID_DIGITS} ASCII digits, not zero. Fix the source, or pass on_invalid='skip' to leave "
            "them out and list them in a rejects file.",
            samples=self.samples,
            total=self.invalid,
        )

    def counts(self, distinct: int, written: int) -> IdCounts:
        return IdCounts(self.read, self.blank, self.valid, self.invalid, self.valid - distinct, written)


def _check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ("fail", "skip"):
        raise ValueError(f"on_invalid must be 'fail' or 'skip', not {on_invalid!r}")


def validate_ids(
    sources: IdSources,
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    on_invalid: OnInvalid = "fail",
    dedupe_memory_ids: int = DEFAULT_DEDUPE_MEMORY_IDS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> IdCounts:
    """Check ``sources`` and count them; raise :class:`InvalidIdsError` on invalid values unless
    ``on_invalid="skip"``. ``written`` is then what :func:`prepare_ids` would write without dedupe.
    Nothing is written but the temporary spill files of the exact duplicate count, beyond its memory bound."""
    _check_on_invalid(on_invalid)
    tally = _Tally()
    with tempfile.TemporaryDirectory(prefix="xcompliance-dedupe-") as spill:
        distinct = _Deduplicator(Path(spill), dedupe_memory_ids)
        for batch, hashes in _validated(sources, fmt, id_column, block_size, _hashes):
            tally.add(batch)
            if hashes is not None and not (tally.invalid and on_invalid == "fail"):
                distinct.add(hashes)
        if tally.invalid and on_invalid == "fail":
            raise tally.error()
        for _ in distinct.drain():
            pass
    return tally.counts(distinct.unique, tally.valid)


def prepare_ids(
    sources: IdSources,
    out_dir: str | os.PathLike[str],
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    on_invalid: OnInvalid = "fail",
    dedupe: bool = False,
    max_ids_per_job: int | None = None,
    rejects_path: str | os.PathLike[str] | None = None,
    dedupe_memory_ids: int = DEFAULT_DEDUPE_MEMORY_IDS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> PreparedIds:
    """Validate and normalise ``sources`` into local ID files, one per job, ready to upload.

    ``on_invalid="fail"`` reads everything (to report the total), then raises :class:`InvalidIdsError`
    and leaves no chunk file behind; an unreadable source raises ``IdSourceError`` in either mode.
    ``on_invalid="skip"`` writes each invalid value to ``rejects_path`` (default ``out_dir/rejects.csv``;
    see :func:`_rejects_writer` for the columns) and goes on.
    ``max_ids_per_job`` splits the output into chunks of that many IDs (the last one smaller).
    Chunk files left in ``out_dir`` by an earlier call are removed first, so the folder holds one copy.
    """
    _check_on_invalid(on_invalid)
    if max_ids_per_job is not None and max_ids_per_job < 1:
        raise ValueError(f"max_ids_per_job must be a positive number, not {max_ids_per_job}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{CHUNK_PREFIX}[0-9]*.txt*"):
        stale.unlink()
    rejects = (
        (Path(rejects_path) if rejects_path is not None else out / "rejects.csv")
        if on_invalid == "skip"
        else None
    )
    tally = _Tally()
    writer = _ChunkWriter(out, max_ids_per_job)
    with ExitStack() as stack:
        # the distinct IDs, for the exact duplicate count and, with dedupe, for the output
        spill = stack.enter_context(tempfile.TemporaryDirectory(prefix=".dedupe-", dir=out))
        distinct = _Deduplicator(Path(spill), dedupe_memory_ids)
        reject_rows = stack.enter_context(_rejects_writer(rejects)) if rejects is not None else None
        try:
            for batch, hashes in _validated(sources, fmt, id_column, block_size, _hashes):
                tally.add(batch)
                if reject_rows is not None:
                    reject_rows.writerows((i.source, i.line, i.value, i.reason) for i in batch.invalid)
                if hashes is None or (tally.invalid and on_invalid == "fail"):
                    continue
                distinct.add(hashes)
                if not dedupe:
                    writer.write(batch.ids, batch.count)
            if tally.invalid and on_invalid == "fail":
                raise tally.error()
            for values in distinct.drain(ids=dedupe):
                for start in range(0, len(values), 1 << 20) if dedupe else ():
                    piece = values[start : start + (1 << 20)]
                    writer.write(_ids_text(piece), len(piece))
            chunks = writer.close()
        except BaseException:
            writer.discard()
            raise
    counts = tally.counts(distinct.unique, sum(chunk.ids for chunk in chunks))
    log.info(
        "IDs: %s read, %s blank, %s valid, %s invalid, %s duplicates, %s written in %s file(s)",
        counts.read,
        counts.blank,
        counts.valid,
        counts.invalid,
        counts.duplicates,
        counts.written,
        len(chunks),
    )
    return PreparedIds(chunks, counts, rejects)


__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_DEDUPE_MEMORY_IDS",
    "Fmt",
    "IdBatch",
    "IdChunk",
    "IdCounts",
    "IdSource",
    "IdSources",
    "InvalidId",
    "OnInvalid",
    "OpenablePath",
    "PreparedIds",
    "SourceFile",
    "as_path",
    "detect_format",
    "expand_sources",
    "iter_id_batches",
    "normalise_id",
    "prepare_ids",
    "source_fingerprint",
    "validate_ids",
]

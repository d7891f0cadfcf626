"""Plain-text ID files, one ID per line: blocks of lines validated by vectorised passes, else line by line."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from functools import partial
from typing import IO, Literal

import numpy as np
import pyarrow as pa

from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.sources import IdFile
from airflow_provider_xcompliance.ids.values import (
    MAX_ID_DIGITS,
    MAX_LINE_BYTES,
    BatchCall,
    IdBatch,
    InvalidId,
    check_value,
    ids_text,
    shown,
    text_values,
)


def _clean_text_block(block: bytes) -> tuple[bytes, int, np.ndarray | None] | None:
    """``(ids, count, values or None)`` when every line is a digit string (CRLF allowed), else None.

    Each check is a whole-block numpy pass, cheaper than any substring search for a leading zero.
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
        values = text_values(block)
    except pa.ArrowInvalid:  # beyond 2**64 - 1
        return None
    if values.min() == 0 or values.max() > 10**MAX_ID_DIGITS - 1:
        return None
    return ids_text(values), count, values


def text_batch(source: str, first_line: int, block: bytes, unit: Literal["line", "row"] = "line") -> IdBatch:
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
        digits, reason = check_value(raw)
        if digits is not None:
            out.append(digits)
        elif reason is None:
            blank += 1
        else:
            invalid.append(InvalidId(source, number, shown(raw.rstrip(b"\r")), reason, unit))
    ids = b"\n".join(out) + b"\n" if out else b""
    return IdBatch(source, first_line, len(lines), ids, len(out), blank, tuple(invalid))


def _overlong_line(source: str, line: int, head: bytes) -> IdBatch:
    return IdBatch(source, line, 1, b"", 0, invalid=(InvalidId(source, line, shown(head), "line too long"),))


def _read(stream: IO[bytes], size: int, source: str, done: int) -> bytes:
    """A block of ``stream``; a failed read (a truncated or corrupt ``.gz``) names the last whole line."""
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdSourceError(f"{source} cannot be read after line {done}: {exc}", source=source) from exc


def _text_batches(stream: IO[bytes], source: str, block_size: int) -> Iterator[BatchCall]:
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
            yield partial(text_batch, source, line, block)
            line += block.count(b"\n")
        if len(carry) > MAX_LINE_BYTES:
            overlong, carry = carry[:64], b""
    if overlong is not None:
        yield partial(_overlong_line, source, line, overlong)
    elif carry:
        yield partial(text_batch, source, line, carry + b"\n")


def read_text(file: IdFile, id_column: str | None, block_size: int) -> Iterator[BatchCall]:
    """The text reader: one ID per line (``id_column`` does not apply)."""
    with file.open() as stream:
        yield from _text_batches(stream, file.source, block_size)

"""Reading the sources: which files, their display names and job ids, and their whole-line blocks."""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import IO, Any, NamedTuple

import numpy as np

from airflow_provider_xcompliance.paths import OpenablePath, as_path, is_local
from airflow_provider_xcompliance.redaction import redact_url

__all__ = [
    "BLOCK_BYTES",
    "Block",
    "Source",
    "line_offsets",
    "size_of",
    "source_blocks",
    "sources",
]

Block = bytes | bytearray | memoryview  # whole lines of a result file, read or memory-mapped

BLOCK_BYTES = 12 << 20  # the block size that balanced CPU and peak memory best (bench/README.md)
_JOB_ID_IN_NAME = re.compile(r"(?<!\d)(\d{10,19})(?!\d)")


class Source(NamedTuple):
    """One result file to convert."""

    path: Any  # a local Path, or a path object with .open() and .fs
    name: str  # as shown in rejects and the summary: a URL without its (signed) query
    job_id: str | None


def size_of(path: Any) -> int | None:
    try:
        return int(path.stat().st_size)
    except (OSError, AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _job_id_from_name(path: Any) -> str | None:
    matches = _JOB_ID_IN_NAME.findall(PurePath(str(path)).name)
    return matches[-1] if matches else None


def sources(given: Any, job_id: str | None) -> list[Source]:
    """The sources of a conversion. A mapping gives job ids per source."""
    if isinstance(given, Mapping):
        pairs = list(given.items())
    elif isinstance(given, (str, os.PathLike, OpenablePath)):
        pairs = [(given, None)]
    else:
        pairs = [(source, None) for source in given]
    out = []
    for source, source_job in pairs:
        path = as_path(source)
        name = str(path) if is_local(path) else redact_url(str(path))  # no signed query in any record
        out.append(Source(path, name, source_job or job_id or _job_id_from_name(path)))
    return out


def read_blocks(stream: IO[bytes], size: int) -> Iterator[bytearray]:
    """Whole-line blocks of about ``size`` bytes; the last one gets a newline if the file lacks it.

    Each block is read into its own buffer, which is cut at its last newline in place: the bytes are copied
    once, by the read (slicing and joining bytes would copy every block twice more).
    """
    carry = b""
    while True:
        block = bytearray(len(carry) + size)
        block[: len(carry)] = carry
        read = stream.readinto(memoryview(block)[len(carry) :])  # type: ignore[attr-defined]
        if not read:
            break
        filled = len(carry) + read
        cut = block.rfind(b"\n", 0, filled) + 1
        if not cut:  # a line longer than a block
            carry = bytes(block[:filled])
            continue
        carry = bytes(block[cut:filled])
        del block[cut:]
        yield block
    if carry:
        yield bytearray(carry + b"\n")


def mapped_blocks(path: Path, size: int) -> Iterator[Block]:
    """Whole-line blocks of a local file, each a view of its own memory map: the kernel maps its page cache,
    so no byte is copied, and a block's pages are unmapped once nothing holds it. The last block gets a
    newline if the file lacks it.
    """
    with path.open("rb") as file:
        total = os.fstat(file.fileno()).st_size
        position, window = 0, size
        while position < total:
            base = position - position % mmap.ALLOCATIONGRANULARITY
            length = min(total - base, position - base + window)
            mapped = mmap.mmap(file.fileno(), length, access=mmap.ACCESS_READ, offset=base)
            start = position - base
            cut = mapped.rfind(b"\n", start) + 1
            if cut:
                yield memoryview(mapped)[start:cut]
                position, window = base + cut, size
            elif base + length == total:  # the last line, without its newline
                yield mapped[start:] + b"\n"
                position = total
            else:  # a line longer than the window
                window *= 2


def source_blocks(path: Any) -> Iterator[Block]:
    """A source's whole-line blocks: memory-mapped when local, read otherwise."""
    if is_local(path):
        yield from mapped_blocks(path, BLOCK_BYTES)
        return
    with path.open("rb") as stream:
        yield from read_blocks(stream, BLOCK_BYTES)


def line_offsets(block: Block) -> np.ndarray:
    """Where each line of a block starts, and where the last one ends: line ``i`` is
    ``block[offsets[i]:offsets[i + 1]]``, its newline included."""
    newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    offsets = np.zeros(len(newlines) + 1, np.int32)
    offsets[1:] = newlines + 1
    return offsets

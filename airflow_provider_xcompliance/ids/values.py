"""One ID value and one batch of them: the rule (:func:`check_value`), refusals, and the text/uint64 forms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL

DEFAULT_BLOCK_SIZE = 1 << 20
"""Bytes of text (or rows of CSV/Parquet, divided by 16) handled per step: big enough to amortise, small
enough to stay in cache."""
MAX_ID_DIGITS = 19
MAX_LINE_BYTES = 1 << 16
"""A line longer than this is refused without being held in memory, whatever it contains."""
WHITESPACE = b" \t\r\n\v\f"
BOM = b"\xef\xbb\xbf"


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
        return text_values(self.ids)


BatchCall: TypeAlias = Callable[[], IdBatch]
"""Validates one batch when called: readers cut batches in order, worker threads run the calls."""


def check_value(raw: bytes) -> tuple[bytes | None, str | None]:
    """``(normalised, None)``, ``(None, reason)``, or ``(None, None)`` for a blank value."""
    value = raw.strip(WHITESPACE)
    if value.startswith(BOM):
        value = value[len(BOM) :].strip(WHITESPACE)
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
    if any(c in WHITESPACE for c in value):
        return None, "whitespace inside"
    return None, "not a decimal number"


def normalise_id(value: str | bytes) -> str:
    """Return the normalised form of one ID; raise ``ValueError`` (with the reason) if it is not one.

    A blank value raises too: blank lines are skipped by the readers, not turned into IDs.
    """
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    digits, reason = check_value(raw)
    if digits is None:
        raise ValueError(reason or "blank")
    return digits.decode("ascii")


def shown(raw: bytes, limit: int = 200) -> str:
    """A value fit for a message or a rejects file: decoded safely and bounded."""
    text = raw.decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + "..."


def text_values(ids: bytes) -> np.ndarray:
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


def ids_text(values: np.ndarray) -> bytes:
    """uint64 IDs as ``digits\\n`` lines (vectorised: one cast, one join)."""
    if not len(values):
        return b""
    return as_lines(pc.cast(pa.array(values, pa.uint64()), pa.string(), memory_pool=WORKER_MEMORY_POOL))


def as_lines(strings: pa.Array) -> bytes:
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

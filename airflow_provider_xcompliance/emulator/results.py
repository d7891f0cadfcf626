"""Which uploaded IDs need action, and the result lines the emulator writes for them.

Results come from a ground-truth JSONL file when one is given, otherwise from a deterministic rule of the
ID, so a test can always know the right answer. Uploads are read line by line and results written as they
are found: nothing proportional to the upload is held in memory (only the few percent of IDs flagged, to
write each once).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Record = dict[str, Any]

_MASK64 = (1 << 64) - 1
_FIBONACCI = 0x9E3779B97F4A7C15
_FLAGGED_PER_1024 = 36  # about 3.5 % of IDs need action
_TWITTER_EPOCH_MS = 1288834974657
_LATEST_MS = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
_PRE_SNOWFLAKE_MS = (
    int(datetime(2007, 1, 1, tzinfo=timezone.utc).timestamp() * 1000),
    _TWITTER_EPOCH_MS,
)
_DAY_MS = 86_400_000

# Weighted reasons per job type; scrub_geo is the only reason whose action is not "delete".
_REASONS: dict[str, tuple[tuple[str, int], ...]] = {
    "tweets": (
        ("deleted", 40),
        ("protected", 15),
        ("suspended", 15),
        ("deactivated", 15),
        ("scrub_geo", 10),
        ("bounced", 5),
    ),
    "users": (("deleted", 35), ("suspended", 25), ("protected", 20), ("deactivated", 20)),
}


def _splitmix(value: int) -> int:
    z = (value + _FIBONACCI) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _pick_reason(job_type: str, bits: int) -> str:
    table = _REASONS[job_type]
    point = bits % sum(weight for _, weight in table)
    for reason, weight in table:
        if point < weight:
            return reason
        point -= weight
    raise AssertionError("unreachable: point is below the total weight")


def _format_time(ms: int, style: int) -> str:
    """The three timestamp forms seen in real result files: ``.000Z``, ``.421Z`` and ``+00:00``."""
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))  # 2x faster than datetime
    if style == 0:
        return base + ".000Z"
    if style == 1:
        return f"{base}.{ms % 1000:03d}Z"
    return base + "+00:00"


def deterministic_record(job_type: str, id_value: int) -> Record | None:
    """The result record of an ID under the built-in rule, or None when the ID is compliant.

    The first test is one multiply (Fibonacci hashing spreads sequential IDs evenly), because it runs for
    every uploaded ID; the flagged few then get reasons and timestamps from a stronger mix.
    """
    if ((id_value * _FIBONACCI) & _MASK64) >> 54 >= _FLAGGED_PER_1024:
        return None
    bits = _splitmix(id_value)
    reason = _pick_reason(job_type, bits & 0xFFFF)
    snowflake_ms = (id_value >> 22) + _TWITTER_EPOCH_MS
    if id_value >> 22 and snowflake_ms <= _LATEST_MS:
        created_ms = snowflake_ms
    else:  # not a snowflake (old IDs, most old user IDs): any plausible pre-2010 date
        low, high = _PRE_SNOWFLAKE_MS
        created_ms = low + (bits >> 16) % (high - low)
    style = (bits >> 48) % 3
    record: Record = {"id": str(id_value), "action": "scrub_geo" if reason == "scrub_geo" else "delete"}
    record["created_at"] = _format_time(created_ms, style)
    if (bits >> 56) % 8:  # redacted_at is optional in real files: leave it out of one line in eight
        redacted_ms = min(
            created_ms + _DAY_MS * (1 + (bits >> 20) % 1500) + (bits >> 8) % _DAY_MS, _LATEST_MS
        )
        record["redacted_at"] = _format_time(max(redacted_ms, created_ms), style)
    record["reason"] = reason
    return record


class ResultSource(Protocol):
    """Decides which IDs need action: a cheap vectorised pre-filter, then the record of each candidate."""

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask over ``ids`` (uint64) of those that may need action."""
        ...

    def record(self, job_type: str, id_value: int) -> Record | None:
        """The result record of one ID, or None when it is compliant."""
        ...


class RuleSource:
    """The built-in rule (:func:`deterministic_record`)."""

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        mixed = ids * np.uint64(_FIBONACCI)  # uint64 arithmetic wraps, as the rule's "& _MASK64" does
        return np.asarray((mixed >> np.uint64(54)) < _FLAGGED_PER_1024)

    def record(self, job_type: str, id_value: int) -> Record | None:
        return deterministic_record(job_type, id_value)


class GroundTruthSource:
    """Records from a JSONL file: ``id`` required; an optional ``type`` limits a record to ``tweets`` or
    ``users`` jobs; other fields are returned as written."""

    def __init__(self, path: Path) -> None:
        self._records: dict[tuple[str | None, int], Record] = {}
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                    id_value = int(str(record["id"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{path}:{number}: not a result record with a numeric id ({exc})"
                    ) from exc
                job_type = record.pop("type", None)
                record["id"] = str(id_value)
                self._records[(job_type, id_value)] = record
        self._ids = np.array(sorted({id_value for _, id_value in self._records}), dtype=np.uint64)

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self._ids)

    def record(self, job_type: str, id_value: int) -> Record | None:
        return self._records.get((job_type, id_value)) or self._records.get((None, id_value))


@dataclasses.dataclass(frozen=True)
class ProcessingOutcome:
    """What processing an upload found; the counts end up in the emulator's state."""

    ids: int  # valid ID lines, duplicates included
    invalid_lines: int
    blank_lines: int
    results: int


def parse_id_line(raw: bytes) -> int | None:
    """The ID on an upload line, or None when the line is not 1 to 19 ASCII digits (after trimming)."""
    text = raw.strip()
    if 0 < len(text) <= 19 and text.isdigit():
        return int(text)
    return None


def _parse_block(block: bytes) -> tuple[np.ndarray, int, int]:
    """The valid IDs in a block of whole lines, the number of blank lines, and the number of lines.

    Arrow's kernels do the per-line work on a view of the block (50 million lines in seconds, not
    minutes); a block that is not UTF-8 falls back to :func:`parse_id_line`, line by line.
    """
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n")) + 1
    if not len(ends) or ends[-1] != len(block):  # a last line without its newline
        ends = np.append(ends, len(block))
    offsets = np.concatenate(([0], ends)).astype(np.int32)  # blocks are far below 2 GiB
    lines = pa.Array.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    try:
        text = pc.utf8_trim_whitespace(lines.cast(pa.string()))
    except pa.ArrowInvalid:
        raw_lines = block.removesuffix(b"\n").split(b"\n")
        parsed = [value for value in map(parse_id_line, raw_lines) if value is not None]
        blank = sum(not line.strip() for line in raw_lines)
        return np.array(parsed, dtype=np.uint64), blank, len(raw_lines)
    blank = pc.sum(pc.equal(pc.utf8_length(text), 0)).as_py() or 0
    valid = pc.filter(text, pc.match_substring_regex(text, r"^[0-9]{1,19}$"))
    return pc.cast(valid, pa.uint64()).to_numpy(zero_copy_only=False), blank, len(ends)


def _line_blocks(path: Path, block_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    """The file in blocks of about ``block_size`` bytes cut at line ends (a leading UTF-8 BOM dropped)."""
    carry = b""
    with path.open("rb") as source:
        first = True
        while chunk := source.read(block_size):
            if first and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            first = False
            cut = chunk.rfind(b"\n") + 1
            if not cut:  # no line end yet: keep collecting
                carry += chunk
                continue
            yield carry + chunk[:cut]
            carry = chunk[cut:]
    if carry:
        yield carry


def process_upload(
    upload: Path,
    results: Path,
    ground_truth: Path,
    *,
    job_type: str,
    source: ResultSource,
    crlf: bool = False,
) -> ProcessingOutcome:
    """Stream ``upload`` and write one result line per distinct ID needing action.

    ``results`` is the file served for download; ``ground_truth`` gets the same records with plain ``\\n``
    endings and is never truncated by fault injection, so tests can compare against it.
    """
    ending = b"\r\n" if crlf else b"\n"
    seen: set[int] = set()
    ids = invalid = blank = 0
    with results.open("wb") as out, ground_truth.open("wb") as truth:
        for block in _line_blocks(upload):
            valid, blank_lines, lines = _parse_block(block)
            ids, blank = ids + len(valid), blank + blank_lines
            invalid += lines - blank_lines - len(valid)
            for id_value in valid[source.candidates(valid)].tolist():
                record = source.record(job_type, id_value)
                if record is None or id_value in seen:
                    continue
                seen.add(id_value)
                line = json.dumps(record, separators=(",", ":")).encode()
                out.write(line + ending)
                truth.write(line + b"\n")
    return ProcessingOutcome(ids=ids, invalid_lines=invalid, blank_lines=blank, results=len(seen))


def truncate_mid_line(path: Path) -> None:
    """Cut a results file inside a line, the way an interrupted writer would leave it.

    The cut falls just after a quote near the middle: a JSON object cut there is never complete.
    """
    with path.open("r+b") as handle:
        middle = path.stat().st_size // 2
        handle.seek(middle)
        quote = handle.read(4096).find(b'"')
        if quote >= 0:
            handle.truncate(middle + quote + 1)

"""Which uploaded IDs need action, and the result lines the emulator writes for them.

Results come from a ground-truth JSONL file when one is given, otherwise from a deterministic rule of the
ID, so a test can always know the right answer. Uploads are read in large blocks and results written per
block: nothing proportional to the upload is held in memory but one uint64 per distinct flagged ID (to
write each once).

The work is vectorised (numpy, Arrow kernels) because benchmarks push tens of millions of IDs through the
emulator, which must never be the bottleneck. Blocks are parsed and their result lines formatted in a few
threads (the kernels release the GIL); which IDs were already written, and the writing, stay in one thread
in upload order, so the output is that of a sequential pass. Python objects are never handed to pyarrow
(only buffers): converting them makes pyarrow import pandas, a slow import that would land on the first job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.concurrency import WORKERS, in_order
from airflow_provider_xcompliance.emulator.config import GEO_SCRUB_ACTIONS
from airflow_provider_xcompliance.results.schema import API_LINE_CLOSE, api_key_texts

Record = dict[str, Any]

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_FLAGGED_PER_1024 = 36  # about 3.5 % of IDs need action
_TWITTER_EPOCH_MS = 1288834974657
_LATEST_MS = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
_PRE_SNOWFLAKE_MS = (
    int(datetime(2007, 1, 1, tzinfo=timezone.utc).timestamp() * 1000),
    _TWITTER_EPOCH_MS,
)
_DAY_MS = 86_400_000
_MAX_DIGITS = 19
_BLOCK_BYTES = 8 * 1024 * 1024  # small enough to stay in the CPU caches (bench/README.md)
# Weighted reasons per job type. X's documentation shows geo scrubs as action "delete", reason "scrub_geo":
# the default; ``geo_scrub_action="scrub_geo"`` writes the action some other sources write.
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


def _bitmap(valid: np.ndarray | None) -> pa.Buffer | None:
    """An Arrow validity (or boolean) bitmap."""
    return None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _string_array(data: pa.Buffer | np.ndarray, offsets: np.ndarray) -> pa.StringArray:
    """String ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""
    buffers = [None, pa.py_buffer(offsets.astype(np.int32, copy=False)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.utf8(), len(offsets) - 1, buffers)


def _strings(values: Sequence[bytes]) -> pa.StringArray:
    """A small string array of constants (without ``pa.array``, which would import pandas)."""
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum([len(value) for value in values], out=offsets[1:])
    return _string_array(b"".join(values), offsets)


def _int64s(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Arrow int64s (``valid``: False marks a null, which an Arrow ``take`` turns into a null)."""
    data = pa.py_buffer(values.astype(np.int64))
    return pa.Array.from_buffers(pa.int64(), len(values), [_bitmap(valid), data])


def _uint8s(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(values)])


def _booleans(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, _bitmap(values)])


def _numeric_view(array: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """The values of a numeric Arrow array without nulls, as a numpy view."""
    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * size)


def _with_line_ends(lines: pa.StringArray, ending: pa.StringScalar) -> pa.Buffer:
    """All ``lines``, each followed by ``ending``, as one buffer to write."""
    joined = pc.binary_join_element_wise(lines, ending, _EMPTY)  # a new array: offsets start at 0
    end = int(np.frombuffer(joined.buffers()[1], np.int32, 1, len(joined) * 4)[0])
    return joined.buffers()[2][:end]


_EMPTY, _LF, _CRLF = _strings([b"", b"\n", b"\r\n"])
_SKIP_NULLS = pc.JoinOptions(null_handling="skip")


def _fixed_strings(rows: np.ndarray) -> pa.StringArray:
    """The rows of a uint8 matrix as strings."""
    count, width = rows.shape
    return _string_array(np.ascontiguousarray(rows).ravel(), np.arange(count + 1) * width)


def _clock_table() -> pa.StringArray:
    """``THH:MM:SS`` for every second of a day."""
    pairs = np.frombuffer("".join(f"{i:02d}" for i in range(60)).encode(), np.uint8).reshape(60, 2)
    seconds = np.arange(86400)
    rows = np.tile(np.frombuffer(b"T00:00:00", np.uint8), (86400, 1))
    rows[:, 1:3], rows[:, 4:6], rows[:, 7:9] = (
        pairs[seconds // 3600],
        pairs[seconds // 60 % 60],
        pairs[seconds % 60],
    )
    return _fixed_strings(rows)


# Timestamps are put together from tables by Arrow ``take``s (far cheaper than formatting each):
# every date the rule can produce (2007 to 2026), every time of day, every ending of the three forms.
_FIRST_DAY = _PRE_SNOWFLAKE_MS[0] // _DAY_MS
_DATES = _fixed_strings(
    np.datetime_as_string(np.arange(_FIRST_DAY, _LATEST_MS // _DAY_MS + 1).astype("datetime64[D]"))
    .astype("S10")
    .view(np.uint8)
    .reshape(-1, 10)
)
_CLOCK = _clock_table()
_UTC_OFFSET = 1000
_ENDINGS = _strings([f".{ms:03d}Z".encode() for ms in range(1000)] + [b"+00:00"])


def _timestamp(ms: np.ndarray, style: np.ndarray, valid: np.ndarray | None = None) -> list[pa.StringArray]:
    """The three timestamp forms seen in real result files, ``.000Z`` (style 0), ``.421Z`` (1) and
    ``+00:00`` (2), as the parts to join: date, time of day, ending (null where ``valid`` is False)."""
    seconds = ms // 1000
    ending = np.where(style == 2, _UTC_OFFSET, np.where(style == 1, ms % 1000, 0))
    return [
        _DATES.take(_int64s(seconds // 86400 - _FIRST_DAY, valid)),
        _CLOCK.take(_int64s(seconds % 86400, valid)),
        _ENDINGS.take(_int64s(ending, valid)),
    ]


def _splitmix(values: np.ndarray) -> np.ndarray:
    z = values + _FIBONACCI  # uint64 arithmetic wraps, as the 64-bit mix needs
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_KEYS = api_key_texts()  # the API's line layout, as the converter's fast path expects it


class _RuleTable:
    """One job type's reasons, and the constant parts of its lines between the variable ones."""

    def __init__(self, reasons: tuple[tuple[str, int], ...], geo_action: str) -> None:
        self.bounds = np.cumsum([weight for _, weight in reasons])
        actions = [geo_action if reason == "scrub_geo" else "delete" for reason, _ in reasons]
        self.after_id = _strings([_KEYS["action"] + a.encode() + _KEYS["created_at"] for a in actions])
        self.tail = _strings([_KEYS["reason"] + reason.encode() + API_LINE_CLOSE for reason, _ in reasons])


_RULE_TABLES = {
    (job_type, geo_action): _RuleTable(reasons, geo_action)
    for job_type, reasons in _REASONS.items()
    for geo_action in GEO_SCRUB_ACTIONS
}
_ID_OPEN = _strings([_KEYS["id"]])[0]
_REDACTED_OPEN = _strings([_KEYS["redacted_at"]])


def _is_flagged(ids: np.ndarray) -> np.ndarray:
    """One multiply per ID (Fibonacci hashing spreads sequential IDs evenly): this runs for every ID."""
    return np.asarray((ids * _FIBONACCI >> np.uint64(54)) < _FLAGGED_PER_1024)


def _rule_lines(job_type: str, ids: np.ndarray, geo_action: str = "delete") -> pa.StringArray:
    """The result lines of flagged ``ids`` (uint64): reasons and timestamps from a stronger mix of the ID.

    Snowflake IDs get their own creation time; others (old IDs, most old user IDs) any pre-2010 date; so
    every date lies between 2007 and 2026. ``redacted_at`` is optional in real files: one line in eight
    leaves it out.
    """
    table = _RULE_TABLES[(job_type, geo_action)]
    bits = _splitmix(ids)
    reason = _int64s(
        np.searchsorted(table.bounds, (bits & np.uint64(0xFFFF)) % np.uint64(table.bounds[-1]), "right")
    )
    high = (ids >> np.uint64(22)).astype(np.int64)
    snowflake_ms = high + _TWITTER_EPOCH_MS
    low, top = _PRE_SNOWFLAKE_MS
    created = np.where(
        (high != 0) & (snowflake_ms <= _LATEST_MS),
        snowflake_ms,
        low + ((bits >> np.uint64(16)) % np.uint64(top - low)).astype(np.int64),
    )
    style = (bits >> np.uint64(48)) % np.uint64(3)
    later = _DAY_MS * (1 + ((bits >> np.uint64(20)) % np.uint64(1500)).astype(np.int64))
    redacted = np.minimum(
        created + later + ((bits >> np.uint64(8)) % np.uint64(_DAY_MS)).astype(np.int64), _LATEST_MS
    )
    has_redacted = (bits >> np.uint64(56)) % np.uint64(8) != 0
    id_text = pa.Array.from_buffers(pa.uint64(), len(ids), [None, pa.py_buffer(ids)]).cast(pa.string())
    return pc.binary_join_element_wise(
        _ID_OPEN,
        id_text,
        table.after_id.take(reason),
        *_timestamp(created, style),
        _REDACTED_OPEN.take(_int64s(np.zeros(len(ids)), has_redacted)),
        *_timestamp(np.maximum(redacted, created), style, has_redacted),
        table.tail.take(reason),
        _EMPTY,
        options=_SKIP_NULLS,
    )


def deterministic_records(job_type: str, ids: Iterable[int]) -> list[Record]:
    """The result records of those ``ids`` that need action under the built-in rule, in order."""
    values = np.fromiter(ids, np.uint64)
    lines = _rule_lines(job_type, values[_is_flagged(values)])
    return [json.loads(line) for line in lines.to_pylist()]


def deterministic_record(job_type: str, id_value: int) -> Record | None:
    """The result record of an ID under the built-in rule, or None when the ID is compliant."""
    return next(iter(deterministic_records(job_type, [id_value])), None)


class ResultSource(Protocol):
    """Decides which IDs need action: a cheap vectorised pre-filter, then the lines of the candidates.

    Both methods are called from several threads at once, so they must not change the source.
    """

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask over ``ids`` (uint64) of those that may need action."""
        ...

    def lines(self, job_type: str, ids: np.ndarray) -> pa.StringArray:
        """The result lines (JSON, no line ending) of those candidates ``ids`` that need action, in order."""
        ...


class RuleSource:
    """The built-in rule (:func:`deterministic_records`): every candidate needs action. Geo scrubs carry
    ``geo_scrub_action`` (``delete`` by default, as X's documentation shows)."""

    def __init__(self, geo_scrub_action: str = "delete") -> None:
        if geo_scrub_action not in GEO_SCRUB_ACTIONS:
            raise ValueError(f"geo_scrub_action must be one of {GEO_SCRUB_ACTIONS}, not {geo_scrub_action!r}")
        self.geo_scrub_action = geo_scrub_action

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        return _is_flagged(ids)

    def lines(self, job_type: str, ids: np.ndarray) -> pa.StringArray:
        return _rule_lines(job_type, ids, self.geo_scrub_action)


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

    def lines(self, job_type: str, ids: np.ndarray) -> pa.StringArray:
        records = (self.record(job_type, id_value) for id_value in ids.tolist())
        return _strings([json.dumps(r, separators=(",", ":")).encode() for r in records if r is not None])


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
    if 0 < len(text) <= _MAX_DIGITS and text.isdigit():
        return int(text)
    return None


def _parse_block(block: memoryview) -> tuple[np.ndarray, int, int]:
    """The valid IDs in a block of whole lines, the number of blank lines, and the number of lines."""
    return _parse_plain_block(block) or _parse_any_block(bytes(block))


def _parse_plain_block(block: memoryview) -> tuple[np.ndarray, int, int] | None:
    """The common case, in a few passes over the bytes: only digits and ``\\n`` or ``\\r\\n`` line ends,
    no line over 19 digits. None for any other block."""
    data = np.frombuffer(block, np.uint8)
    if not len(data) or data.max() > ord("9"):
        return None
    digit = data >= ord("0")
    digits = np.count_nonzero(digit)
    line_ends = np.flatnonzero(data == ord("\n"))
    separators = np.arange(len(line_ends))  # before each line end, once the digits are packed together
    if digits + len(line_ends) != len(data):  # \r\n line ends, or any other byte below "0"
        carriage_return = data[np.maximum(line_ends - 1, 0)] == ord("\r")
        separators += np.cumsum(carriage_return)
        if digits + len(line_ends) + np.count_nonzero(carriage_return) != len(data):
            return None
    ends = line_ends - separators
    if data[-1] != ord("\n"):  # a last line without its newline
        ends = np.append(ends, digits)
    offsets = np.concatenate(([0], ends)).astype(np.int32)  # blocks are far below 2 GiB
    lengths = np.diff(offsets)
    if lengths.max() > _MAX_DIGITS:
        return None
    blank = np.count_nonzero(lengths == 0)
    if blank:
        offsets = np.concatenate(([0], offsets[1:][lengths > 0]))
    packed = _uint8s(data).filter(_booleans(digit))  # Arrow filters bytes faster than numpy
    ids = _string_array(packed.buffers()[1], offsets).cast(pa.uint64())
    return _numeric_view(ids, np.uint64), int(blank), len(lengths)


def _parse_any_block(block: bytes) -> tuple[np.ndarray, int, int]:
    """Any block: Arrow's string kernels trim and match every line; a block that is not UTF-8 falls back
    to :func:`parse_id_line`, line by line."""
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n")) + 1
    if not len(ends) or ends[-1] != len(block):  # a last line without its newline
        ends = np.append(ends, len(block))
    lines = _string_array(block, np.concatenate(([0], ends))).view(pa.binary())
    try:
        text = pc.utf8_trim_whitespace(lines.cast(pa.string()))
    except pa.ArrowInvalid:
        raw_lines = block.removesuffix(b"\n").split(b"\n")
        parsed = [value for value in map(parse_id_line, raw_lines) if value is not None]
        blank = sum(not line.strip() for line in raw_lines)
        return np.array(parsed, dtype=np.uint64), blank, len(raw_lines)
    blank = int(np.count_nonzero(_numeric_view(pc.binary_length(text), np.int32) == 0))
    valid = text.filter(pc.match_substring_regex(text, r"^[0-9]{1,19}$"))
    return _numeric_view(valid.cast(pa.uint64()), np.uint64), blank, len(ends)


def _line_blocks(path: Path, block_size: int, buffers: int = 1) -> Iterator[memoryview]:
    """The file in blocks of up to ``block_size`` bytes cut at line ends (a leading UTF-8 BOM dropped).

    ``buffers`` buffers are read into in turn and reused, so each block stays valid until ``buffers`` more
    are asked for (blocks parsed in parallel each need their own).
    """
    ring = [bytearray(block_size)]
    turn = 0
    buffer = ring[0]
    held = 0  # the start of a line that continues in the next read
    first = True
    with path.open("rb", buffering=0) as source:
        while read := source.readinto(memoryview(buffer)[held:]):
            filled = held + read
            if first and buffer.startswith(b"\xef\xbb\xbf"):
                buffer[: filled - 3] = buffer[3:filled]
                filled -= 3
            first = False
            cut = buffer.rfind(b"\n", 0, filled) + 1
            if cut:
                yield memoryview(buffer)[:cut]
                turn = (turn + 1) % buffers
                if turn == len(ring):
                    ring.append(bytearray(len(buffer)))
                elif len(ring[turn]) < len(buffer):  # this one grew for a long line: the next must hold it
                    ring[turn] = bytearray(len(buffer))
                ring[turn][: filled - cut] = buffer[cut:filled]
                buffer = ring[turn]
            elif filled == len(buffer):  # one line longer than the buffer
                # a new object: the last block may still be in use
                buffer = ring[turn] = buffer + bytes(len(buffer))
            held = filled - cut
    if held:
        yield memoryview(buffer)[:held]


class _FirstSeen:
    """The IDs written so far, 8 bytes each (only flagged IDs come here), so that each is written once.

    Kept as sorted runs, merged when one is not much larger than the next (a log-structured merge): one
    sorted array grown in place would copy all of it for every block.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def unseen(self, unique: np.ndarray) -> np.ndarray:
        """A mask over ``unique`` (sorted, distinct) of the IDs not seen before; all are seen from now on."""
        unseen = np.ones(len(unique), bool)
        for run in self._runs:
            unseen &= run[np.searchsorted(run, unique).clip(max=len(run) - 1)] != unique
        if unseen.any():
            self._runs.append(unique[unseen])
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate((self._runs[-1], last)))
        return unseen


_Results = tuple[int, pa.Buffer, pa.Buffer]
"""The number of result lines; the lines for the ground truth (``\\n``) and as served (CRLF if asked)."""


@dataclasses.dataclass(frozen=True)
class _Block:
    """One block's share of the work that does not depend on the blocks before it."""

    ids: int
    blank: int
    invalid: int
    flagged: np.ndarray  # the candidates, in upload order
    unique: np.ndarray  # the distinct candidates, sorted
    first: np.ndarray  # where each of ``unique`` first appears in ``flagged``
    results: _Results | None  # the results of all candidates (None: no candidate)


# Odd timestamps, one form per line in turn: null, a number, junk, an impossible instant, nanoseconds.
_ODD_CREATED_AT = [
    '"created_at":null',
    '"created_at":1571000000',
    '"created_at":"yesterday"',
    '"created_at":"2019-13-45T25:61:61.000Z"',
    '"created_at":"2019-10-29T17:02:47.123456789Z"',
]
_ODD_EVERY = 4  # one result line in four gets an odd or missing timestamp


def odd_timestamps(records: pa.StringArray, style: str) -> pa.StringArray:
    """``records`` with one line in four given a missing (``style="missing"``: no ``created_at`` key) or
    an odd ``created_at`` (``"odd"``); ``"api"`` leaves them as the API writes them."""
    if style == "api" or not len(records):
        return records
    index = np.arange(len(records))
    chosen = index % _ODD_EVERY == 0
    if style == "missing":
        return pc.if_else(
            _booleans(chosen), pc.replace_substring_regex(records, '"created_at":"[^"]*",', ""), records
        )
    variant = index // _ODD_EVERY % len(_ODD_CREATED_AT)
    for number, text in enumerate(_ODD_CREATED_AT):
        odd = pc.replace_substring_regex(records, '"created_at":"[^"]*"', text)
        records = pc.if_else(_booleans(chosen & (variant == number)), odd, records)
    return records


def _results(records: pa.StringArray, crlf: bool, timestamps: str = "api") -> _Results:
    records = odd_timestamps(records, timestamps)
    truth = _with_line_ends(records, _LF)
    return len(records), truth, _with_line_ends(records, _CRLF) if crlf else truth


def _block_work(
    block: memoryview, job_type: str, source: ResultSource, crlf: bool, timestamps: str
) -> _Block:
    """Parse a block and format the lines of its candidates (needed, but for repeats of earlier blocks)."""
    valid, blank, lines = _parse_block(block)
    flagged = valid[source.candidates(valid)]
    unique, first = np.unique(flagged, return_index=True)
    candidates = source.lines(job_type, flagged[np.sort(first)]) if len(unique) else None
    results = None if candidates is None else _results(candidates, crlf, timestamps)
    return _Block(len(valid), blank, lines - blank - len(valid), flagged, unique, first, results)


def process_upload(
    upload: Path,
    results: Path,
    ground_truth: Path,
    *,
    job_type: str,
    source: ResultSource,
    crlf: bool = False,
    timestamps: str = "api",
    block_size: int = _BLOCK_BYTES,
) -> ProcessingOutcome:
    """Stream ``upload`` and write one result line per distinct ID needing action.

    ``results`` is the file served for download; ``ground_truth`` gets the same records with plain ``\\n``
    endings and is never truncated by fault injection, so tests can compare against it. ``timestamps``:
    see :func:`odd_timestamps` (the ground truth holds the same odd lines: they are what X sent).
    """
    seen = _FirstSeen()
    ids = invalid = blank = written = 0
    work = partial(_block_work, job_type=job_type, source=source, crlf=crlf, timestamps=timestamps)
    # each block in flight (the one awaited and WORKERS more) reads into its own buffer
    blocks = _line_blocks(upload, block_size, buffers=WORKERS + 1)
    with (
        ThreadPoolExecutor(WORKERS, thread_name_prefix="emulator-results") as pool,
        results.open("wb") as out,
        ground_truth.open("wb") as truth,
    ):
        for _, part in in_order(pool, ((None, partial(work, block)) for block in blocks), WORKERS):
            ids, blank, invalid = ids + part.ids, blank + part.blank, invalid + part.invalid
            unseen = seen.unseen(part.unique)
            if part.results is not None and unseen.all():
                records, truth_lines, served = part.results
            elif unseen.any():  # repeats of IDs written for earlier blocks: the rest, in order of first sight
                fresh = part.flagged[np.sort(part.first[unseen])]
                records, truth_lines, served = _results(source.lines(job_type, fresh), crlf, timestamps)
            else:
                continue
            written += records
            truth.write(truth_lines)
            out.write(served)
    return ProcessingOutcome(ids=ids, invalid_lines=invalid, blank_lines=blank, results=written)


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

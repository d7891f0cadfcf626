"""The general path: lines in any shape, read by pyarrow's JSON reader, and line by line through Python
when the reader refuses a block.

Returns the line fields as strings (typing them is :mod:`.validate`'s job). A line that is not one JSON
object with a readable id and action field becomes a reject reason here; its verdict depends on its bytes
alone.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL
from airflow_provider_xcompliance.results.read import Block
from airflow_provider_xcompliance.results.schema import API_LINE_KEYS

__all__ = ["GeneralRows", "as_array", "lines_array", "parse_general", "read_json", "selected_lines"]

_Text = bytes | bytearray  # lines the general path slices and strips

_JSON_STARTS = frozenset(bytes([byte]) for byte in b'{["-0123456789tfn')
_JSON_WORDS = frozenset((b"true", b"false", b"null"))
_PYTHON_NESTING = 500  # brackets a line may hold for Python's parser, well inside its recursion limit
_STRING_SCHEMA = pa.schema([(name, pa.string()) for name in API_LINE_KEYS])
_PARSE_OPTIONS = pj.ParseOptions(
    explicit_schema=_STRING_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False
)

# One flat JSON object per line whose values are strings or null: pyarrow parses such lines into exactly one
# row each with the all-string schema. Anything else goes through Python, line by line.
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_MEMBER = rf"{_JSON_STRING}[ \t]*:[ \t]*(?:{_JSON_STRING}|null)"
_FLAT_OBJECT = rf"^[ \t]*\{{[ \t]*(?:{_MEMBER}[ \t]*(?:,[ \t]*{_MEMBER}[ \t]*)*)?\}}[ \t\r]*\n$"


@dataclasses.dataclass
class GeneralRows:
    """What the general path made of a block's lines."""

    table: pa.Table  # the line fields as strings, one row per line read
    lines: np.ndarray  # each row's line index in the block
    rejects: list[tuple[int, str]]  # (line index, reason) of the lines no row was read from
    blank: int
    by_python: int  # non-blank lines that went through Python one by one (read or rejected)


def as_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous array: several pyarrow constructors take a slow per-value path for chunked input."""
    return (
        column.combine_chunks(memory_pool=WORKER_MEMORY_POOL)
        if isinstance(column, pa.ChunkedArray)
        else column
    )


def read_json(data: _Text | pa.Buffer) -> pa.Table:
    """The line fields of every line of ``data`` as strings; raises when pyarrow cannot read a line."""
    options = pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 16) + 1)
    table = pj.read_json(
        pa.BufferReader(data),
        read_options=options,
        parse_options=_PARSE_OPTIONS,
        memory_pool=WORKER_MEMORY_POOL,
    )
    if not (isinstance(data, (bytes, bytearray)) and data.isascii()):  # ASCII is valid UTF-8: no check
        # the reader lets invalid UTF-8 through, even in keys it ignores: these raise ArrowInvalid instead
        offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)]).cast(
            pa.large_string()
        )
        table.validate(full=True)
    return table


def _normalise_line(raw: _Text) -> bytes | str:
    """One odd line, rewritten as a flat all-string JSON object, or the reason it is rejected."""
    text = raw.strip(b" \t\r\n")
    if text.startswith(b"{") and not text.endswith(b"}"):  # an object that does not end: cut off
        return "malformed_json"
    if text[:1] not in _JSON_STARTS or (text[:1] in b"tfn" and text not in _JSON_WORDS):
        return "malformed_json"  # no JSON text starts so: decided without raising a decode error
    if raw.count(b"[") + raw.count(b"{") > _PYTHON_NESTING:  # by its bytes alone: never a RecursionError
        return _deep_line(raw)
    try:
        obj = json.loads(raw)
    except ValueError:
        return "malformed_json"
    if not isinstance(obj, dict):
        return "not_an_object"
    record: dict[str, str | None] = {}
    for name in API_LINE_KEYS:
        value = obj.get(name)
        if name == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            if name in ("id", "action"):
                return f"invalid_{name}"
            value = json.dumps(value)  # text: an odd timestamp becomes null, an odd reason stays readable
        record[name] = _storable(value)
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _storable(value: str | None) -> str | None:
    """The value as text a warehouse can store: a lone surrogate escape ("\\udcff") becomes U+FFFD."""
    if value is None:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _deep_line(raw: _Text) -> bytes | str:
    """A line that may nest too deep for Python: the row pyarrow reads from it (its reader has no depth
    limit, and takes only string values for the fields read), or a reject."""
    try:
        table = read_json(bytes(raw.strip(b" \t\r\n")) + b"\n")
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return "too_deep"
    if table.num_rows != 1:
        return "malformed_json"
    return json.dumps({name: _storable(table[name][0].as_py()) for name in API_LINE_KEYS}).encode() + b"\n"


def _line_ends(block: _Text, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each line's first byte and its last before the line end (\\n or \\r\\n): two lookups a line."""
    data = np.frombuffer(block, np.uint8)
    starts, last = offsets[:-1], offsets[1:] - 2  # the byte before each newline
    closing = data[last]
    closing = np.where((closing == 13) & (last > starts), data[np.maximum(last - 1, 0)], closing)
    return np.where(last >= starts, data[starts], 10), np.where(last >= starts, closing, 10)


def _braced_lines(block: _Text, offsets: np.ndarray, lines: pa.BinaryArray) -> np.ndarray:
    """Lines that start with ``{`` and end with ``}``."""
    opening, closing = _line_ends(block, offsets)
    return (opening == ord("{")) & (closing == ord("}")) & (offsets[1:] - offsets[:-1] > 2)


def _cut_objects(block: _Text, offsets: np.ndarray) -> np.ndarray:
    """Lines that open an object but end in neither ``}`` nor whitespace: never JSON (a cut-off line)."""
    opening, closing = _line_ends(block, offsets)
    return (opening == ord("{")) & (closing != ord("}")) & (closing != ord(" ")) & (closing != ord("\t"))


def _flat_object_lines(block: _Text, offsets: np.ndarray, lines: pa.BinaryArray) -> np.ndarray:
    """Lines that are one flat object of string/null values: exactly what parses to one row each."""
    return pc.match_substring_regex(lines, _FLAT_OBJECT).to_numpy(zero_copy_only=False)


def _no_lines(block: _Text, offsets: np.ndarray, lines: pa.BinaryArray) -> np.ndarray:
    return np.zeros(len(lines), bool)


@dataclasses.dataclass
class _LineByLine:
    """The lines of a block a classifier did not pass, each normalised through Python or rejected."""

    rejects: list[tuple[int, str]]
    blank: int
    by_python: int
    normalised_at: list[int]
    normalised: list[bytes]


def _through_python(block: _Text, offsets: np.ndarray, lines: np.ndarray, cut: np.ndarray) -> _LineByLine:
    """Normalise or reject each of ``lines`` (indexes) through Python; the ``cut`` lines are rejects."""
    done = _LineByLine([(index, "malformed_json") for index in np.flatnonzero(cut).tolist()], 0, 0, [], [])
    done.by_python = len(done.rejects)
    for index in lines.tolist():
        raw = block[offsets[index] : offsets[index + 1]]
        if not raw.strip(b" \t\r\n"):
            done.blank += 1
            continue
        done.by_python += 1
        result = _normalise_line(raw)
        if isinstance(result, str):
            done.rejects.append((index, result))
        else:
            done.normalised_at.append(index)
            done.normalised.append(result)
    return done


def _parse_line_by_line(block: _Text, offsets: np.ndarray) -> GeneralRows:
    """The rows of a block holding odd lines: lines a classifier passes go to pyarrow as they are; the
    others go through Python, one by one.

    The first, cheap classifier catches truncated and garbage lines; if pyarrow still fails, a strict regex
    classifies every line; if even that fails (invalid UTF-8, a duplicate key), every line goes through
    Python.
    """
    count = len(offsets) - 1
    lines = lines_array(block, offsets)
    cut = _cut_objects(block, offsets)
    for classify in (_braced_lines, _flat_object_lines, _no_lines):
        good = classify(block, offsets, lines)
        done = _through_python(block, offsets, np.flatnonzero(~good & ~cut), cut)
        good[done.normalised_at] = True
        chosen = lines
        if done.normalised:
            mask = np.zeros(count, bool)
            mask[done.normalised_at] = True
            chosen = pc.replace_with_mask(lines, pa.array(mask), pa.array(done.normalised, pa.binary()))
        rows = np.flatnonzero(good)
        found = GeneralRows(_STRING_SCHEMA.empty_table(), rows, done.rejects, done.blank, done.by_python)
        if not len(rows):
            return found
        data, _ = selected_lines(chosen.filter(pa.array(good)))
        try:
            found.table = read_json(data)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            continue
        if found.table.num_rows == len(rows):  # else a line held two objects: classify more strictly
            return found
    raise AssertionError("normalised lines must parse one row each")  # pragma: no cover


def lines_array(block: Block | pa.Buffer, offsets: np.ndarray) -> pa.BinaryArray:
    """The block's lines (newline included) as one binary array over the block's own bytes: no copy."""
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    return pa.BinaryArray.from_buffers(pa.binary(), len(offsets) - 1, buffers)


def selected_lines(lines: pa.ChunkedArray | pa.Array) -> tuple[pa.Buffer, np.ndarray]:
    """The bytes and line offsets (from 0) of a (filtered) line array: a block of just those lines."""
    lines = as_array(lines)
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset * 4)
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])], offsets - offsets[0]


def parse_general(block: _Text, offsets: np.ndarray) -> GeneralRows:
    """Any lines: the whole block in one read when every line starts an object, else line by line."""
    data = np.frombuffer(block, np.uint8)
    count = len(offsets) - 1
    if data[0] == ord("{") and (data[offsets[1:-1]] == ord("{")).all():  # every line starts an object
        try:
            table = read_json(block)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            table = None
        if table is not None and table.num_rows == count:  # else two objects on one line: find which
            return GeneralRows(table, np.arange(count), [], 0, 0)
    return _parse_line_by_line(block, offsets)

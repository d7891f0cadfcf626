"""The converter's fast path: result lines in the exact shape the API writes, typed straight from the bytes.

The API writes every line as ``{"id":"…","action":"…","created_at":"…","redacted_at":"…","reason":"…"}``
(``redacted_at`` optional), keys in that order, no spaces. Reading such lines with a JSON or CSV parser and
then casting the text is the converter's largest cost. Here the bytes around each field are gathered once
per line (a gather costs the same for 8 or 64 bytes), read as 8-byte words and decoded with integer
operations on eight bytes at a time (SWAR), vectorised over a block with numpy: no scan for quotes, no copy
of any value (bench/README.md has the figures).

A line is taken only when it is provably the JSON the general path would read the same way. Every byte of
the line is accounted for, left to right: ``{"id":"``, 1-19 digits, ``","action":"``, 1-16 bytes up to the
next quote, ``","created_at":"``, a timestamp, optionally ``","redacted_at":"`` and a timestamp,
``","reason":"``, 1-16 bytes up to the next quote, ``"}`` and the line end. No value can hold a quote, a
control byte, a backslash (an escape) or a byte outside ASCII (nothing to decode), so the line is one JSON
object with exactly these keys and string values. Each value also parses under a rule stricter than the
general path's: ids within int64 for int64 ids (no leading zero for string ids), and timestamps
``YYYY-MM-DDTHH:MM:SS`` + ``Z``, ``.mmmZ`` or ``+00:00`` of real instants in 1900-2199. Every other line
is left to the general path, which decides what it is, so the two paths agree on every line.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pyarrow as pa

from airflow_provider_xcompliance.results.read import Block
from airflow_provider_xcompliance.results.schema import (
    API_LINE_CLOSE,
    API_LINE_KEYS,
    TIMESTAMP,
    IdType,
    api_key_texts,
    row_schema,
)

__all__ = ["FastRows", "parse_api_lines"]

_U64 = np.uint64
_ALL = (1 << 64) - 1
_ZEROS = _U64(0x3030303030303030)  # eight ASCII "0"
_HIGH_BITS = _U64(0x8080808080808080)
_INT64_MAX = _U64(2**63 - 1)
_MS_PER_DAY = 86_400_000
_MAX_TEXT = 16  # bytes of an action or reason here (two words)
_MAX_VALUES = 64  # distinct actions or reasons per block here; lines with more take the general path
_READ_AHEAD = 64  # no window reaches further past the end of a line that has the shape
# _HIGH_BYTES[c] keeps a word's c high bytes, the last c in memory (where a right-aligned value is);
# _LOW_BYTES[c] its c low bytes, the first c in memory (a left-aligned value).
_HIGH_BYTES = np.array([_ALL ^ ((1 << (8 * (8 - c))) - 1) for c in range(9)], np.uint64)
_LOW_BYTES = np.array([(1 << (8 * c)) - 1 for c in range(9)], np.uint64)


@dataclasses.dataclass
class FastRows:
    """Typed rows of the lines the fast path took, and those lines' indexes in the block."""

    table: pa.Table  # in :func:`~.schema.row_schema`
    lines: np.ndarray


def _word(text: bytes) -> np.uint64:
    return _U64(int.from_bytes(text.ljust(8, b"\0")[:8], "little"))


def _starts_with(words: np.ndarray, text: bytes) -> np.ndarray:
    """Whether the values of ``words`` (k words x n values) begin with ``text``."""
    ok = np.ones(words.shape[1], bool)
    for row, start in enumerate(range(0, len(text), 8)):
        piece = text[start : start + 8]
        ok &= (words[row] & _LOW_BYTES[len(piece)]) == _word(piece)
    return ok


def _shifted(words: np.ndarray, skip: int) -> np.ndarray:
    """The values of ``words`` (k x n) from byte ``skip`` (0-7) on, as k - 1 words."""
    bits = _U64(8 * skip)
    return (words[:-1] >> bits) | (words[1:] << (_U64(64) - bits)) if skip else words[:-1]


def _first_flagged(flags: np.ndarray) -> np.ndarray:
    """Per value of ``flags`` (k words x n values, bytes 0x80 or 0), the index of its first flagged byte;
    8 k if none."""
    first = np.zeros(flags.shape[1], np.uint8)
    for row in reversed(range(len(flags))):
        word = flags[row]
        # the bits below the lowest set one (bit 8 i + 7 of byte i), or 64 for none: // 8 gives i, or 8
        index = np.bitwise_count((word & -word) - _U64(1)) >> np.uint8(3)
        first = index + (index == 8) * first  # uint8 arithmetic: 8 k < 256
    return first.astype(np.int64)


def _non_digits(words: np.ndarray) -> np.ndarray:
    """0x80 in each byte that is not an ASCII digit (no carry between bytes)."""
    x = words ^ _ZEROS
    return (((x & _U64(0x7F7F7F7F7F7F7F7F)) + _U64(0x7676767676767676)) | x) & _HIGH_BITS


def _quotes(words: np.ndarray) -> np.ndarray:
    """0x80 at least in the first byte that is a quote (exact for the first one, which is all we need)."""
    x = words ^ _U64(0x2222222222222222)
    return (x - _U64(0x0101010101010101)) & ~x & _HIGH_BITS


def _digit_values(words: np.ndarray, mask: np.ndarray | np.uint64) -> np.ndarray:
    """Digits in ``mask`` as their values, 0 elsewhere (the caller knows they are digits)."""
    return ((words & mask) | (_ZEROS & ~mask)) - _ZEROS


def _eight_digits(values: np.ndarray) -> np.ndarray:
    """Eight digit values, one a byte, most significant first in memory, as one number (SWAR)."""
    values = _pairs(values)
    values = (values * _U64(100) + (values >> _U64(16))) & _U64(0x0000FFFF0000FFFF)
    return (values * _U64(10000) + (values >> _U64(32))) & _U64(0xFFFFFFFF)


def _pairs(values: np.ndarray) -> np.ndarray:
    """Digit values in byte pairs (0,1), (2,3), ... as two-digit numbers in bytes 0, 2, 4, 6."""
    return (values * _U64(10) + (values >> _U64(8))) & _U64(0x00FF00FF00FF00FF)


def _byte_at(values: np.ndarray, byte: int) -> np.ndarray:
    return (values >> _U64(8 * byte)) & _U64(0xFF)


class _Template:
    """The layout of eight bytes: ``9`` a digit, ``?`` any byte, any other byte itself."""

    def __init__(self, text: bytes) -> None:
        self.fixed = _U64(sum(0xFF << (8 * i) for i, byte in enumerate(text) if byte not in b"9?"))
        self.value = _word(bytes(byte if byte not in b"9?" else 0 for byte in text))
        self.digits = _U64(sum(0xFF << (8 * i) for i, byte in enumerate(text) if byte == ord("9")))

    def fits(self, words: np.ndarray, non_digits: np.ndarray) -> np.ndarray:
        """Whether ``words`` (with their :func:`_non_digits` flags) have this layout."""
        return ((non_digits & self.digits) == 0) & ((words & self.fixed) == self.value)


# A timestamp is four words: YYYY-MM-, DDThh:mm, then by its 20th byte one of three forms, each
# (length, its third word with the closing quote where it falls there, what the fourth word starts with).
_FORMS = {
    ord("Z"): (20, _Template(b':99Z"???'), b""),
    ord("."): (24, _Template(b":99.999Z"), b'"'),
    ord("+"): (25, _Template(b":99+00:0"), b'0"'),
}
_WITH_MILLIS = ord(".")
_DATE = _Template(b"9999-99-")
_CLOCK = _Template(b"99T99:99")
_SECONDS_DIGITS = _Template(b"?99?999?").digits  # :ss.fff (fff means something only in the .fff form)
# Days since 1970-01-01 at the start of each month of 1900-2199, and each month's length.
_FIRST_YEAR, _YEARS = 1900, 300
_MONTH_STARTS = np.array(
    [(date(_FIRST_YEAR + m // 12, m % 12 + 1, 1) - date(1970, 1, 1)).days for m in range(12 * _YEARS + 1)],
    np.int64,
)
_MONTH_DAYS = np.diff(_MONTH_STARTS)


def _matches(words: np.ndarray, template: _Template) -> tuple[np.ndarray, np.ndarray]:
    """(whether ``words`` fit ``template``, their digit values: 0 outside its digits)."""
    return template.fits(words, _non_digits(words)), _digit_values(words, template.digits)


def _timestamps(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whether the values starting at ``words`` (4 x n) are accepted timestamps of real instants followed
    by their closing quote, their lengths, their milliseconds since the epoch)."""
    date_ok, date_digits = _matches(words[0], _DATE)
    clock_ok, clock = _matches(words[1], _CLOCK)
    seconds = _digit_values(words[2], _SECONDS_DIGITS)  # a borrow from a non-digit byte only runs upward
    non_digits = _non_digits(words[2])
    form = _byte_at(words[2], 3)
    ok = np.zeros(len(form), bool)
    length = np.zeros(len(form), np.int64)
    millis = np.zeros(len(form), np.uint64)
    for byte, (size, third, fourth) in _FORMS.items():
        this = form == _U64(byte)
        if not this.any():
            continue
        fits = third.fits(words[2], non_digits) & ((words[3] & _LOW_BYTES[len(fourth)]) == _word(fourth))
        ok |= this & fits
        length += this * size
        if byte == _WITH_MILLIS:  # :ss.fff -> pairs ss, 0f, ff
            fraction = _pairs(seconds >> _U64(8))
            millis = np.where(this, _byte_at(fraction, 2) * _U64(100) + _byte_at(fraction, 4), millis)
    ok &= date_ok & clock_ok
    # digits at YYYY-MM-, DDThh:mm, :ss: shift each pair onto a byte pair, then read the pairs
    date_pairs = _pairs((date_digits & _U64(0xFFFFFFFF)) | ((date_digits >> _U64(8)) & _U64(0xFFFF00000000)))
    clock = _pairs((clock & _U64(0xFFFF00000000FFFF)) | ((clock >> _U64(8)) & _U64(0xFFFF0000)))
    year = (_byte_at(date_pairs, 0) * _U64(100) + _byte_at(date_pairs, 2)).astype(np.int64)
    month = _byte_at(date_pairs, 4).astype(np.int64)
    ok &= (year >= _FIRST_YEAR) & (year < _FIRST_YEAR + _YEARS) & (month >= 1) & (month <= 12)
    months = np.where(ok, (year - _FIRST_YEAR) * 12 + month - 1, 0)
    day = _byte_at(clock, 0).astype(np.int64)
    hour, minute = _byte_at(clock, 2), _byte_at(clock, 6)
    second = _byte_at(seconds, 1) * _U64(10) + _byte_at(seconds, 2)
    ok &= (day >= 1) & (day <= _MONTH_DAYS[months]) & (hour <= 23) & (minute <= 59) & (second <= 59)
    clock_ms = (((hour * _U64(60) + minute) * _U64(60) + second) * _U64(1000) + millis).astype(np.int64)
    return ok, length, (_MONTH_STARTS[months] + day - 1) * _MS_PER_DAY + clock_ms


def _windows(block: Block, size: int) -> np.ndarray:
    """``windows[p]``: the ``size`` bytes at ``p`` (overlapping views: gathered, they become words)."""
    return np.ndarray((max(len(block) - size + 1, 0),), np.dtype((np.void, size)), buffer=block, strides=(1,))


def _gather(block: Block, positions: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` bytes at each position as ``size // 8`` rows of words, one column per position: word
    ``i`` of all values is contiguous, much faster to compute on than a strided column. Positions are
    clipped to the block: a line whose window was clipped fails the ``_READ_AHEAD`` check (in a block
    shorter than a window, every line does: all are read again with room around them)."""
    windows = _windows(block, size)
    if not len(windows):
        return np.zeros((size // 8, len(positions)), np.uint64)
    words = windows[np.clip(positions, 0, len(windows) - 1)].view("<u8").reshape(-1, size // 8)
    return np.ascontiguousarray(words.T)


# The API's line, key by key (the windows below are sized for these texts: _CREATED and _REDACTED[1:] are
# 16 bytes, so a timestamp is word-aligned after them).
_KEYS = api_key_texts()
_OPEN, _ACTION, _CREATED, _REDACTED, _REASON = (_KEYS[key] for key in API_LINE_KEYS)
_CLOSE = API_LINE_CLOSE


def _text(words: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(whether the value of ``length`` (1-16) bytes at the start of ``words`` is plain: ASCII without
    control bytes, which JSON strings cannot hold raw, or backslashes, which would need decoding; the value
    as two words with the bytes after it zeroed: with the length, a key for the value itself)."""
    masks = _LOW_BYTES[np.clip(length, 0, 8)], _LOW_BYTES[np.clip(length - 8, 0, 8)]
    odd = []
    for word, mask in zip(words[:2], masks, strict=True):
        # a byte below 0x20, or one equal to 0x5C, borrows: exact for the lowest such byte, and any byte
        # flagged above it lies above a true one, so no value byte is flagged falsely
        backslash = word ^ _U64(0x5C5C5C5C5C5C5C5C)
        flags = ((word - _U64(0x2020202020202020)) & ~word) | (
            (backslash - _U64(0x0101010101010101)) & ~backslash
        )
        odd.append((flags | word) & _HIGH_BITS & mask)  # | word: a byte of 0x80 or more is no ASCII
    return (odd[0] | odd[1]) == 0, [words[0] & masks[0], words[1] & masks[1], length]


def _id_and_action(
    block: Block, starts: np.ndarray, id_type: str
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """(which lines open as the template does, their ids, their action keys, where each action ends).

    Each field is read in its own function: the windows of a block's lines are large, and a window is
    freed as soon as its field is read.
    """
    head = _gather(block, starts, 32)  # {"id":" and the id
    ok = _starts_with(head, _OPEN)
    flags = _non_digits(head)
    flags[0] &= ~_U64(_LOW_BYTES[len(_OPEN)] & int(_HIGH_BITS))  # the opening text is no id
    id_length = _first_flagged(flags) - len(_OPEN)
    ok &= (id_length >= 1) & (id_length <= 19)
    if id_type != "int64":  # "007" stays "007": the general path keeps such ids as written
        ok &= (id_length == 1) | ((head[0] >> _U64(56)) != _U64(ord("0")))
    del head, flags
    id_end = starts + len(_OPEN) + id_length
    ok &= id_end >= 24  # the id's window starts inside the block (not so only on a block's first line)

    around_id = _gather(block, id_end - 24, 64)  # the id right-aligned, the action's text, the action
    ids = np.zeros(len(starts), np.uint64)
    for column, scale in ((0, 10**16), (1, 10**8), (2, 1)):
        mask = _HIGH_BYTES[np.clip(id_length - 8 * (2 - column), 0, 8)]
        ids += _eight_digits(_digit_values(around_id[column], mask)) * _U64(scale)
    if id_type == "int64":
        ok &= ids <= _INT64_MAX
    ok &= _starts_with(around_id[3:], _ACTION)
    # 3 words from the action's first byte: a quote within its first 17 bytes ends it
    action = _shifted(around_id[4:], len(_ACTION) - 8)
    action_length = _first_flagged(_quotes(action))
    ok &= (action_length >= 1) & (action_length <= _MAX_TEXT)
    plain, keys = _text(action, action_length)
    return ok & plain, ids, keys, id_end + len(_ACTION) + action_length


def _timestamp_after(
    block: Block, text_start: np.ndarray, text: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(whether ``text`` starts at ``text_start``, whether a timestamp follows it, where that ends, its
    milliseconds). ``text`` must be 16 bytes: the timestamp is then word-aligned in the window."""
    window = _gather(block, text_start, 48)
    ok, length, millis = _timestamps(window[2:])
    return _starts_with(window, text), ok, text_start + len(text) + length, millis


def _reason(block: Block, text_start: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(whether ``,"reason":"`` and a reason start at ``text_start``, the reason keys, where it ends)."""
    tail = _gather(block, text_start, 40)
    ok = _starts_with(tail, _REASON[1:])
    reason = _shifted(tail[1:], len(_REASON) - 1 - 8)  # 3 words from the reason's first byte
    length = _first_flagged(_quotes(reason))
    ok &= (length >= 1) & (length <= _MAX_TEXT)
    plain, keys = _text(reason, length)
    return ok & plain, keys, text_start + len(_REASON) - 1 + length


def _read_fields(
    block: Block,
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    id_type: str,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(which lines have the shape and parse, their columns); see the module doc for what is checked."""
    ok, ids, action, action_end = _id_and_action(block, starts, id_type)
    ok &= ends + _READ_AHEAD <= len(block)  # else a window would reach past the block: see parse_api_lines
    created_text, created_ok, created_end, created_at = _timestamp_after(block, action_end, _CREATED)
    ok &= created_text & created_ok
    # past the quote that ends created_at: ,"redacted_at":" is 16 bytes
    redacted, redacted_ok, redacted_end, redacted_at = _timestamp_after(block, created_end + 1, _REDACTED[1:])
    ok &= ~redacted | redacted_ok
    reason_ok, reason, reason_end = _reason(block, np.where(redacted, redacted_end, created_end) + 1)
    ok &= reason_ok & (reason_end + len(_CLOSE) == ends)
    ok &= data[np.minimum(reason_end + 1, len(data) - 1)] == ord("}")
    return ok, {
        "id": ids,
        "created_at": created_at,
        "redacted_at": np.where(redacted, redacted_at, 0),
        "redacted": redacted,
        **{f"action_{i}": key for i, key in enumerate(action)},
        **{f"reason_{i}": key for i, key in enumerate(reason)},
    }


def _dictionary(columns: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, list[str]]:
    """Codes and values of a text column (``<name>_0``, ``_1``, ``_2``: its two words and its length, which
    spell the value), one pass per distinct value; rows beyond ``_MAX_VALUES`` distinct values get -1."""
    keys = [columns[f"{name}_{i}"] for i in range(3)]
    codes = np.full(len(keys[0]), -1, np.int32)
    pending = np.ones(len(keys[0]), bool)
    values: list[str] = []
    while len(values) < _MAX_VALUES and len(pending):
        first = int(np.argmax(pending))  # stops at the first True
        if not pending[first]:
            break
        same = keys[0] == keys[0][first]
        for key in keys[1:]:
            same &= key == key[first]
        np.copyto(codes, len(values), where=same)
        pending &= ~same
        text = int(keys[0][first]).to_bytes(8, "little") + int(keys[1][first]).to_bytes(8, "little")
        values.append(text[: int(keys[2][first])].decode("ascii"))
    return codes, values


def _timestamp_array(millis: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    bitmap = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(TIMESTAMP, len(millis), [bitmap, pa.py_buffer(millis.astype(np.int64))])


def _text_dictionary(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    indices = pa.Array.from_buffers(pa.int32(), len(codes), [None, pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string()), safe=False)  # codes < len


_CHUNK_LINES = 1 << 15  # lines read together: their words stay in the CPU caches (bench/README.md)
_EDGE_BEFORE = 24  # bytes before a line that the id's window reads (for a short id)


def _fields_of_lines(
    block: Block, offsets: np.ndarray, id_type: str
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(which lines have the shape and parse, their columns, which lines lie too near an edge of the block
    for the windows to be read)."""
    data = np.frombuffer(block, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    ends = offsets[1:].astype(np.int64) - 1  # the newline, or the \r of a \r\n
    ends -= data[np.maximum(ends - 1, 0)] == ord("\r")
    pieces = [
        _read_fields(block, data, starts[at : at + _CHUNK_LINES], ends[at : at + _CHUNK_LINES], id_type)
        for at in range(0, max(len(starts), 1), _CHUNK_LINES)
    ]
    ok, columns = pieces[0]
    if len(pieces) > 1:
        ok = np.concatenate([piece_ok for piece_ok, _ in pieces])
        columns = {name: np.concatenate([piece[name] for _, piece in pieces]) for name in columns}
    near_edge = (starts < _EDGE_BEFORE) | (ends + _READ_AHEAD > len(block))
    return ok, columns, near_edge


def parse_api_lines(block: Block, offsets: np.ndarray, id_type: IdType) -> FastRows:
    """Rows of the lines of ``block`` (line ``i``: ``offsets[i]`` to ``offsets[i + 1]``, its newline
    included) that have the API's exact shape. Lines not in :attr:`FastRows.lines` are for the general
    path.

    Lines near the block's ends (its first and last, whose windows would reach outside it) are read again
    from a small copy with room around them.
    """
    ok, columns, near_edge = _fields_of_lines(block, offsets, id_type)
    lines = np.flatnonzero(ok)
    if lines[-1:].tolist() == [len(lines) - 1]:  # only the last lines failed (the rule: the block's end)
        columns = {name: column[: len(lines)] for name, column in columns.items()}  # views, no copies
    else:
        columns = {name: column[lines] for name, column in columns.items()}
    retry = np.flatnonzero(~ok & near_edge)
    if len(retry):
        pieces = [bytes(block[offsets[line] : offsets[line + 1]]) for line in retry.tolist()]
        padded = b" " * _EDGE_BEFORE + b"".join(pieces) + b" " * _READ_AHEAD
        padded_offsets = _EDGE_BEFORE + np.concatenate(([0], np.cumsum([len(piece) for piece in pieces])))
        edge_ok, edge_columns, _ = _fields_of_lines(padded, padded_offsets, id_type)
        lines = np.concatenate((lines, retry[edge_ok]))
        columns = {
            name: np.concatenate((column, edge_columns[name][edge_ok])) for name, column in columns.items()
        }
    action_codes, actions = _dictionary(columns, "action")
    reason_codes, reasons = _dictionary(columns, "reason")
    kept = (action_codes >= 0) & (reason_codes >= 0)
    if not kept.all():
        lines, action_codes, reason_codes = lines[kept], action_codes[kept], reason_codes[kept]
        columns = {name: column[kept] for name, column in columns.items()}
    ids = columns["id"]
    typed = {
        "id": pa.array(ids.view(np.int64)) if id_type == "int64" else pa.array(ids).cast(pa.string()),
        "action": _text_dictionary(action_codes, actions),
        "reason": _text_dictionary(reason_codes, reasons),
        "created_at": _timestamp_array(columns["created_at"]),
        "redacted_at": _timestamp_array(columns["redacted_at"], columns["redacted"]),
    }
    table = pa.table(typed, schema=row_schema(id_type))  # a column missing here fails every conversion
    return FastRows(table, lines)

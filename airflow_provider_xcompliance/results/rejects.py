"""Rejected result lines: one JSON Lines record each, valid whatever bytes the line held.

A record is ``{"source", "line", "reason", "id", "action", "bytes", "cut", "raw" | "raw_base64"}``:

- ``id``: the ID salvaged from the line (``"id":"123"`` or ``"id":123`` followed by ``,`` or ``}``, so a
  line cut inside its ID salvages nothing rather than a wrong ID), else null; ``action`` likewise. A
  salvaged ID may need action: it is in no table, so by default the reporting step fails on it.
- ``raw``: the line's text (without its line end) when it is valid UTF-8, its first 1,000 characters;
  otherwise ``raw_base64``, the first 1,000 bytes base64-encoded, so invalid UTF-8 survives exactly.
  ``bytes`` is the line's full length and ``cut`` whether ``raw`` holds less than the whole line.
- Records are pure ASCII (``\\uXXXX`` escapes): no character a reader could take for a line end
  (U+2028, U+0085, ...) appears raw, so a record is always exactly one line.
"""

from __future__ import annotations

import base64
import re
from json.encoder import encode_basestring_ascii as _quote  # type: ignore[attr-defined]

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.results.read import Block

__all__ = ["RAW_LIMIT", "reject_tail", "reject_tails", "salvage_id"]

RAW_LIMIT = 1000
_ACTION_CHARS = 64
_ID = re.compile(rb'"id"[ \t]*:[ \t]*(?:"([0-9]{1,19})"|([0-9]{1,19})(?=[ \t]*[,}]))')
_ACTION = re.compile(rb'"action"[ \t]*:[ \t]*"([^"\\\x00-\x1f]{1,%d})"' % _ACTION_CHARS)
# The same for Arrow's RE2, which has no lookahead: consuming the , or } finds the same ID. RE2 compiles a
# bounded repeat for longer than it then runs: the action takes +, and a longer match is left to Python.
_ID_RE2 = r'"id"[ \t]*:[ \t]*(?:"(?P<quoted>[0-9]{1,19})"|(?P<bare>[0-9]{1,19})[ \t]*[,}])'
_ACTION_RE2 = r'"action"[ \t]*:[ \t]*"(?P<action>[^"\\\x00-\x1f]+)"'


def salvage_id(raw: bytes) -> str | None:
    """The first complete ID a (possibly broken) line names, or None."""
    found = _ID.search(raw) if b'"id"' in raw else None
    return None if found is None else (found[1] or found[2]).decode("ascii")


def _salvage_action(raw: bytes) -> str:
    """The action a line names as a JSON value (a string, or null)."""
    found = _ACTION.search(raw) if b'"action"' in raw else None
    return "null" if found is None else _quote(found[1].decode("utf-8", "replace"))


def reject_tail(raw: bytes, reason: str) -> tuple[str, bool]:
    """The record of one rejected line after its ``source`` and ``line`` (``,"reason":...}`` and the line
    end), and whether it names an ID: workers build it, the writer prefixes the fields only it knows. Built
    as text with the C string encoder: a file can hold very many rejects."""
    raw = raw.rstrip(b"\r\n")
    found = salvage_id(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        cut = len(raw) > RAW_LIMIT
        body = f'"raw_base64":"{base64.b64encode(raw[:RAW_LIMIT]).decode("ascii")}"'
    else:
        cut = len(text) > RAW_LIMIT
        body = f'"raw":{_quote(text[:RAW_LIMIT])}'
    tail = (
        f',"reason":{_quote(reason)},"id":{"null" if found is None else _quote(found)},'
        f'"action":{_salvage_action(raw)},"bytes":{len(raw)},"cut":{"true" if cut else "false"},{body}}}\n'
    )
    return tail, found is not None


def reject_tails(
    block: Block, offsets: np.ndarray, lines: np.ndarray, reasons: list[str]
) -> tuple[list[str], int]:
    """:func:`reject_tail` of each of ``lines`` (indexes into the block's ``offsets``); how many name an ID.

    Lines of printable ASCII (a rejected line nearly always is) are done together by Arrow kernels, which
    release the GIL the parsing threads share: their text is valid UTF-8 that needs only quotes and
    backslashes escaped, and a byte is a character. Any other line goes through :func:`reject_tail`; the
    records are the same byte for byte.
    """
    data = np.frombuffer(block, np.uint8)
    starts, ends = offsets[lines].astype(np.int64), offsets[lines + 1].astype(np.int64)
    while (trailing := (ends > starts) & np.isin(data[np.maximum(ends - 1, 0)], (10, 13))).any():
        ends -= trailing  # raw.rstrip(b"\r\n")
    raw_offsets = np.zeros(len(lines) + 1, np.int32)
    np.cumsum(ends - starts, out=raw_offsets[1:])
    raw = data[np.arange(raw_offsets[-1]) + np.repeat(starts - raw_offsets[:-1], ends - starts)]
    odd = np.concatenate(([0], np.cumsum((raw < 0x20) | (raw > 0x7E))))[raw_offsets]
    plain = np.flatnonzero((ends > starts) & (odd[1:] == odd[:-1]))
    tails: list[str] = [""] * len(lines)
    done = np.zeros(len(lines), bool)
    named = 0
    if len(plain):
        texts = pa.StringArray.from_buffers(len(lines), pa.py_buffer(raw_offsets), pa.py_buffer(raw))
        records, ids, kept = _plain_tails(texts.take(pa.array(plain)), [reasons[i] for i in plain.tolist()])
        for index, record in zip(plain[kept].tolist(), records, strict=True):
            tails[index] = record
        named += ids
        done[plain[kept]] = True
    for index in np.flatnonzero(~done).tolist():
        tails[index], has_id = reject_tail(bytes(block[starts[index] : ends[index]]), reasons[index])
        named += has_id
    return tails, named


def _salvaged(texts: pa.StringArray, pattern: str) -> pa.StringArray:
    """Each line's first match of ``pattern`` (the groups that did not match are empty) as a JSON string,
    else ``null``; IDs and these actions need no escapes. Extracting is the slow kernel: it runs only on the
    lines a plain match finds."""
    found = pc.match_substring_regex(texts, pattern)
    groups = pc.extract_regex(texts.filter(found), pattern)
    value = pc.binary_join_element_wise(*[pc.struct_field(groups, n) for n in range(len(groups.type))], "")
    quoted = pc.binary_join_element_wise('"', value, '"', "")
    return pc.replace_with_mask(pc.if_else(found, "", "null"), found, quoted)


def _plain_tails(texts: pa.StringArray, reasons: list[str]) -> tuple[list[str], int, np.ndarray]:
    """The records of lines of printable ASCII (line ends stripped), column by column: those of the lines
    kept (their indexes are the third value) and how many of them name an ID. A line whose first action is
    longer than :data:`_ACTION` reads is not kept: Python may find a later one."""
    ids = _salvaged(texts, _ID_RE2)
    actions = _salvaged(texts, _ACTION_RE2)
    kept = pc.less_equal(pc.binary_length(actions), _ACTION_CHARS + 2)  # + 2: the quotes
    lengths = pc.binary_length(texts)
    raw = pc.utf8_slice_codeunits(texts, 0, RAW_LIMIT)
    quoted_reasons = {reason: _quote(reason) for reason in set(reasons)}
    columns = [
        ',"reason":',
        pa.array([quoted_reasons[reason] for reason in reasons], pa.string()),
        ',"id":',
        ids,
        ',"action":',
        actions,
        ',"bytes":',
        lengths.cast(pa.string()),
        ',"cut":',
        pc.if_else(pc.greater(lengths, RAW_LIMIT), "true", "false"),
        ',"raw":"',
        pc.replace_substring(pc.replace_substring(raw, "\\", "\\\\"), '"', '\\"'),
        '"}\n',
    ]
    records = pc.binary_join_element_wise(*columns, "").filter(kept).to_pylist()
    named = pc.sum(pc.not_equal(ids.filter(kept), "null")).as_py() or 0
    return records, named, np.flatnonzero(kept.to_numpy(zero_copy_only=False))

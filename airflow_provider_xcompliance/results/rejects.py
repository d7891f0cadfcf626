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

__all__ = ["RAW_LIMIT", "reject_tail", "salvage_id"]

RAW_LIMIT = 1000
_ID = re.compile(rb'"id"[ \t]*:[ \t]*(?:"([0-9]{1,19})"|([0-9]{1,19})(?=[ \t]*[,}]))')
_ACTION = re.compile(rb'"action"[ \t]*:[ \t]*"([^"\\\x00-\x1f]{1,64})"')


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

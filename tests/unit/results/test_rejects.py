"""Reject records: one valid JSON line whatever the rejected bytes, with the ID that can be salvaged."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_xcompliance.results.rejects import RAW_LIMIT, reject_tail, salvage_id


def record(raw: bytes, reason: str = "malformed_json") -> dict[str, object]:
    tail, named = reject_tail(raw, reason)
    assert named is (salvage_id(raw) is not None)
    assert tail.isascii()
    assert tail.endswith("}\n")
    assert len(tail.splitlines()) == 1
    return json.loads("{" + tail[1:])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("raw", "salvaged"),
    [
        (b'{"id":"123","act', "123"),
        (b'{"id": 123, "action"', "123"),
        (b'{"id":123}', "123"),
        (b'{"id":"12', None),  # cut inside the id: no guess
        (b'{"id":12', None),
        (b'{"id":"-5","action":"delete"}', None),
        (b'{"ident":"5"}', None),
        (b"not json", None),
    ],
)
def test_only_a_complete_id_is_salvaged(raw: bytes, salvaged: str | None) -> None:
    assert salvage_id(raw) == salvaged
    assert record(raw)["id"] == salvaged


def test_text_is_kept_exactly_and_escaped_to_ascii() -> None:
    raw = '{"id":"7","action":"del\u2028ete\x85", "x":"\\"",'.encode()

    got = record(raw + b"\r\n", "missing_action")

    assert got == {
        "reason": "missing_action",
        "id": "7",
        "action": "del\u2028ete\x85",
        "bytes": len(raw),
        "cut": False,
        "raw": raw.decode(),
    }


def test_invalid_utf8_is_kept_exactly_as_base64() -> None:
    raw = b'{"id":"9","action":"\xff\xfe'

    got = record(raw)

    assert base64.b64decode(got["raw_base64"]) == raw  # type: ignore[arg-type]
    assert got["id"] == "9"
    assert "raw" not in got


def test_long_lines_are_bounded_and_say_so() -> None:
    assert record(b"x" * 5000)["raw"] == "x" * RAW_LIMIT
    assert record(b"x" * 5000)["cut"] is True
    assert len(base64.b64decode(record(b"\xff" * 5000)["raw_base64"])) == RAW_LIMIT  # type: ignore[arg-type]

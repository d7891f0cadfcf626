"""Reject records: one valid JSON line whatever the rejected bytes, with the ID that can be salvaged."""

from __future__ import annotations

import base64
import json
import random

import numpy as np
import pytest

from airflow_provider_xcompliance.results.read import line_offsets
from airflow_provider_xcompliance.results.rejects import RAW_LIMIT, reject_tail, reject_tails, salvage_id


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


def test_records_of_a_block_equal_the_records_of_each_line() -> None:
    from tests.unit.results.test_results_fuzz import api_line, mutations

    rng = random.Random(7)
    lines = [m for n in range(3) for m in mutations(rng, api_line(rng, 10 + n))]
    lines += [
        b'{"id": 123 , "action" : "del"',
        b'{"id":12345678901234567890,"id":5}',
        b'{"id":"1","action":"' + b"a" * 70 + b'","action":"b"',  # Python reads the second action
        b'{"id":"1","action":"x\x7f"',
        b"tab\there\r\r",
        b"mid\rdle",
        b'quote " and back \\ slash',
        b"y" * 3000,
        b'"id":"42"' + b"z" * 2000,
    ]
    lines = [line for line in lines if b"\n" not in line and line.strip(b" \t\r\n")]
    block = b"".join(line + (b"\r\n" if n % 2 else b"\n") for n, line in enumerate(lines))
    reasons = [("malformed_json", "invalid_id", "missing_action")[n % 3] for n in range(len(lines))]
    wanted = np.arange(len(lines))[::-1]  # in any order

    tails, named = reject_tails(block, line_offsets(block), wanted, [reasons[n] for n in wanted])

    expected = [reject_tail(lines[n], reasons[n]) for n in wanted]
    assert tails == [tail for tail, _ in expected]
    assert named == sum(has_id for _, has_id in expected)
    assert 0 < named < len(lines)

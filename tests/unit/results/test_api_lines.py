"""The fast path must read every line it takes exactly as the general path does, and take the API's lines."""

from __future__ import annotations

import random

import numpy as np
import pytest

from airflow_provider_xcompliance import results
from airflow_provider_xcompliance.results.api_lines import parse_api_lines
from airflow_provider_xcompliance.results.general import parse_general
from airflow_provider_xcompliance.results.read import line_offsets
from airflow_provider_xcompliance.results.validate import type_rows


def api_line(
    id: str = "1265324480517361664",
    action: str = "delete",
    created_at: str = "2019-10-29T17:02:47.000Z",
    redacted_at: str | None = "2020-07-29T17:02:47.421Z",
    reason: str = "deleted",
) -> str:
    redacted = "" if redacted_at is None else f'"redacted_at":"{redacted_at}",'
    return f'{{"id":"{id}","action":"{action}","created_at":"{created_at}",{redacted}"reason":"{reason}"}}'


def offsets_of(block: bytes) -> np.ndarray:
    return line_offsets(block)


def general_rows(block: bytes, id_type: results.IdType) -> dict[int, dict]:
    """Line index -> the row the general path makes of it (lines it rejects are absent)."""
    offsets = offsets_of(block)
    general = parse_general(block, offsets)
    rows, row_rejects, _ = type_rows(general.table.combine_chunks(), id_type)
    kept = np.delete(general.lines, [row for row, _ in row_rejects])
    return dict(zip(kept.tolist(), rows.to_pylist(), strict=True))


def fast_rows(block: bytes, id_type: results.IdType) -> dict[int, dict]:
    taken = parse_api_lines(block, offsets_of(block), id_type)
    return dict(zip(taken.lines.tolist(), taken.table.to_pylist(), strict=True))


def as_block(lines: list[str], ending: str = "\n") -> bytes:
    return "".join(line + ending for line in lines).encode()


@pytest.mark.parametrize("id_type", ["int64", "string"])
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_takes_every_line_the_api_writes_and_reads_it_as_the_general_path_does(id_type, ending) -> None:
    lines = [
        api_line(),
        api_line(redacted_at=None),
        api_line(id="7"),
        api_line(id="9223372036854775807"),
        api_line(created_at="2013-03-26T02:46:15+00:00", redacted_at="2013-03-26T02:46:15+00:00"),
        api_line(created_at="2013-03-26T02:46:15Z", redacted_at=None),
        api_line(created_at="2024-02-29T23:59:59.999Z", reason="scrub_geo", action="scrub_geo"),
        api_line(created_at="1900-01-01T00:00:00.000Z", redacted_at="2199-12-31T23:59:59.000Z"),
        api_line(action="a", reason="0123456789abcdef"),  # 1 and 16 bytes
        api_line(reason="bounced"),
    ]
    block = as_block(lines, ending)
    fast, general = fast_rows(block, id_type), general_rows(block, id_type)

    assert sorted(fast) == list(range(len(lines)))
    assert {line: general[line] for line in fast} == fast


@pytest.mark.parametrize(
    "odd",
    [
        api_line(id="9223372036854775808"),  # past int64: the general path rejects it
        api_line(id="12345678901234567890"),  # 20 digits
        api_line(id=""),
        api_line(id="-5"),
        api_line(id="+5"),
        api_line(id="1 2"),
        api_line(created_at="2023-02-29T00:00:00.000Z"),  # not a leap year
        api_line(created_at="2020-13-01T00:00:00.000Z"),
        api_line(created_at="2020-01-01T24:00:00.000Z"),
        api_line(created_at="2020-01-01T00:00:60.000Z"),
        api_line(created_at="2020-01-01t00:00:00.000Z"),  # lower-case t: the general path decides
        api_line(created_at="2020-01-01T00:00:00.123456Z"),  # sub-millisecond
        api_line(created_at="2020-01-01T00:00:00+05:30"),  # another zone
        api_line(created_at="2020-01-01T00:00:00"),  # no zone
        api_line(created_at="1899-12-31T23:59:59.000Z"),  # outside 1900-2199
        api_line(created_at="yesterday"),
        api_line(action=""),
        api_line(reason=""),
        api_line(reason="0123456789abcdefg"),  # 17 bytes
        api_line(reason='del"eted'),
        api_line(reason="tab\there"),  # a raw control byte: not JSON
        api_line(action="\x1f"),
        api_line(reason="del\\\\eted"),  # an escape: the general path decodes it
        api_line(reason="délété"),  # beyond ASCII: the general path validates and decodes it
        api_line().replace('"id"', '"ix"'),
        api_line().replace(",", ", "),
        api_line() + " ",
        api_line()[:-1],
        api_line().replace("}", "}{}"),
        '{"id":"1","reason":"deleted","action":"delete","created_at":"2019-10-29T17:02:47.000Z"}',
    ],
)
def test_leaves_every_other_line_to_the_general_path(odd: str) -> None:
    block = as_block([api_line(id="1"), odd, api_line(id="3")])

    assert sorted(fast_rows(block, "int64")) == [0, 2]


def test_leading_zeros_stay_with_the_general_path_for_string_ids() -> None:
    block = as_block([api_line(id="007"), api_line(id="0")])

    assert sorted(fast_rows(block, "string")) == [1]
    assert fast_rows(block, "int64")[0]["id"] == 7


def mutate(line: str, rng: random.Random) -> str:
    """One random edit: a byte replaced, removed or inserted, or a value swapped for an odd one."""
    chars = list(line)
    kind = rng.randrange(4)
    position = rng.randrange(len(chars))
    if kind == 0:
        chars[position] = rng.choice('0123456789"{}:,.-+TZ az\\\t\x01\x7f')
    elif kind == 1:
        del chars[position]
    elif kind == 2:
        chars.insert(position, rng.choice('0123456789"{}:,.-+TZ az\\\té'))
    else:
        return api_line(
            id=rng.choice(["0", "1" * 19, "9" * 19, "1" * 18, "07", "x1"]),
            created_at=f"{rng.randrange(1890, 2210)}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 33):02d}"
            f"T{rng.randrange(0, 26):02d}:{rng.randrange(0, 61):02d}:{rng.randrange(0, 62):02d}"
            + rng.choice([".000Z", ".999Z", "Z", "+00:00", "", ".5Z"]),
            redacted_at=rng.choice([None, "2020-07-29T17:02:47.000Z"]),
        )
    return "".join(chars)


def test_a_block_of_one_short_line_is_read_from_a_padded_copy() -> None:
    block = as_block([api_line(id="5", redacted_at=None, reason="x")])

    assert fast_rows(block, "int64") == general_rows(block, "int64")
    assert list(fast_rows(block, "int64")) == [0]


@pytest.mark.parametrize("id_type", ["int64", "string"])
def test_random_edits_never_make_the_paths_disagree(id_type) -> None:
    rng = random.Random(20261128)
    lines = [mutate(api_line(id=str(rng.randrange(1, 10**19))), rng) for _ in range(4000)]
    block = as_block(lines)
    fast, general = fast_rows(block, id_type), general_rows(block, id_type)

    assert {line: general.get(line) for line in fast} == fast
    assert len(fast) > 600  # edits that keep the exact shape (other edits go the general way, as they must)

"""Differential fuzz test of the converter: API-shaped lines mixed with mutations of every kind.

Each line's verdict (its row, or its reject) is first taken from the line alone; then all lines go through
one conversion, with the fast path and without it (the general path alone), with blocks of many sizes.
Every line must end as the same row or the same reject wherever it stands, the rejects file must be valid
JSON Lines, and the summary must reconcile.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from airflow_provider_xcompliance import results
from airflow_provider_xcompliance.results import api_lines
from airflow_provider_xcompliance.results import block as results_block
from airflow_provider_xcompliance.results import read as results_read
from airflow_provider_xcompliance.results.schema import TableSpec

TIMESTAMPS = ["2019-10-29T17:02:47.000Z", "2013-03-26T02:46:15+00:00", "2020-07-29T17:02:47.421Z"]
REASONS = ["deleted", "protected", "scrub_geo", "suspended"]


def api_line(rng: random.Random, id_value: int) -> bytes:
    """A line as the API writes it (the fast path's shape) or with another key order (the general path's)."""
    created, redacted = rng.choice(TIMESTAMPS), rng.choice([None, *TIMESTAMPS])
    reason = rng.choice(REASONS)
    action = "delete" if reason != "scrub_geo" or rng.random() < 0.5 else "scrub_geo"
    if rng.random() < 0.7:
        more = "" if redacted is None else f',"redacted_at":"{redacted}"'
        text = f'{{"id":"{id_value}","action":"{action}","created_at":"{created}"{more},"reason":"{reason}"}}'
    else:
        record = {"reason": reason, "created_at": created, "id": str(id_value), "action": action}
        text = json.dumps(record)
    return text.encode()


def mutations(rng: random.Random, line: bytes) -> list[bytes]:
    """Damaged and odd versions of one line."""

    def after(key: str, text: str) -> bytes:
        """The line with ``text`` put where the value of ``key`` starts (its opening quote replaced)."""
        return re.sub(rb'"%s": ?"' % key.encode(), lambda _: f'"{key}":{text}'.encode(), line, count=1)

    spot = rng.randrange(1, len(line))
    out = [line[:cut] for cut in range(len(line))]  # cut at every byte offset
    out += [line[:spot] + stray + line[spot:] for stray in (b'"', b",", b"\\", b'",', b"\xff", b"\xc3")]
    out += [
        line[:spot] + b"\x80\xfe" + line[spot:],
        after("action", '"\u2028\x85'),
        after("reason", '"\u2029'),
        after("action", '"\\udcff'),
        after("action", '"'),  # an empty action
        after("action", '"' + "a" * 300),  # longer than a file name
        after("action", "[" * 3000 + "]" * 3000 + ',"a":"'),  # deeper than Python reads
        after("action", '5,"a":"'),
        after("created_at", '"x'),
        after("created_at", '123,"x":"'),
        after("created_at", 'null,"x":"'),
        after("created_at", '"20-'),
        after("created_at", '"9999-99-99T99:99:99Z","z":"'),
        after("created_at", "{}" + ',"z":"'),
        after("created_at", "[" * 200 + "]" * 200 + ',"z":"'),  # Python reads it: a null created_at
        after("created_at", "[" * 300 + "]" * 300 + ',"z":"'),  # past the bracket bound: pyarrow refuses
        after("redacted_at", '"soon'),
        after("created_at", '"2019-10-29 17:02:47.123456789","z":"'),
        line.replace(b'"created_at"', b'"created"'),
        after("reason", '"' + "r" * 100_000),  # a huge value
        after("reason", '7,"r":"'),
        after("id", "[" * 5000 + "]" * 5000 + ',"i":"'),
        line.replace(b"{", b'{"deep":' + b"[" * 5000 + b"]" * 5000 + b",", 1),  # deeper than Python reads
        line.replace(b"{", b'{"deep":' + b"[" * 50 + b"]" * 50 + b",", 1),
        line.replace(b"}", b',"id":"1"}'),  # a duplicate key
        line.replace(b"}", b',"n":NaN}'),
        line.replace(b"}", b"} {}"),  # two objects
        b"   " + line + b"  \t",
        b"[" + line + b"]",
        b"null",
        b"\x00" + line,
    ]
    return out


def corpus(seed: int) -> list[bytes]:
    """Lines whose rows all have distinct ids (so a row is found again by its id), and blank lines."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for n in range(3):
        own = b'"id":"%d"' % (10_000 + n)
        for i, line in enumerate(mutations(rng, api_line(rng, 10_000 + n))):  # an id of its own each
            lines.append(line.replace(own, b'"id":"%d"' % (1_000_000 * (n + 1) + i)))
    lines += [api_line(rng, 20_000 + n) for n in range(300)]
    lines += [b"", b"  ", b"\r"]
    rng.shuffle(lines)
    return lines


Verdict = tuple[str, Any]


def verdicts_of_lines(lines: list[bytes]) -> list[Verdict | None]:
    """Each line's verdict, from the line alone: ("row", row), ("reject", (reason, id)), None if blank."""
    out: list[Verdict | None] = []
    for line in lines:
        block = line + b"\n"
        offsets = results_read.line_offsets(block)
        parsed = results_block.convert_block(block, TableSpec("tweets", "int64", "scrub"), 1, None)
        rows = [row for part in parsed.parts for row in part.table.to_pylist()]
        rejects = [json.loads("{" + tail[1:]) for _, tail in parsed.rejects]
        assert len(rows) + len(rejects) + parsed.blank == 1 == len(offsets) - 1
        out.append(("row", rows[0]) if rows else ("reject", _reject_key(rejects[0])) if rejects else None)
    return out


def _reject_key(record: dict[str, Any]) -> tuple[str, str | None]:
    return record["reason"], record["id"]


def unique_rows(
    lines: list[bytes], verdicts: list[Verdict | None]
) -> tuple[list[bytes], list[Verdict | None]]:
    """Drop lines whose row repeats an earlier row's id (a mutation may leave the id as it was)."""
    seen: set[int] = set()
    kept = []
    for line, verdict in zip(lines, verdicts, strict=True):
        if verdict and verdict[0] == "row":
            if verdict[1]["id"] in seen:
                continue
            seen.add(verdict[1]["id"])
        kept.append((line, verdict))
    return [line for line, _ in kept], [verdict for _, verdict in kept]


@pytest.fixture(scope="module")
def cases() -> tuple[list[bytes], list[Verdict | None]]:
    lines = corpus(20261204)
    return unique_rows(lines, verdicts_of_lines(lines))


def convert_all(tmp_path: Path, lines: list[bytes]) -> tuple[results.ConversionSummary, Path]:
    source = tmp_path / "results.jsonl"
    source.write_bytes(b"\n".join(lines))  # the last line without its newline
    summary = results.results_to_parquet(source, tmp_path / "out", job_type="tweets")
    return summary, tmp_path / "out"


def rows_and_rejects(out: Path, summary: results.ConversionSummary) -> tuple[dict[int, dict], dict[int, Any]]:
    rows = {}
    for path in summary.tables.values():
        for row in pq.read_table(Path(path) / results.PART_FILE).to_pylist():
            rows[row.pop("id")] = row
    raw = (out / results.REJECTS_FILE).read_bytes()
    assert raw.isascii()
    assert not raw or raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.decode().split("\n")[:-1]]
    assert len(records) == len(raw.decode().splitlines())  # no reader sees a record cut in two
    return rows, {record["line"]: _reject_key(record) for record in records}


def no_fast_rows(block: Any, offsets: Any, id_type: str) -> api_lines.FastRows:
    return api_lines.parse_api_lines(b"", np.zeros(1, np.int32), id_type)


def streamed_blocks(path: Path) -> Any:
    """Blocks as an object-store source gives them (read, not memory-mapped)."""
    with path.open("rb") as stream:
        yield from results_read.read_blocks(stream, results_read.BLOCK_BYTES)


@pytest.mark.parametrize("path", ["fast", "general", "streamed"])
@pytest.mark.parametrize("block_bytes", [64, 700, 12 << 20])
def test_every_line_keeps_its_own_verdict_in_any_block(tmp_path, monkeypatch, cases, path, block_bytes):
    lines, verdicts = cases
    monkeypatch.setattr(results_read, "BLOCK_BYTES", block_bytes)
    if path == "general":
        monkeypatch.setattr(results_block, "parse_api_lines", no_fast_rows)
    if path == "streamed":
        monkeypatch.setattr(results_read, "source_blocks", streamed_blocks)

    summary, out = convert_all(tmp_path, lines)

    rows, rejects = rows_and_rejects(out, summary)
    expected_rows = {
        v[1]["id"]: {k: x for k, x in v[1].items() if k != "id"} for v in verdicts if v and v[0] == "row"
    }
    expected_rejects = {n: v[1] for n, v in enumerate(verdicts, start=1) if v and v[0] == "reject"}
    assert rows == expected_rows
    assert rejects == expected_rejects
    assert summary.lines_read == summary.rows_written + summary.duplicates + summary.rejected
    assert (summary.duplicates, summary.rejected) == (0, len(expected_rejects))
    assert summary.reconciled


def test_the_corpus_holds_rows_rejects_and_salvaged_ids(cases) -> None:
    _, verdicts = cases
    kinds = [verdict[0] for verdict in verdicts if verdict]
    salvaged = [v[1][1] for v in verdicts if v and v[0] == "reject" and v[1][1] is not None]
    assert kinds.count("row") > 300
    assert kinds.count("reject") > 100
    assert len(salvaged) > 50
    actions = {v[1]["action"] for v in verdicts if v and v[0] == "row"}
    assert {"delete", "scrub_geo", "a" * 300 + "delete"} <= actions

"""Specification of the results converter: JSON Lines in, one Parquet table per action out."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_xcompliance.exceptions import ResultsRejectedError
from airflow_provider_xcompliance.results import (
    REJECTS_FILE,
    SUMMARY_FILE,
    ConversionSummary,
    api_lines,
    format_summary,
    output_schema,
    results_to_parquet,
)
from airflow_provider_xcompliance.results import block as results_block
from airflow_provider_xcompliance.results import dedupe as results_dedupe
from airflow_provider_xcompliance.results import read as results_read
from airflow_provider_xcompliance.results import write as results_write


def line(
    id: str = "1265324480517361664",
    action: str = "delete",
    reason: str = "deleted",
    created_at: str = "2019-10-29T17:02:47.000Z",
    **extra: object,
) -> str:
    record: dict[str, object] = {"id": id, "action": action, "created_at": created_at, "reason": reason}
    record.update(extra)
    return json.dumps(record, separators=(",", ":"))


def write(path: Path, *lines: str, ending: str = "\n") -> Path:
    path.write_bytes("".join(text + ending for text in lines).encode("utf-8", "surrogateescape"))
    return path


def convert(tmp_path: Path, *lines: str, **kwargs: object) -> ConversionSummary:
    source = write(tmp_path / "results.jsonl", *lines)
    kwargs.setdefault("job_type", "tweets")
    return results_to_parquet(source, tmp_path / "out", **kwargs)  # type: ignore[arg-type]


def table(tmp_path: Path, action: str = "delete") -> pa.Table:
    return pq.read_table(tmp_path / "out" / action / "part-00000.parquet")


def rejects(tmp_path: Path) -> list[dict[str, object]]:
    text = (tmp_path / "out" / REJECTS_FILE).read_text()
    return [json.loads(row) for row in text.splitlines()]


def ms(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# --- Parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-10-29T17:02:47.000Z", "2019-10-29T17:02:47.000"),
        ("2017-09-10T20:06:37.421Z", "2017-09-10T20:06:37.421"),
        ("2013-03-26T02:46:15+00:00", "2013-03-26T02:46:15.000"),
        ("2013-03-26T02:46:15Z", "2013-03-26T02:46:15.000"),
        ("2013-03-26T04:46:15+02:00", "2013-03-26T02:46:15.000"),
        ("2013-03-26T02:46:15", "2013-03-26T02:46:15.000"),
        ("2013-03-26T02:46:15.123456Z", "2013-03-26T02:46:15.123"),
    ],
)
def test_every_timestamp_form_parses_to_utc_milliseconds(tmp_path: Path, value: str, expected: str) -> None:
    convert(tmp_path, line(created_at=value, redacted_at=value))

    row = table(tmp_path).to_pylist()[0]
    assert row["created_at"] == ms(expected)
    assert row["redacted_at"] == ms(expected)


def test_odd_timestamps_parse_beside_ordinary_ones_in_one_block(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1"), line(id="2", created_at="2013-03-26T02:46:15"), line(id="3"))

    assert table(tmp_path)["created_at"].to_pylist()[1] == ms("2013-03-26T02:46:15")


def test_redacted_at_is_optional(tmp_path: Path) -> None:
    convert(tmp_path, line())

    assert table(tmp_path)["redacted_at"].to_pylist() == [None]


def test_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    source = write(tmp_path / "crlf.jsonl", line(id="1"), line(id="2"), ending="\r\n")

    summary = results_to_parquet(source, tmp_path / "out", job_type="tweets")

    assert summary.rows_written == 2
    assert summary.rejected == 0


def test_blank_lines_are_skipped_and_not_counted_as_read(tmp_path: Path) -> None:
    summary = convert(tmp_path, "", line(id="1"), "   ", "\r", line(id="2"))

    assert (summary.lines_read, summary.blank_lines, summary.rows_written) == (2, 3, 2)


def test_a_file_without_a_final_newline_keeps_its_last_line(tmp_path: Path) -> None:
    source = tmp_path / "results.jsonl"
    source.write_text(line(id="1") + "\n" + line(id="2"))

    assert results_to_parquet(source, tmp_path / "out", job_type="tweets").rows_written == 2


def test_unknown_fields_are_ignored_whatever_their_type(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1", extra="x"), line(id="2", nested={"a": [1, 2]}, number=3.5, flag=True))

    assert table(tmp_path).schema == output_schema()
    assert table(tmp_path)["id"].to_pylist() == [1, 2]


def test_numeric_json_id_is_accepted(tmp_path: Path) -> None:
    convert(tmp_path, '{"id":1301182931,"action":"delete","created_at":"2013-03-26T02:46:15+00:00"}')

    assert table(tmp_path)["id"].to_pylist() == [1301182931]


def test_unknown_action_gets_its_own_table_and_unknown_reason_is_kept(tmp_path: Path) -> None:
    summary = convert(
        tmp_path, line(id="1", reason="bounced"), line(id="2", action="quarantine", reason="new")
    )

    assert table(tmp_path)["reason"].to_pylist() == ["bounced"]
    assert table(tmp_path, "quarantine").to_pylist()[0]["reason"] == "new"
    assert summary.rows_by_action == {"delete": 1, "scrub_geo": 0, "quarantine": 1}
    assert summary.rows_by_action_reason["quarantine"] == {"new": 1}


def test_action_folder_names_are_escaped_and_never_hidden(tmp_path: Path) -> None:
    summary = convert(tmp_path, line(action="_a/b"))

    assert summary.tables["_a/b"].endswith("%5Fa%2Fb")
    assert pq.read_table(summary.tables["_a/b"])["action"].to_pylist() == ["_a/b"]


def test_missing_reason_is_kept_as_null(tmp_path: Path) -> None:
    summary = convert(tmp_path, '{"id":"7","action":"delete","created_at":"2019-10-29T17:02:47.000Z"}')

    assert table(tmp_path)["reason"].to_pylist() == [None]
    assert summary.rows_by_reason == {"(none)": 1}


# --- Quarantine -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"id":"1","action":"delete"', "malformed_json"),
        ("not json", "malformed_json"),
        (line(id="1") + line(id="2"), "malformed_json"),
        (line().replace("delete", "\udcff"), "malformed_json"),  # the byte 0xff: invalid UTF-8
        ("nul", "malformed_json"),
        ("truth", "malformed_json"),
        ("  'single quotes'", "malformed_json"),
        ("null", "not_an_object"),
        (" false ", "not_an_object"),
        ("-5.5e3", "not_an_object"),
        ('"text"', "not_an_object"),
        ('["1"]', "not_an_object"),
        ('{"action":"delete","created_at":"2019-10-29T17:02:47.000Z"}', "missing_id"),
        (line(id="12x"), "invalid_id"),
        (line(id="-5"), "invalid_id"),
        (line(id="9223372036854775808"), "invalid_id"),
        ('{"id":true,"action":"delete","created_at":"2019-10-29T17:02:47.000Z"}', "invalid_id"),
        (line(action=""), "missing_action"),
        ('{"id":"1","action":5,"created_at":"2019-10-29T17:02:47.000Z"}', "invalid_action"),
    ],
)
def test_each_kind_of_bad_line_is_quarantined_with_its_line_number(
    tmp_path: Path, bad: str, reason: str
) -> None:
    summary = convert(tmp_path, line(id="10"), "", bad, line(id="11"))

    [reject] = rejects(tmp_path)
    assert reject["line"] == 3
    assert reject["reason"] == reason
    assert reject["source"] == str(tmp_path / "results.jsonl")
    assert summary.rejects_by_reason == {reason: 1}
    assert table(tmp_path)["id"].to_pylist() == [10, 11]


@pytest.mark.parametrize(
    ("odd", "missing", "unreadable"),
    [
        ('{"id":"1","action":"delete"}', 1, 0),
        ('{"id":"1","action":"delete","created_at":null,"redacted_at":null}', 1, 0),
        (line(id="1", created_at="yesterday"), 0, 1),
        (line(id="1", created_at="2019-13-45T17:02:47.000Z"), 0, 1),
        (line(id="1", redacted_at="soon"), 0, 1),
        ('{"id":1,"action":"delete","created_at":1571000000,"redacted_at":{"a":[]}}', 0, 1),
    ],
)
def test_a_readable_id_and_action_is_a_row_whatever_its_timestamps(tmp_path, odd, missing, unreadable):
    summary = convert(tmp_path, line(id="10"), odd)

    assert summary.rejected == 0
    row = [row for row in table(tmp_path).to_pylist() if row["id"] == 1]
    assert len(row) == 1
    assert (summary.rows_missing_created_at, summary.rows_unreadable_timestamps) == (missing, unreadable)


def test_odd_reason_and_action_values_are_kept_as_text(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1", action="\udcff"), '{"id":"2","action":"delete","reason":[1]}')

    rows = {row["id"]: row for row in table(tmp_path, "%EF%BF%BD").to_pylist() + table(tmp_path).to_pylist()}
    assert rows[1]["action"] == "\ufffd"  # a lone surrogate escape: no text a warehouse stores
    assert rows[2]["reason"] == "[1]"


def test_a_null_first_line_is_quarantined(tmp_path: Path) -> None:
    # pyarrow's JSON reader crashes the process on a block that starts with `null`: it must never see one.
    convert(tmp_path, "null", line())

    assert [r["reason"] for r in rejects(tmp_path)] == ["not_an_object"]


def test_rejected_raw_lines_are_truncated(tmp_path: Path) -> None:
    convert(tmp_path, "x" * 5000)

    [reject] = rejects(tmp_path)
    assert reject["raw"] == "x" * 1000
    assert reject["cut"] is True


def test_line_numbers_stay_exact_across_blocks_and_buckets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(results_read, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(results_dedupe, "BUCKET_BYTES", 16384)
    lines = [line(id=str(1000 + i)) for i in range(2000)]
    bad_at = [7, 500, 501, 1999]
    for number in bad_at:
        lines[number - 1] = "{broken" if number % 2 else line(id="x")
    lines[299] = ""

    summary = convert(tmp_path, *lines)

    assert [r["line"] for r in rejects(tmp_path)] == bad_at
    assert summary.rows_written == 2000 - len(bad_at) - 1
    assert sorted(table(tmp_path)["id"].to_pylist()) == sorted(
        1000 + i for i in range(2000) if i + 1 not in bad_at and i != 299
    )


def test_reconciliation_accounts_for_every_non_blank_line(tmp_path: Path) -> None:
    summary = convert(
        tmp_path, line(id="1"), line(id="1"), line(id="2", action="scrub_geo"), "", "junk", line(id="x")
    )

    assert summary.lines_read == 5
    assert (summary.rows_written, summary.duplicates, summary.rejected) == (2, 1, 2)
    assert summary.lines_read == summary.rows_written + summary.duplicates + summary.rejected
    assert summary.reconciled


def test_rejects_over_a_count_threshold_fail_after_writing_everything(tmp_path: Path) -> None:
    with pytest.raises(ResultsRejectedError, match=r"2 of 3 .* 1 of them name an ID") as raised:
        convert(tmp_path, line(), '{"id":"77","act', "more junk", max_rejects=1)

    assert str(tmp_path / "out" / "_rejects.jsonl") in str(raised.value)
    assert [r["id"] for r in rejects(tmp_path)] == ["77", None]
    assert table(tmp_path)["id"].to_pylist() == [1265324480517361664]
    written = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert (written["rejected"], written["rejected_with_id"], written["rows_written"]) == (2, 1, 1)
    assert written["reconciled"] is True
    assert raised.value.summary.rejected == 2


def test_rejects_over_a_fraction_threshold_fail(tmp_path: Path) -> None:
    with pytest.raises(ResultsRejectedError):
        convert(tmp_path, line(), line(id="2"), "junk", max_rejects=0.25)


def test_rejects_within_the_threshold_pass(tmp_path: Path) -> None:
    summary = convert(tmp_path, line(), line(id="2"), "junk", max_rejects=1)

    assert summary.rejected == 1


# --- Duplicates, ids, jobs --------------------------------------------------------------------------------


def test_duplicates_across_files_collapse_to_the_first_occurrence(tmp_path: Path) -> None:
    first = write(tmp_path / "a.jsonl", line(id="5", reason="deleted"), line(id="6"))
    second = write(tmp_path / "b.jsonl", line(id="5", reason="suspended"), line(id="5", action="scrub_geo"))

    summary = results_to_parquet({first: "111", second: "222"}, tmp_path / "out", job_type="tweets")

    rows = sorted(table(tmp_path).to_pylist(), key=lambda row: row["id"])
    assert [(r["id"], r["reason"], r["job_id"]) for r in rows] == [
        (5, "deleted", "111"),
        (6, "deleted", "111"),
    ]
    assert table(tmp_path, "scrub_geo")["id"].to_pylist() == [5]
    assert summary.duplicates == 1


def test_string_ids_keep_values_beyond_int64(tmp_path: Path) -> None:
    convert(tmp_path, line(id="9999999999999999999"), line(id="1"), id_type="string")

    assert table(tmp_path).schema == output_schema("string")
    assert sorted(table(tmp_path)["id"].to_pylist()) == ["1", "9999999999999999999"]


def test_int64_ids_are_the_default(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1265324480517361664"))

    assert table(tmp_path).schema.field("id").type == pa.int64()
    assert table(tmp_path)["id"].to_pylist() == [1265324480517361664]


def test_job_ids_come_from_the_mapping_the_argument_or_the_file_name(tmp_path: Path) -> None:
    named = write(tmp_path / "results_1425543269983784962.jsonl", line(id="1"))
    mapped = write(tmp_path / "chunk-2.jsonl", line(id="2"))
    unnamed = write(tmp_path / "chunk-3.jsonl", line(id="3"))

    summary = results_to_parquet(
        {named: None, mapped: "1425543269983784999", unnamed: None}, tmp_path / "out", job_type="users"
    )

    rows = {row["id"]: row for row in table(tmp_path).to_pylist()}
    assert rows[1]["job_id"] == "1425543269983784962"
    assert rows[2]["job_id"] == "1425543269983784999"
    assert rows[3]["job_id"] is None
    assert {row["job_type"] for row in rows.values()} == {"users"}
    assert summary.job_ids == ("1425543269983784962", "1425543269983784999")


def test_job_id_argument_applies_to_every_source(tmp_path: Path) -> None:
    sources = [write(tmp_path / "a.jsonl", line(id="1")), write(tmp_path / "b.jsonl", line(id="2"))]

    results_to_parquet([str(s) for s in sources], tmp_path / "out", job_type="tweets", job_id="42")

    assert set(table(tmp_path)["job_id"].to_pylist()) == {"42"}


def test_unknown_job_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spaces"):
        convert(tmp_path, line(), job_type="spaces")


# --- Output -----------------------------------------------------------------------------------------------


def test_empty_result_file_gives_empty_tables_with_the_schema(tmp_path: Path) -> None:
    summary = convert(tmp_path)

    for action in ("delete", "scrub_geo"):
        assert table(tmp_path, action).num_rows == 0
        assert table(tmp_path, action).schema == output_schema()
    assert summary.lines_read == 0
    assert summary.reconciled


def test_tables_load_as_one_dataset_with_side_files_ignored(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1"), line(id="2", action="scrub_geo"), "junk")

    loaded = pq.read_table(tmp_path / "out")

    assert sorted(zip(loaded["id"].to_pylist(), loaded["action"].to_pylist(), strict=True)) == [
        (1, "delete"),
        (2, "scrub_geo"),
    ]


def test_rerun_replaces_its_own_output_atomically(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1", action="quarantine"))
    summary = convert(tmp_path, line(id="2"))

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        REJECTS_FILE,
        SUMMARY_FILE,
        "delete",
        "scrub_geo",
    ]
    assert table(tmp_path)["id"].to_pylist() == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "results.jsonl"]  # no staging left over
    assert summary.tables.keys() == {"delete", "scrub_geo"}


def test_failed_conversion_leaves_the_previous_output_and_no_staging(tmp_path: Path, monkeypatch) -> None:
    convert(tmp_path, line(id="1"))

    def explode(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(results_write, "commit", explode)
    with pytest.raises(OSError, match="disk full"):
        convert(tmp_path, line(id="2"))

    assert table(tmp_path)["id"].to_pylist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "results.jsonl"]


def test_object_storage_paths_work_end_to_end(tmp_path: Path, memory_fs: None) -> None:
    from upath import UPath

    source = UPath("memory://bucket/in/results.jsonl")
    source.write_text(line(id="1") + "\n")
    destination = "memory://bucket/out"

    summary = results_to_parquet(source, destination, job_type="tweets")
    summary = results_to_parquet(str(source), destination, job_type="tweets")  # rerun replaces

    with UPath(summary.tables["delete"], protocol="memory").joinpath("part-00000.parquet").open("rb") as f:
        assert pq.read_table(f)["id"].to_pylist() == [1]
    assert UPath(summary.summary_path).exists()


def test_summary_is_written_beside_the_tables_and_json_safe(tmp_path: Path) -> None:
    summary = convert(
        tmp_path,
        line(id="3", redacted_at="2020-07-29T17:02:47.421Z"),
        line(id="9", created_at="2013-03-26T02:46:15+00:00"),
        job_id="77",
    )

    written = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert written == json.loads(json.dumps(summary.to_dict()))
    assert (written["id_min"], written["id_max"]) == ("3", "9")
    assert written["created_at_min"] == "2013-03-26T02:46:15.000Z"
    assert written["redacted_at_max"] == "2020-07-29T17:02:47.421Z"
    assert written["reconciled"] is True


def test_format_summary_shows_counts_per_action_and_reason(tmp_path: Path) -> None:
    summary = convert(tmp_path, line(id="1"), line(id="2", reason="protected"), "junk")

    text = format_summary(summary)

    assert re.search(r"delete +protected +1\n", text)
    assert re.search(r"malformed_json +1\n", text)
    assert re.search(r"reconciled +yes\n", text)


@pytest.mark.parametrize("ending", [b"\n", b""])
def test_mapped_and_read_blocks_hold_the_same_lines(tmp_path: Path, ending: bytes) -> None:
    rng = random.Random(7)
    lines = [b"x" * rng.choice([0, 5, 300, 9000, 20000]) for _ in range(60)]  # some longer than a block
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join(lines) + ending)

    mapped = [bytes(block) for block in results_read.mapped_blocks(path, 4096)]
    with path.open("rb") as stream:
        read = [bytes(block) for block in results_read.read_blocks(stream, 4096)]

    assert b"".join(mapped) == b"".join(read) == b"\n".join(lines) + b"\n"
    assert all(block.endswith(b"\n") for block in mapped)
    assert max(len(block) for block in mapped) < 2 * 20001  # a long line widens one window, not the rest
    assert len(mapped) > 10


def test_an_empty_file_has_no_blocks(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")

    assert list(results_read.mapped_blocks(tmp_path / "empty.jsonl", 4096)) == []


def test_duplicates_collapse_across_blocks_and_buckets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(results_read, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(results_dedupe, "BUCKET_BYTES", 16384)
    reasons = ["deleted", "protected", "suspended", "deactivated"]
    first = [line(id=str(i), reason=reasons[i % 4]) for i in range(1, 1001)]
    again = [line(id=str(i), reason="bounced") for i in range(1, 1001, 3)]

    summary = convert(tmp_path, *first, *again)

    rows = table(tmp_path).to_pylist()
    assert sorted(row["id"] for row in rows) == list(range(1, 1001))
    assert all(row["reason"] == reasons[row["id"] % 4] for row in rows)
    assert summary.duplicates == len(again)
    assert summary.rows_by_reason == {reason: 250 for reason in reasons}


def test_rejected_lines_keep_their_raw_text_whatever_it_holds(tmp_path: Path) -> None:
    odd = [
        "\x85 next line",
        'junk","with \\"quotes\\" and a \\\\ backslash',
        '","',
        '"',
        "\\",
        "tab\there",
        "é ✓ \u2028",
    ]
    cut = '{"id":"2","action":"delete","created_at":"2019-10-29T17:02:47.000Z",'

    convert(tmp_path, *odd, line(id="1"), cut)

    assert [r["raw"] for r in rejects(tmp_path)] == [*odd, cut]
    assert rejects(tmp_path)[-1]["id"] == "2"


def test_duplicates_are_dropped_across_row_groups_of_odd_sizes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(results_read, "BLOCK_BYTES", 1000)  # parts of a few rows: row groups of odd sizes
    monkeypatch.setattr(results_write, "ROW_GROUP_ROWS", 13)
    ids = [i % 37 for i in range(200)]  # each id again and again, the first of each at row i

    summary = convert(tmp_path, *(line(id=str(i + 1), reason=f"r{n}") for n, i in enumerate(ids)))

    rows = table(tmp_path).to_pylist()
    assert [(row["id"], row["reason"]) for row in rows] == [(i + 1, f"r{i}") for i in range(37)]
    assert summary.duplicates == 200 - 37
    assert summary.rows_by_reason == {f"r{i}": 1 for i in range(37)}
    assert pq.ParquetFile(tmp_path / "out" / "delete" / "part-00000.parquet").num_row_groups > 1


def test_hash_twins_that_are_not_duplicates_are_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        results_dedupe, "TWIN_MULTIPLIER", np.uint64(0)
    )  # every id's hash is a twin of every other

    summary = convert(tmp_path, *(line(id=str(i % 50 + 1), reason=f"r{i}") for i in range(80)))

    rows = [(row["id"], row["reason"]) for row in table(tmp_path).to_pylist()]
    assert sorted(rows) == sorted((i + 1, f"r{i}") for i in range(50))
    assert summary.duplicates == 30


def test_string_ids_are_duplicates_only_when_the_strings_are_equal(tmp_path: Path) -> None:
    summary = convert(
        tmp_path, line(id="007"), line(id="7"), line(id="007", reason="suspended"), id_type="string"
    )

    rows = [(row["id"], row["reason"]) for row in table(tmp_path).to_pylist()]
    assert sorted(rows) == [("007", "deleted"), ("7", "deleted")]
    assert summary.duplicates == 1


def test_duplicates_on_object_storage_are_dropped_in_place(tmp_path: Path, memory_fs: None) -> None:
    from upath import UPath

    source = UPath("memory://bucket/dupes/results.jsonl")
    source.write_text("\n".join([line(id="1"), line(id="2"), line(id="1", reason="suspended")]) + "\n")

    summary = results_to_parquet(source, "memory://bucket/dupes/out", job_type="tweets")

    folder = UPath(summary.tables["delete"], protocol="memory")
    assert sorted(path.name for path in folder.iterdir()) == ["part-00000.parquet"]
    with folder.joinpath("part-00000.parquet").open("rb") as f:
        assert [(row["id"], row["reason"]) for row in pq.read_table(f).to_pylist()] == [
            (1, "deleted"),
            (2, "deleted"),
        ]
    assert summary.duplicates == 1


class SignedPath:
    """Any object with ``.open()`` is a source; this one prints as a signed URL."""

    def __init__(self, real: Path) -> None:
        self.real = real

    def open(self, mode: str = "rb") -> object:
        return self.real.open(mode)

    def __str__(self) -> str:
        return "https://storage.example/results.jsonl?X-Goog-Signature=secret"


def test_signed_url_queries_never_reach_the_rejects_or_summary(tmp_path: Path) -> None:
    source = SignedPath(write(tmp_path / "results.jsonl", "junk", line()))

    summary = results_to_parquet([source], tmp_path / "out", job_type="tweets")

    assert summary.sources == ("https://storage.example/results.jsonl",)
    assert summary.rows_written == 1
    assert "secret" not in (tmp_path / "out" / REJECTS_FILE).read_text()


# --- The fast path for the API's own line shape ----------------------------------------------------------


def api_line(
    id: str = "1265324480517361664",
    reason: str = "deleted",
    redacted_at: str | None = "2020-07-29T17:02:47.000Z",
) -> str:
    """A line exactly as the API writes it: keys in its order, no spaces (the shapes the fast path takes);
    ``redacted_at=None`` leaves the key out, as the API does."""
    redacted = "" if redacted_at is None else f'"redacted_at":"{redacted_at}",'
    return (
        f'{{"id":"{id}","action":"delete","created_at":"2019-10-29T17:02:47.000Z",'
        f'{redacted}"reason":"{reason}"}}'
    )


MIXED_BLOCK = [
    api_line("1"),
    line(id="2"),  # other key order: general path
    api_line("3").replace('"id":"3"', '"ix":"3"'),  # the shape, but not its keys
    api_line("4", reason='del"eted'),  # the shape, but a stray quote in a value
    "",
    api_line("x5"),  # the shape, a value the validation refuses
    api_line("6"),
    '{"id":"7"',  # truncated
    api_line("8", redacted_at="2020-13-29T17:02:47.000Z"),  # an impossible timestamp: null
    api_line("9"),
    api_line("10", redacted_at=None),
]


def test_api_shaped_and_odd_lines_in_one_block_keep_exact_line_numbers(tmp_path: Path) -> None:
    summary = convert(tmp_path, *MIXED_BLOCK)

    assert table(tmp_path)["id"].to_pylist() == [1, 2, 6, 8, 9, 10]
    assert [(r["line"], r["reason"]) for r in rejects(tmp_path)] == [
        (3, "missing_id"),
        (4, "malformed_json"),
        (6, "invalid_id"),
        (8, "malformed_json"),
    ]
    assert summary.rows_unreadable_timestamps == 1
    assert summary.reconciled


def no_fast_rows(id_type: str) -> api_lines.FastRows:
    """What the fast path returns when it takes no line."""
    return api_lines.parse_api_lines(b"", np.zeros(1, np.int32), id_type)


def test_fast_path_writes_what_the_general_path_writes(tmp_path: Path, monkeypatch) -> None:
    lines = [*MIXED_BLOCK, api_line("11", redacted_at=""), api_line("12", reason="")]
    (tmp_path / "fast").mkdir()
    (tmp_path / "general").mkdir()
    fast = convert(tmp_path / "fast", *lines)
    monkeypatch.setattr(
        results_block, "parse_api_lines", lambda block, offsets, id_type: no_fast_rows(id_type)
    )
    general = convert(tmp_path / "general", *lines)

    assert table(tmp_path / "fast").equals(table(tmp_path / "general"))
    assert [{**r, "source": ""} for r in rejects(tmp_path / "fast")] == [
        {**r, "source": ""} for r in rejects(tmp_path / "general")
    ]
    assert fast.rejects_by_reason == general.rejects_by_reason


def test_first_occurrence_wins_between_the_two_api_shapes_of_one_block(tmp_path: Path) -> None:
    convert(tmp_path, api_line("1", reason="protected", redacted_at=None), api_line("1", reason="deleted"))

    assert table(tmp_path).to_pylist()[0]["reason"] == "protected"


def test_api_line_without_redacted_at_has_a_null_redacted_at(tmp_path: Path) -> None:
    convert(tmp_path, api_line("1", redacted_at=None))

    assert table(tmp_path).to_pylist()[0]["redacted_at"] is None


def test_first_occurrence_wins_between_fast_and_general_lines_of_one_block(tmp_path: Path) -> None:
    convert(tmp_path, line(id="1", reason="protected"), api_line("1", reason="deleted"))

    assert table(tmp_path).to_pylist()[0]["reason"] == "protected"


# --- Geo scrubs, odd actions, inputs that once crashed -----------------------------------------------------

GEO_AS_X_DOCUMENTS = line(id="1", action="delete", reason="scrub_geo")
GEO_AS_ACTION = line(id="2", action="scrub_geo", reason="scrub_geo")


@pytest.mark.parametrize("fast", [True, False])
def test_a_geo_scrub_goes_to_scrub_geo_whatever_its_action(tmp_path: Path, monkeypatch, fast: bool) -> None:
    lines = [
        GEO_AS_X_DOCUMENTS,
        GEO_AS_ACTION,
        api_line("3", reason="scrub_geo"),
        line(id="4"),
    ]
    if not fast:
        monkeypatch.setattr(
            results_block, "parse_api_lines", lambda block, offsets, id_type: no_fast_rows(id_type)
        )

    summary = convert(tmp_path, *lines)

    geo = table(tmp_path, "scrub_geo").to_pylist()
    assert sorted(row["id"] for row in geo) == [1, 2, 3]
    assert {row["action"] for row in geo} == {"scrub_geo"}  # the action column equals the folder
    assert table(tmp_path)["id"].to_pylist() == [4]
    assert summary.rows_by_action == {"delete": 1, "scrub_geo": 3}
    assert summary.geo_scrub == "scrub"


def test_geo_scrubs_can_be_deleted_instead(tmp_path: Path) -> None:
    summary = convert(tmp_path, GEO_AS_X_DOCUMENTS, GEO_AS_ACTION, line(id="4"), geo_scrub="delete")

    assert sorted(table(tmp_path)["id"].to_pylist()) == [1, 2, 4]
    assert set(table(tmp_path)["action"].to_pylist()) == {"delete"}
    assert table(tmp_path, "scrub_geo").num_rows == 0
    assert summary.rows_by_action_reason["delete"] == {"deleted": 1, "scrub_geo": 2}


def test_an_unknown_geo_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="geo_scrub"):
        convert(tmp_path, line(), geo_scrub="keep")


def test_a_new_action_keeps_its_own_table_and_a_long_one_a_bounded_folder(tmp_path: Path) -> None:
    long_action = "x" * 300 + "/é"
    summary = convert(tmp_path, line(id="1", action="quarantine"), line(id="2", action=long_action))

    assert table(tmp_path, "quarantine")["id"].to_pylist() == [1]
    folder = Path(summary.tables[long_action])
    assert len(folder.name) <= 120
    assert pq.read_table(folder)["action"].to_pylist() == [long_action]


@pytest.mark.parametrize(
    "content",
    [
        b"\n\n  \n\r\n",
        b'{"id":"12","act',
        line(id="1").encode() + b'\n{"id":"12","act',
        b'{"id":"5","action":"delete","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        b"\xff\xfe\x00\n\x85\n",
    ],
)
def test_inputs_that_once_crashed_end_as_rows_or_rejects(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "results.jsonl").write_bytes(content)

    summary = results_to_parquet(tmp_path / "results.jsonl", tmp_path / "out", job_type="tweets")

    assert summary.reconciled
    assert summary.lines_read == summary.rows_written + summary.rejected
    assert len(rejects(tmp_path)) == summary.rejected


def test_the_emulators_truncated_results_are_rejected_in_every_size(tmp_path: Path) -> None:
    from airflow_provider_xcompliance.emulator.results import RuleSource, process_upload, truncate_mid_line

    for count in (1, 2, 3, 5, 8, 13, 40, 200):
        folder = tmp_path / str(count)
        folder.mkdir()
        (folder / "ids.txt").write_text(
            "".join(f"{1_400_000_000_000_000_000 + n}\n" for n in range(count * 40))
        )
        served = folder / "results.jsonl"
        outcome = process_upload(
            folder / "ids.txt", served, folder / "truth.jsonl", job_type="tweets", source=RuleSource()
        )
        truncate_mid_line(served)

        summary = results_to_parquet(served, folder / "out", job_type="tweets")

        assert summary.rejected == 1, count
        assert summary.rows_written == summary.lines_read - 1 < outcome.results
        assert summary.reconciled


def test_summary_counts_the_lines_each_parse_path_read(tmp_path: Path) -> None:
    summary = convert(tmp_path, *MIXED_BLOCK)

    # fast: 1, 2 (the shape without redacted_at), 6, 9, 10; general (pyarrow): 3, x5, 8; python: the stray
    # quote and the truncated line
    assert summary.lines_by_parse_path == {"fast": 5, "general": 3, "python": 2}
    assert sum(summary.lines_by_parse_path.values()) == summary.lines_read
    assert "parse paths           fast 5, general 3, python 2" in format_summary(summary)


@pytest.mark.parametrize("id_type", ["int64", "string"])
@pytest.mark.parametrize("crlf", [False, True])
def test_every_line_the_emulator_writes_takes_the_fast_path(tmp_path: Path, id_type: str, crlf: bool) -> None:
    """The emulator writes the API's shapes (with and without redacted_at): a column the fast path does not
    know would send every such line down the general path, and fail here."""
    from airflow_provider_xcompliance.emulator.results import RuleSource, process_upload

    (tmp_path / "ids.txt").write_text(
        "".join(f"{1_400_000_000_000_000_000 + 7919 * n}\n" for n in range(6000))
    )
    served = tmp_path / "results.jsonl"
    process_upload(
        tmp_path / "ids.txt",
        served,
        tmp_path / "truth.jsonl",
        job_type="tweets",
        source=RuleSource(),
        crlf=crlf,
    )
    lines = served.read_text().splitlines()
    assert sum('"redacted_at"' in line for line in lines) not in (0, len(lines))  # both shapes are there

    summary = results_to_parquet(served, tmp_path / "out", job_type="tweets", id_type=id_type)  # type: ignore[arg-type]

    assert summary.lines_read == len(lines) > 100
    assert summary.lines_by_parse_path == {"fast": len(lines), "general": 0, "python": 0}
    assert summary.rows_written == len(lines)

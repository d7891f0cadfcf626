"""Specification of ID sources, validation, normalisation, deduplication and chunking."""

from __future__ import annotations

import csv
import gzip
import json
import random
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_xcompliance.exceptions import IdSourceError, InvalidIdsError
from airflow_provider_xcompliance.ids import (
    DEFAULT_DEDUPE_MEMORY_IDS,
    READERS,
    Fmt,
    IdCounts,
    PreparedIds,
    Reader,
    batches,
    columns,
    csv_files,
    distinct,
    expand_sources,
    iter_id_batches,
    normalise_id,
    parquet_files,
    prepare_ids,
    validate_ids,
)
from airflow_provider_xcompliance.ids import text as text_reader
from airflow_provider_xcompliance.ids.sources import IdFile
from airflow_provider_xcompliance.ids.values import BatchCall


def write_text(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def valid_ids(sources: object, **kwargs: object) -> list[str]:
    return [i for batch in iter_id_batches(sources, **kwargs) for i in batch.ids.decode().splitlines()]  # type: ignore[arg-type]


def all_invalid(sources: object, **kwargs: object) -> list[tuple[str, int, str, str]]:
    return [
        (Path(i.source).name, i.line, i.value, i.reason)
        for batch in iter_id_batches(sources, **kwargs)  # type: ignore[arg-type]
        for i in batch.invalid
    ]


def chunk_ids(prepared: object) -> list[list[str]]:
    return [chunk.path.read_text().splitlines() for chunk in prepared.chunks]  # type: ignore[attr-defined]


# --- One value -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1425543269983784962", "1425543269983784962"),
        ("  42\t", "42"),
        ("42\r", "42"),
        ("\ufeff42", "42"),
        ("007", "7"),
        ("0000000000000000000000000001", "1"),
        ("9999999999999999999", "9999999999999999999"),
        (str(2**63 - 1), str(2**63 - 1)),
    ],
)
def test_normalise_id_accepts_and_normalises(raw: str, expected: str) -> None:
    assert normalise_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("0", "zero"),
        ("000", "zero"),
        ("+42", "signed"),
        ("-42", "signed"),
        ("4 2", "whitespace inside"),
        ("\u0664\u0662", "non-ASCII"),  # Arabic-Indic digits
        ("\uff14\uff12", "non-ASCII"),  # fullwidth digits
        ("12345678901234567890", "more than 19 digits"),
        (str(2**64 - 1), "more than 19 digits"),
        (str(2**64), "more than 19 digits"),
        ("0x1f", "not a decimal number"),
        ("1e3", "not a decimal number"),
        ("42.0", "not a decimal number"),
        ("   ", "blank"),
    ],
)
def test_normalise_id_refuses_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_id(raw)


# --- Text sources ----------------------------------------------------------------------------------------


def test_text_file_trims_bom_crlf_and_whitespace_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", b"\xef\xbb\xbf11\r\n 22 \r\n\r\n\t33\n\n44")
    assert valid_ids(path) == ["11", "22", "33", "44"]


def test_text_batches_count_every_line_including_blank_ones(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n\n2\nx\n")
    batches = list(iter_id_batches(path))
    assert sum(b.lines for b in batches) == 4
    assert sum(b.blank for b in batches) == 1


def test_crlf_file_is_written_with_unix_newlines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "11\r\n22\r\n")
    assert b"".join(b.ids for b in iter_id_batches(path)) == b"11\n22\n"


def test_invalid_lines_are_reported_with_exact_line_numbers_and_reasons(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n+2\n\n3 4\n\u0665\n" + str(2**64) + "\n0\n5\n")
    assert all_invalid(path) == [
        ("ids.txt", 2, "+2", "signed"),
        ("ids.txt", 4, "3 4", "whitespace inside"),
        ("ids.txt", 5, "\u0665", "non-ASCII characters"),
        ("ids.txt", 6, str(2**64), "more than 19 digits"),
        ("ids.txt", 7, "0", "zero is not an ID"),
    ]


def test_line_numbers_stay_exact_across_many_small_blocks(tmp_path: Path) -> None:
    lines = [str(n) for n in range(1, 5001)]
    lines[3456] = "bad"
    path = write_text(tmp_path / "ids.txt", "\n".join(lines) + "\n")
    assert all_invalid(path, block_size=64) == [("ids.txt", 3457, "bad", "not a decimal number")]


def test_fast_and_slow_paths_agree_with_normalise_id_on_random_lines(tmp_path: Path) -> None:
    rng = random.Random(7)
    pool = [
        "1",
        "42",
        "007",
        "",
        " 5 ",
        "9" * 19,
        "1" * 20,
        "+3",
        "0",
        "x",
        "1\r",
        "\ufeff8",
        "12 3",
        "\uff11",
    ]
    lines = [rng.choice(pool) if rng.random() < 0.2 else str(rng.randrange(1, 10**19)) for _ in range(3000)]
    path = write_text(tmp_path / "ids.txt", "\n".join(lines) + "\n")
    expected_ids, expected_bad = [], []
    for number, line in enumerate(lines, 1):
        try:
            expected_ids.append(normalise_id(line))
        except ValueError as error:
            if str(error) != "blank":
                expected_bad.append(number)
    for block_size in (37, 4096, 1 << 20):
        assert valid_ids(path, block_size=block_size) == expected_ids
        assert [line for _, line, _, _ in all_invalid(path, block_size=block_size)] == expected_bad


def test_zero_padded_lines_are_normalised(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "".join(f"{n:025d}\r\n" for n in (1, 42, 10**19 - 1)))
    assert valid_ids(path) == ["1", "42", str(10**19 - 1)]


def test_zero_padded_zero_and_out_of_range_values_are_refused(tmp_path: Path) -> None:
    lines = [f"{n:022d}" for n in (5, 0, 2**64, 10**19, 6)]
    path = write_text(tmp_path / "ids.txt", "\n".join(lines) + "\n")
    assert valid_ids(path) == ["5", "6"]
    assert [(line, reason) for _, line, _, reason in all_invalid(path)] == [
        (2, "zero is not an ID"),
        (3, "more than 19 digits"),
        (4, "more than 19 digits"),
    ]


def test_last_line_without_newline_is_read(tmp_path: Path) -> None:
    assert valid_ids(write_text(tmp_path / "ids.txt", "1\n2")) == ["1", "2"]


def test_overlong_line_is_refused_and_following_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n" + "9" * 200_000 + "\n3\n")
    assert valid_ids(path, block_size=4096) == ["1", "3"]
    assert [(line, reason) for _, line, _, reason in all_invalid(path, block_size=4096)] == [
        (2, "line too long")
    ]


def test_gzipped_text_is_decompressed(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt.gz"
    path.write_bytes(gzip.compress(b"1\n2\n"))
    assert valid_ids(path) == ["1", "2"]


def test_text_is_streamed_in_bounded_batches(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "".join(f"{n}\n" for n in range(1, 100_001)))
    batches = list(iter_id_batches(path, block_size=16_384))
    assert len(batches) > 30
    assert max(len(b.ids) for b in batches) <= 16_384 + 20  # a block plus the line it cut
    assert sum(b.count for b in batches) == 100_000


# --- CSV and Parquet -------------------------------------------------------------------------------------


def test_csv_reads_the_named_column_as_text_without_losing_leading_zeros_or_signs(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", '\ufeffname,tweet_id\n"a, b",007\nc,+5\nd,\ne,12\n')
    assert valid_ids(path, id_column="tweet_id") == ["7", "12"]
    assert all_invalid(path, id_column="tweet_id") == [("ids.csv", 2, "+5", "signed")]


def test_csv_with_one_column_needs_no_id_column(tmp_path: Path) -> None:
    assert valid_ids(write_text(tmp_path / "ids.csv", "id\n1\n2\n")) == ["1", "2"]


def test_csv_with_several_columns_and_no_id_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="id_column"):
        valid_ids(write_text(tmp_path / "ids.csv", "a,b\n1,2\n"))


def test_csv_with_unknown_id_column_names_the_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="columns: a, b"):
        valid_ids(write_text(tmp_path / "ids.csv", "a,b\n1,2\n"), id_column="id")


def test_parquet_int_column_is_range_checked(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(
        pa.table({"id": pa.array([5, None, 0, -3, 2**63 - 1], pa.int64()), "x": [1, 2, 3, 4, 5]}), path
    )
    assert valid_ids(path, id_column="id") == ["5", str(2**63 - 1)]
    assert all_invalid(path, id_column="id") == [
        ("ids.parquet", 3, "0", "zero is not an ID"),
        ("ids.parquet", 4, "-3", "signed"),
    ]


def test_parquet_uint64_column_refuses_twenty_digit_values(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([10**19 - 1, 10**19, 2**64 - 1], pa.uint64())}), path)
    assert valid_ids(path) == [str(10**19 - 1)]
    assert [line for _, line, _, _ in all_invalid(path)] == [2, 3]


def test_parquet_string_column_is_validated_like_text(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": ["007", " 8 ", None, "", "+1", "\uff11", str(2**64)]}), path)
    batches = list(iter_id_batches(path))
    assert b"".join(b.ids for b in batches) == b"7\n8\n"
    assert sum(b.blank for b in batches) == 2
    assert [(line, reason) for _, line, _, reason in all_invalid(path)] == [
        (5, "signed"),
        (6, "non-ASCII characters"),
        (7, "more than 19 digits"),
    ]


def test_parquet_string_cell_holding_a_newline_keeps_the_rows_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": ["1", "2\n3", None, "4"]}), path)
    assert valid_ids(path) == ["1", "4"]
    assert all_invalid(path) == [("ids.parquet", 2, "2\n3", "whitespace inside")]


def test_parquet_binary_column_is_validated_like_text(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([b"01", b"\xff", None], pa.binary())}), path)
    assert valid_ids(path) == ["1"]
    assert all_invalid(path) == [("ids.parquet", 2, "\\xff", "non-ASCII characters")]


def test_parquet_dictionary_column_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array(["1", "2", "1"]).dictionary_encode()}), path)
    assert valid_ids(path) == ["1", "2", "1"]


def test_parquet_float_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": [1.0]}), path)
    with pytest.raises(IdSourceError, match="floating point"):
        valid_ids(path)


def test_parquet_is_read_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array(range(1, 50_001), pa.int64())}), path, row_group_size=10_000)
    batches = list(iter_id_batches(path, block_size=16 * 4096))
    assert max(b.lines for b in batches) <= 4096
    assert [b.first_line for b in batches][:3] == [1, 4097, 8193]
    assert sum(b.count for b in batches) == 50_000


# --- Several sources, folders, globs, object storage -----------------------------------------------------


def test_several_files_are_read_in_the_given_order(tmp_path: Path) -> None:
    second = write_text(tmp_path / "b.txt", "2\n")
    first = write_text(tmp_path / "a.csv", "id\n1\n")
    assert valid_ids([second, first]) == ["2", "1"]


def test_folder_is_read_recursively_in_path_order_skipping_markers(tmp_path: Path) -> None:
    write_text(tmp_path / "d" / "b.txt", "2\n")
    write_text(tmp_path / "d" / "a" / "x.txt", "1\n")
    write_text(tmp_path / "d" / "_SUCCESS", "")
    write_text(tmp_path / "d" / ".hidden.txt", "junk\n")
    assert valid_ids(tmp_path / "d") == ["1", "2"]


def test_glob_matches_files_in_path_order(tmp_path: Path) -> None:
    write_text(tmp_path / "part-2.txt", "2\n")
    write_text(tmp_path / "part-1.txt", "1\n")
    write_text(tmp_path / "other.txt", "9\n")
    assert valid_ids(str(tmp_path / "part-*.txt")) == ["1", "2"]


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IdSourceError, match="No ID files match"):
        expand_sources(str(tmp_path / "*.txt"))


def test_fmt_overrides_the_suffix(tmp_path: Path) -> None:
    assert valid_ids(write_text(tmp_path / "ids.dat", "id\n1\n"), fmt="csv") == ["1"]


def test_unknown_suffix_asks_for_fmt(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt="):
        valid_ids(write_text(tmp_path / "ids.dat", "1\n"))


def test_object_storage_uri_folder_and_glob_are_read(memory_fs: None) -> None:
    from upath import UPath

    root = UPath("memory://xcompliance-ids-test/in")
    (root / "a.txt").write_bytes(b"1\n")
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "b.txt").write_bytes(b"2\n")
    pq.write_table(pa.table({"id": [3]}), (root / "c.parquet").open("wb"))
    assert valid_ids("memory://xcompliance-ids-test/in") == ["1", "3", "2"]
    assert valid_ids("memory://xcompliance-ids-test/in/*.txt") == ["1"]
    assert valid_ids(root / "sub" / "b.txt") == ["2"]


# --- The registry of formats ---------------------------------------------------------------------------


def test_the_format_names_typed_for_users_are_the_registered_readers() -> None:
    assert set(get_args(Fmt)) == set(READERS)


def test_a_new_format_is_one_reader_and_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_jsonl(file: IdFile, id_column: str | None, block_size: int) -> Iterator[BatchCall]:
        with file.open() as stream:
            lines = b"".join(f"{json.loads(line)[id_column]}\n".encode() for line in stream)
        yield partial(text_reader.text_batch, file.source, 1, lines, "row")

    jsonl = Reader("jsonl", (".jsonl",), read_jsonl)
    monkeypatch.setitem(READERS, "jsonl", jsonl)
    path = write_text(tmp_path / "ids.jsonl", '{"id": "007"}\n{"id": "x"}\n{"id": "3"}\n')
    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip")
    assert chunk_ids(prepared) == [["7", "3"]]
    assert prepared.counts.invalid == 1


# --- prepare_ids: fail and skip --------------------------------------------------------------------------


def test_fail_names_file_lines_values_and_total_and_writes_nothing(tmp_path: Path) -> None:
    bad = ["+1", "x", "2 2", "-4", "0", "y", "z"]
    path = write_text(tmp_path / "ids.txt", "".join(f"{n}\n{b}\n" for n, b in enumerate(bad, 1)))
    out = tmp_path / "out"
    with pytest.raises(InvalidIdsError) as caught:
        prepare_ids(path, out, max_ids_per_job=2)
    message = str(caught.value)
    assert message.startswith("7 invalid ID value(s)")
    assert "ids.txt line 2: '+1' (signed)" in message
    assert "line 10: '0'" in message
    assert "'y'" not in message  # only the first few are quoted
    assert not list(out.glob("ids-*"))
    assert caught.value.total == 7
    assert [(s.line, s.value) for s in caught.value.samples[:2]] == [(2, "+1"), (4, "x")]


def test_fail_message_escapes_and_shortens_values(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", b"1\x1b[31m" + b"9" * 100 + b"\n")
    with pytest.raises(InvalidIdsError) as caught:
        validate_ids(path)
    assert "\\x1b[31m" in str(caught.value)
    assert "9" * 41 not in str(caught.value)


def test_skip_writes_rejects_csv_and_keeps_the_valid_ids(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", '1\n"2"\n3\n\uff14\n')
    rejects = tmp_path / "rejects" / "r.csv"
    prepared = prepare_ids(path, tmp_path / "out", on_invalid="skip", rejects_path=rejects)
    assert chunk_ids(prepared) == [["1", "3"]]
    with rejects.open(newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [
            ["source", "line", "value", "reason"],
            [str(path), "2", '"2"', "not a decimal number"],
            [str(path), "4", "\uff14", "non-ASCII characters"],
        ]
    assert prepared.rejects_path == rejects
    assert (prepared.counts.valid, prepared.counts.invalid) == (2, 2)


def test_skip_puts_rejects_in_out_dir_by_default(tmp_path: Path) -> None:
    prepared = prepare_ids(write_text(tmp_path / "ids.txt", "1\n"), tmp_path / "out", on_invalid="skip")
    assert prepared.rejects_path == tmp_path / "out" / "rejects.csv"
    assert prepared.rejects_path.read_text().splitlines() == ["source,line,value,reason"]


def test_unknown_on_invalid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_invalid"):
        prepare_ids(write_text(tmp_path / "ids.txt", "1\n"), tmp_path / "out", on_invalid="ignore")  # type: ignore[arg-type]


# --- Counts and duplicates -------------------------------------------------------------------------------


def test_counts_add_up(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n\n2\n2\nbad\n3\n")
    counts = prepare_ids(path, tmp_path / "out", on_invalid="skip").counts
    assert counts == IdCounts(read=6, blank=1, valid=4, invalid=1, duplicates=1, written=4)


def test_validate_ids_counts_without_writing(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n1\n2\n")
    counts = validate_ids(path).as_dict()
    assert counts == {
        "read": 3, "blank": 0, "valid": 3, "invalid": 0,
        "duplicates": 1, "written": 3,
    }  # fmt: skip
    assert list(tmp_path.iterdir()) == [path]


def test_distinct_ids_count_no_duplicate(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "".join(f"{10**17 + n * 7919}\n" for n in range(100_000)))
    assert validate_ids(path).duplicates == 0
    assert prepare_ids(path, tmp_path / "out").counts.duplicates == 0


@pytest.mark.parametrize("memory_ids", [DEFAULT_DEDUPE_MEMORY_IDS, 1_000])
def test_duplicates_are_counted_exactly_without_dedupe(tmp_path: Path, memory_ids: int) -> None:
    rng = random.Random(3)
    distinct = rng.sample(range(10**17, 10**18), 20_000)
    ids = distinct + rng.choices(distinct, k=5_000)
    rng.shuffle(ids)
    path = write_text(tmp_path / "ids.txt", "".join(f"{i}\n" for i in ids))
    assert validate_ids(path, dedupe_memory_ids=memory_ids, block_size=4096).duplicates == 5_000
    prepared = prepare_ids(path, tmp_path / "out", dedupe_memory_ids=memory_ids, block_size=4096)
    assert (prepared.counts.duplicates, prepared.counts.written) == (5_000, 25_000)
    assert [int(i) for i in chunk_ids(prepared)[0]] == ids  # input order kept without dedupe
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".dedupe")]


def test_dedupe_removes_duplicates_and_counts_them_exactly(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "3\n1\n3\n2\n1\n003\n")
    prepared = prepare_ids(path, tmp_path / "out", dedupe=True)
    assert chunk_ids(prepared) == [["1", "2", "3"]]
    assert prepared.counts.duplicates == 3
    assert prepared.counts.written == 3


def test_the_hash_behind_exact_counts_is_a_bijection() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 2**64 - 1, 10_000, np.uint64, endpoint=True), [0, 1, 2**64 - 1]])
    values = values.astype(np.uint64)
    hashes = distinct._mix64(values)
    assert len(np.unique(hashes)) == len(np.unique(values))
    assert np.array_equal(distinct._unmix64(hashes.copy()), values)


@pytest.mark.parametrize("memory_ids", [1_000, 50])
def test_dedupe_spilling_to_disk_gives_the_same_set(tmp_path: Path, memory_ids: int) -> None:
    rng = random.Random(5)
    distinct = list({rng.randrange(1, 10**19) for _ in range(5_000)})
    ids = distinct + rng.choices(distinct, k=2_000)
    rng.shuffle(ids)
    path = write_text(tmp_path / "ids.txt", "".join(f"{i}\n" for i in ids))
    prepared = prepare_ids(path, tmp_path / "out", dedupe=True, dedupe_memory_ids=memory_ids, block_size=4096)
    written = [int(i) for chunk in chunk_ids(prepared) for i in chunk]
    assert sorted(written) == sorted(distinct)
    assert prepared.counts.duplicates == 2_000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".dedupe")]


# --- Batches checked in parallel ------------------------------------------------------------------------


@pytest.fixture
def shuffled_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four threads, and batches that finish out of order: results must still come in input order."""
    rng = random.Random(11)
    monkeypatch.setattr(batches, "WORKERS", 4)
    for module, name in (
        (text_reader, "text_batch"),
        (columns, "text_batch"),
        (csv_files, "column_batch"),
        (parquet_files, "column_batch"),
    ):
        check = getattr(module, name)

        def late(*args: object, _check: object = check) -> object:
            time.sleep(rng.choice((0, 0, 0.002)))
            return _check(*args)  # type: ignore[operator]

        monkeypatch.setattr(module, name, late)


def expected_pass(values: list[object], shown: list[str]) -> tuple[list[str], list[list[str]]]:
    """Valid IDs and ``[line, value, reason]`` rejects, one value at a time: what any pass must give."""
    valid, rejects = [], []
    for number, (value, text) in enumerate(zip(values, shown, strict=True), 1):
        try:
            valid.append(normalise_id("" if value is None else str(value)))
        except ValueError as error:
            if str(error) != "blank":
                rejects.append([str(number), text, str(error)])
    return valid, rejects


def rejects_of(prepared: PreparedIds) -> list[list[str]]:
    assert prepared.rejects_path is not None
    with prepared.rejects_path.open(newline="", encoding="utf-8") as f:
        return [row[1:] for row in csv.reader(f)][1:]


@pytest.mark.usefixtures("shuffled_batches")
def test_many_small_text_batches_keep_line_numbers_rejects_and_chunks_in_order(tmp_path: Path) -> None:
    rng = random.Random(12)
    bad = ["x", "-4", "0", "1" * 20, "12 3", "\uff11", ""]
    lines = [rng.choice(bad) if rng.random() < 0.05 else str(rng.randrange(1, 10**19)) for _ in range(6000)]
    path = write_text(tmp_path / "ids.txt", "\n".join(lines) + "\n")
    valid, rejects = expected_pass(list(lines), lines)

    prepared = prepare_ids(path, tmp_path / "out", on_invalid="skip", max_ids_per_job=997, block_size=256)

    assert [i for chunk in chunk_ids(prepared) for i in chunk] == valid
    assert [c.ids for c in prepared.chunks] == [997] * (len(valid) // 997) + [len(valid) % 997]
    assert rejects_of(prepared) == rejects
    assert (prepared.counts.read, prepared.counts.valid, prepared.counts.invalid) == (
        6000,
        len(valid),
        len(rejects),
    )
    with pytest.raises(InvalidIdsError) as caught:
        validate_ids(path, block_size=256)
    assert [(s.line, s.value) for s in caught.value.samples] == [(int(n), v) for n, v, _ in rejects[:5]]
    assert caught.value.total == len(rejects)


@pytest.mark.usefixtures("shuffled_batches")
@pytest.mark.parametrize("kind", ["int", "string"])
def test_many_small_parquet_batches_keep_row_numbers_and_rejects_in_order(tmp_path: Path, kind: str) -> None:
    rng = random.Random(13)
    values: list[object] = [
        rng.choice([None, 0, -7]) if rng.random() < 0.05 else rng.randrange(1, 2**63) for _ in range(5000)
    ]
    if kind == "string":
        values = [None if v is None else f"{v:03d}" for v in values]
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": values}), path, row_group_size=1000)
    valid, rejects = expected_pass(values, [str(v) for v in values])

    prepared = prepare_ids(path, tmp_path / "out", on_invalid="skip", block_size=16 * 7)  # 7 rows a batch

    assert [i for chunk in chunk_ids(prepared) for i in chunk] == valid
    assert rejects_of(prepared) == rejects
    assert prepared.counts.read == 5000


def test_a_read_error_is_raised_after_the_batches_read_before_it(tmp_path: Path) -> None:
    first = write_text(tmp_path / "a.txt", "1\nbad\n2\n")
    broken = write_text(tmp_path / "b.parquet.gz", b"")
    rejects = tmp_path / "rejects.csv"

    with pytest.raises(ValueError, match="compress internally"):
        prepare_ids([first, broken], tmp_path / "out", on_invalid="skip", rejects_path=rejects)

    assert rejects.read_text().splitlines()[1:] == [f"{first},2,bad,not a decimal number"]
    assert not list((tmp_path / "out").glob("ids-*"))


# --- Sources that cannot be read, and records that cannot be parsed ------------------------------------


def ok_parquet(path: Path, rows: int = 1000, group: int = 100) -> bytes:
    pq.write_table(pa.table({"id": list(range(1, rows + 1))}), path, row_group_size=group)
    return path.read_bytes()


def truncated_gz(path: Path) -> Path:
    data = gzip.compress(b"".join(b"%d\n" % n for n in range(1, 100_000)))
    return write_text(path, data[: len(data) // 2])


def corrupt_parquet(path: Path) -> Path:
    data = ok_parquet(path)
    middle = len(data) // 2
    return write_text(path, data[:middle] + b"\0" * 100 + data[middle + 100 :])


NOT_PARQUET = "ids.parquet is not a readable Parquet file"
UNREADABLE = {  # name: (file maker, words the message must hold, the library's error kept as the cause)
    "truncated gzip": (truncated_gz, "ids.txt.gz cannot be read after line 0", EOFError),
    "not gzip": (lambda p: write_text(p, b"not gzip"), "ids.txt.gz cannot be read", OSError),
    "corrupt parquet": (corrupt_parquet, "ids.parquet: row group 6 (rows 601 to 700) cannot", OSError),
    "not parquet": (lambda p: write_text(p, b"hello"), NOT_PARQUET, pa.ArrowInvalid),
    "truncated parquet": (lambda p: write_text(p, ok_parquet(p)[:300]), NOT_PARQUET, pa.ArrowInvalid),
    "missing": (lambda p: p, "ids.txt cannot be read", FileNotFoundError),
}


def truncated_csv_gz(path: Path) -> Path:
    data = gzip.compress(b"id\n" + b"".join(b"%d\n" % n for n in range(1, 200_000)))
    return write_text(path, data[: len(data) // 2])


UNREADABLE["truncated csv gzip"] = (truncated_csv_gz, "ids.csv.gz cannot be read after row 0", EOFError)
SUFFIXES = {
    "truncated gzip": ".txt.gz",
    "not gzip": ".txt.gz",
    "missing": ".txt",
    "truncated csv gzip": ".csv.gz",
}


@pytest.mark.parametrize("on_invalid", ["fail", "skip"])
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_an_unreadable_source_fails_naming_file_and_place_whatever_on_invalid(
    tmp_path: Path, case: str, on_invalid: str
) -> None:
    make, words, cause = UNREADABLE[case]
    path = make(tmp_path / f"ids{SUFFIXES.get(case, '.parquet')}")
    good = write_text(tmp_path / "a.txt", "1\n")
    with pytest.raises(IdSourceError) as caught:
        prepare_ids([good, path], tmp_path / "out", on_invalid=on_invalid)  # type: ignore[arg-type]
    assert words in str(caught.value)
    assert caught.value.source == str(path)
    assert isinstance(caught.value.__cause__, cause)
    assert not list((tmp_path / "out").glob("ids-*"))


def test_a_missing_id_column_is_a_source_error_naming_the_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", "a,b\n1,2\n")
    with pytest.raises(IdSourceError, match=r"ids\.csv has no column 'id' \(columns: a, b\)"):
        validate_ids(path, id_column="id", on_invalid="skip")


@pytest.mark.parametrize("text", ["id\n", "id\r\n", "\ufeffid\n", ""])
def test_a_header_only_or_empty_csv_holds_no_record(tmp_path: Path, text: str) -> None:
    counts = validate_ids(write_text(tmp_path / "ids.csv", text), id_column="id" if text else None)
    assert (counts.read, counts.valid) == (0, 0)


def test_ragged_csv_rows_are_invalid_records_named_by_line(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", "id,name\n1,a\n\n2\n3,c,d\n4,d\n")
    with pytest.raises(InvalidIdsError) as caught:
        validate_ids(path, id_column="id")
    assert "ids.csv line 4: '2' (1 fields, the header has 2)" in str(caught.value)
    assert "ids.csv line 5: '3,c,d' (3 fields, the header has 2)" in str(caught.value)

    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip")

    assert chunk_ids(prepared) == [["1", "4"]]
    assert rejects_of(prepared) == [
        ["4", "2", "1 fields, the header has 2"],
        ["5", "3,c,d", "3 fields, the header has 2"],
    ]
    assert (prepared.counts.read, prepared.counts.valid, prepared.counts.invalid) == (4, 2, 2)


@pytest.mark.usefixtures("shuffled_batches")
def test_a_ragged_row_deep_in_a_csv_loses_and_repeats_no_row(tmp_path: Path) -> None:
    rows = [f"{n},x" for n in range(1, 3001)]
    rows[2500] = "2501"
    rows[2900] = "\udcff\udcfe,x"  # bytes ff fe: not UTF-8
    text = "id,name\n" + "\n".join(rows) + "\n"
    path = write_text(tmp_path / "ids.csv", text.encode("utf-8", "surrogateescape"))

    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip", block_size=512)

    assert [int(i) for i in chunk_ids(prepared)[0]] == [n for n in range(1, 3001) if n not in (2501, 2901)]
    assert rejects_of(prepared) == [
        ["2502", "2501", "1 fields, the header has 2"],
        ["2901", "\\xff\\xfe", "non-ASCII characters"],
    ]
    assert prepared.counts.read == 3000


@pytest.mark.parametrize("on_invalid", ["fail", "skip"])
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('id,name\n1,a\n2,"b\n3,c\n4,d\n', "ids.csv has an unbalanced quote"),  # 3 and 4 would vanish
        ('id\n1\n"2\n3\n', "ids.csv has an unbalanced quote"),
        (
            'id,name\n1,a\n2\n3,"b\n4,c\n',
            "ids.csv cannot be read at line 5: unexpected end of data",
        ),  # slow path
    ],
)
def test_an_unclosed_csv_quote_fails_instead_of_swallowing_the_rows_after_it(
    tmp_path: Path, text: str, words: str, on_invalid: str
) -> None:
    with pytest.raises(IdSourceError, match=words):
        validate_ids(write_text(tmp_path / "ids.csv", text), id_column="id", on_invalid=on_invalid)  # type: ignore[arg-type]


def test_quoted_values_over_several_lines_and_doubled_quotes_are_read(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", 'id,"na""me"\n1,"a\nb"\n2,"x""y"\n')
    assert valid_ids(path, id_column="id") == ["1", "2"]


def test_a_csv_cell_that_is_not_utf8_is_an_invalid_value_named_by_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", b"id,name\n1,a\n\xff\xfe2,b\n3,\xff\n")
    with pytest.raises(InvalidIdsError, match=r"ids\.csv row 2: '\\\\xff\\\\xfe2' \(non-ASCII"):
        validate_ids(path, id_column="id")
    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip")
    assert chunk_ids(prepared) == [["1", "3"]]


LONG = 200 * 1024  # over csv's field size limit (128 KiB): its reader cannot read past such a field
TOO_LONG = "longer than 131072 characters"


@pytest.mark.parametrize(
    ("ragged", "block_size"),
    [("", 4096), ("7\n", 1 << 20)],
    ids=["slow-from-the-long-cell", "slow-from-a-ragged-row"],
)
def test_a_csv_id_cell_over_csvs_field_limit_is_an_invalid_value_losing_no_row_around_it(
    tmp_path: Path, ragged: str, block_size: int
) -> None:
    long_row, quoted_row, wide_row = f"{'9' * LONG},b", f'"{"8" * LONG}\n",d', f"4,{'z' * LONG},x"
    text = f"id,name\n{ragged}1,a\n{long_row}\n2,c\n{quoted_row}\n3,e\n{wide_row}\n5,f\n"
    path = write_text(tmp_path / "ids.csv", text)
    first = 3 + len(ragged.splitlines())  # the line of the first long cell

    with pytest.raises(InvalidIdsError) as caught:
        validate_ids(path, id_column="id", block_size=block_size)
    assert f"ids.csv line {first}: '{'9' * 40}...' ({TOO_LONG})" in str(caught.value)

    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip", block_size=block_size)
    assert chunk_ids(prepared) == [["1", "2", "3", "5"]]
    assert rejects_of(prepared)[-3:] == [
        [str(first), "9" * 200 + "...", TOO_LONG],
        [str(first + 2), "8" * 200 + "...", TOO_LONG],
        [str(first + 5), "4," + "z" * 198 + "...", "3 fields, the header has 2"],
    ]
    assert (prepared.counts.read, prepared.counts.valid) == (7 + len(ragged.splitlines()), 4)


@pytest.mark.parametrize(
    "block_size", [4096, 1 << 20]
)  # csv's reader, and pyarrow's, which has no such limit
def test_a_long_csv_field_beside_the_id_cell_loses_neither_that_id_nor_the_rows_after_it(
    tmp_path: Path, block_size: int
) -> None:
    quoted = f'"x, ""quoted""\n{"y" * LONG}\nz"'  # commas, doubled quotes and line breaks inside
    text = f"a,id,b\nx,1,y\n{quoted},2,z\nw,3,{'v' * LONG}\nv,4,{quoted}\n5\nu,6,t\n"
    path = write_text(tmp_path / "ids.csv", text)
    prepared = prepare_ids(path, tmp_path / "out", id_column="id", on_invalid="skip", block_size=block_size)
    assert chunk_ids(prepared) == [["1", "2", "3", "4", "6"]]
    assert rejects_of(prepared) == [["10", "5", "1 fields, the header has 3"]]  # lines still counted right


def test_a_csv_header_over_csvs_field_limit_fails_the_file_naming_its_line_and_start(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", f"id,{'n' * LONG}\n1,a\n")
    expected = (
        r"ids\.csv line 1 \(the header\) cannot be read: field larger than field limit \(131072\): 'id,nnn"
    )
    with pytest.raises(IdSourceError, match=expected):
        validate_ids(path, id_column="id", on_invalid="skip")


def test_a_long_csv_field_whose_quote_never_closes_fails_the_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.csv", f'id,name\n1,a\n2,"{"y" * LONG}\n3,c\n')
    with pytest.raises(IdSourceError, match=r"ids\.csv cannot be read at line 4: unexpected end of data"):
        validate_ids(path, id_column="id", on_invalid="skip", block_size=4096)


# --- Chunking --------------------------------------------------------------------------------------------


def test_chunks_hold_max_ids_per_job_with_deterministic_names(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "".join(f"{n}\n" for n in range(1, 11)))
    prepared = prepare_ids(path, tmp_path / "out", max_ids_per_job=3)
    assert [(c.index, c.path.name, c.ids) for c in prepared.chunks] == [
        (0, "ids-00000.txt", 3),
        (1, "ids-00001.txt", 3),
        (2, "ids-00002.txt", 3),
        (3, "ids-00003.txt", 1),
    ]
    assert [c.size for c in prepared.chunks] == [c.path.stat().st_size for c in prepared.chunks]


def test_chunks_lose_and_repeat_no_id_across_block_boundaries(tmp_path: Path) -> None:
    ids = [str(n) for n in range(1, 20_001)]
    path = write_text(tmp_path / "ids.txt", "\n".join(ids) + "\n")
    prepared = prepare_ids(path, tmp_path / "out", max_ids_per_job=777, block_size=1000)
    chunks = chunk_ids(prepared)
    assert [len(c) for c in chunks] == [777] * 25 + [20_000 - 777 * 25]
    assert [i for c in chunks for i in c] == ids


def test_without_max_ids_per_job_there_is_one_chunk(tmp_path: Path) -> None:
    prepared = prepare_ids(write_text(tmp_path / "ids.txt", "1\n2\n"), tmp_path / "out")
    assert chunk_ids(prepared) == [["1", "2"]]


def test_no_valid_id_gives_no_chunk(tmp_path: Path) -> None:
    prepared = prepare_ids(write_text(tmp_path / "ids.txt", "\n\n"), tmp_path / "out")
    assert prepared.chunks == ()


def test_chunk_files_of_an_earlier_call_are_replaced(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ids.txt", "1\n2\n3\n")
    prepare_ids(path, tmp_path / "out", max_ids_per_job=1)
    prepared = prepare_ids(path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ids-00000.txt"]
    assert chunk_ids(prepared) == [["1", "2", "3"]]


def test_max_ids_per_job_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_ids_per_job"):
        prepare_ids(write_text(tmp_path / "ids.txt", "1\n"), tmp_path / "out", max_ids_per_job=0)


def test_prepared_ids_survive_a_manifest_round_trip(tmp_path: Path) -> None:
    source = write_text(tmp_path / "ids.txt", "1\n2\nx\n3\n")
    prepared = prepare_ids(source, tmp_path / "out", on_invalid="skip", max_ids_per_job=2)
    manifest = tmp_path / "out" / "manifest.json"

    prepared.save(manifest)

    assert PreparedIds.load(manifest) == prepared


def test_a_manifest_of_an_earlier_version_still_loads(tmp_path: Path) -> None:
    prepared = prepare_ids(write_text(tmp_path / "ids.txt", "1\n1\n"), tmp_path / "out")
    manifest = tmp_path / "out" / "manifest.json"
    prepared.save(manifest)
    body = json.loads(manifest.read_text())
    body["counts"]["duplicates_exact"] = False  # what versions with an estimated count wrote
    manifest.write_text(json.dumps(body))

    assert PreparedIds.load(manifest) == prepared

"""Which IDs need action and the result lines written for them (rule, ground-truth file, faults)."""

from __future__ import annotations

import collections
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from airflow_provider_xcompliance.emulator import EmulatorHandle, results, run_emulator
from airflow_provider_xcompliance.emulator.results import (
    GroundTruthSource,
    ProcessingOutcome,
    RuleSource,
    deterministic_record,
    deterministic_records,
    parse_id_line,
    process_upload,
)
from airflow_provider_xcompliance.models import parse_api_time

from .support import TOKEN, config, create_job, id_file, upload, wait_for_status

SNOWFLAKES = range(1_400_000_000_000_000_000, 1_400_000_000_000_000_000 + 200_000 * 7919, 7919)


def flagged(job_type: str, ids: Iterable[int] = SNOWFLAKES) -> list[dict[str, str]]:
    return deterministic_records(job_type, ids)


def process(upload_file: Path, job_type: str = "tweets", **options: Any) -> ProcessingOutcome:
    results, truth = upload_file.with_suffix(".results"), upload_file.with_suffix(".truth")
    return process_upload(upload_file, results, truth, job_type=job_type, source=RuleSource(), **options)


def line_by_line(content: bytes) -> tuple[int, int, int]:
    """Valid, invalid and blank lines, counted one line at a time: what block processing must agree with."""
    lines = content.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\n").split(b"\n") if content else []
    blank = sum(not line.strip() for line in lines)
    valid = sum(parse_id_line(line) is not None for line in lines)
    return valid, len(lines) - valid - blank, blank


def test_a_few_percent_of_ids_need_action() -> None:
    share = len(flagged("tweets")) / len(SNOWFLAKES)

    assert 0.02 < share < 0.05


def test_sequential_ids_are_flagged_at_the_same_rate() -> None:
    share = len(flagged("users", range(1, 200_001))) / 200_000

    assert 0.02 < share < 0.05


def test_the_rule_is_deterministic() -> None:
    assert flagged("tweets", range(1, 5000)) == flagged("tweets", range(1, 5000))


def test_tweets_get_every_reason_and_geo_scrubs_are_deletes_as_x_documents() -> None:
    records = flagged("tweets")
    actions = {(record["reason"], record["action"]) for record in records}

    assert {reason for reason, _ in actions} == {
        "deleted",
        "protected",
        "suspended",
        "deactivated",
        "scrub_geo",
        "bounced",
    }
    assert {action for _, action in actions} == {"delete"}


def test_geo_scrubs_can_carry_their_own_action(tmp_path: Path) -> None:
    ids = list(SNOWFLAKES)[:20_000]
    upload_file = tmp_path / "ids.txt"
    upload_file.write_text("".join(f"{i}\n" for i in ids))
    truth = tmp_path / "truth.jsonl"
    source = RuleSource("scrub_geo")
    process_upload(upload_file, tmp_path / "results.jsonl", truth, job_type="tweets", source=source)

    actions = {(r["reason"], r["action"]) for r in map(json.loads, truth.read_text().splitlines())}
    assert {action for reason, action in actions if reason == "scrub_geo"} == {"scrub_geo"}
    assert {action for reason, action in actions if reason != "scrub_geo"} == {"delete"}


@pytest.mark.parametrize("style", ["missing", "odd"])
def test_odd_result_timestamps_hit_one_line_in_four_and_ground_truth_holds_them(tmp_path, style) -> None:
    for name in ("api", style):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ids.txt").write_text("".join(f"{i}\n" for i in list(SNOWFLAKES)[:20_000]))
        process(tmp_path / name / "ids.txt", timestamps=name)

    plain, odd = (
        [json.loads(x) for x in (tmp_path / name / "ids.results").read_text().splitlines()]
        for name in ("api", style)
    )
    truth = [json.loads(line) for line in (tmp_path / style / "ids.truth").read_text().splitlines()]
    changed = [(a, b) for a, b in zip(plain, odd, strict=True) if a != b]
    assert truth == odd
    assert len(changed) == pytest.approx(len(odd) / 4, abs=2)
    assert all({**a, "created_at": None} == {**b, "created_at": None} for a, b in changed)
    if style == "missing":
        assert all("created_at" not in b for _, b in changed)
    else:
        assert {type(b["created_at"]) for _, b in changed} == {str, int, type(None)}


def test_users_get_only_user_reasons() -> None:
    reasons = {record["reason"] for record in flagged("users")}

    assert reasons == {"deleted", "suspended", "protected", "deactivated"}


def test_timestamps_mix_the_real_forms_and_redacted_at_is_sometimes_absent() -> None:
    records = flagged("tweets")
    forms = collections.Counter(
        "000Z" if stamp.endswith(".000Z") else "msZ" if stamp.endswith("Z") else "+00:00"
        for stamp in (record["created_at"] for record in records)
    )

    assert set(forms) == {"000Z", "msZ", "+00:00"}
    assert 0 < sum("redacted_at" not in record for record in records) < len(records) / 4
    for record in records:
        created = parse_api_time(record["created_at"])
        assert created is not None
        if "redacted_at" in record:
            redacted = parse_api_time(record["redacted_at"])
            assert redacted is not None
            assert redacted >= created


def test_snowflake_ids_get_their_own_creation_time() -> None:
    record = next(r for r in flagged("tweets") if r["created_at"].endswith("Z"))
    expected_ms = (int(record["id"]) >> 22) + 1288834974657
    created = parse_api_time(record["created_at"])

    assert created is not None
    assert int(created.timestamp()) == expected_ms // 1000


def test_processing_ignores_and_counts_bad_lines(tmp_path: Path) -> None:
    upload_file = tmp_path / "upload.txt"
    flagged_id = next(int(r["id"]) for r in flagged("tweets"))
    bad = "abc\n-5\n12345678901234567890\n1 2\n"
    upload_file.write_bytes(b"\xef\xbb\xbf" + f"{flagged_id}\r\n\n  \n{bad}{flagged_id}\n0042\n".encode())

    outcome = process(upload_file)

    expected_results = 1 + (deterministic_record("tweets", 42) is not None)
    assert (outcome.ids, outcome.invalid_lines, outcome.blank_lines) == (3, 4, 2)
    assert outcome.results == expected_results
    first = upload_file.with_suffix(".results").read_text().splitlines()[0]
    assert json.loads(first)["id"] == str(flagged_id)


def test_crlf_option_writes_crlf_lines(tmp_path: Path) -> None:
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(id_file(2000))

    process(upload_file, crlf=True)

    content = upload_file.with_suffix(".results").read_bytes()
    assert content.count(b"\r\n") == content.count(b"\n") > 0
    assert b"\r" not in upload_file.with_suffix(".truth").read_bytes()


def test_a_ground_truth_file_decides_which_ids_need_action(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text(
        '{"id": "11", "action": "delete", "reason": "deleted", "created_at": "2020-01-01T00:00:00.000Z"}\n'
        '{"id": 12, "type": "users", "action": "delete", "reason": "suspended"}\n'
        "\n"
    )
    source = GroundTruthSource(truth)

    assert source.record("tweets", 11) == {
        "id": "11",
        "action": "delete",
        "reason": "deleted",
        "created_at": "2020-01-01T00:00:00.000Z",
    }
    assert source.record("users", 12) == {"id": "12", "action": "delete", "reason": "suspended"}
    assert source.record("tweets", 12) is None
    assert source.record("tweets", 13) is None


def test_a_malformed_ground_truth_file_is_refused_with_its_line(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"id": "1"}\n{"reason": "deleted"}\n')

    with pytest.raises(ValueError, match=r"truth\.jsonl:2"):
        GroundTruthSource(truth)


def test_the_emulator_serves_ground_truth_records(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    record = {
        "id": "7",
        "action": "scrub_geo",
        "reason": "scrub_geo",
        "created_at": "2013-03-26T02:46:15+00:00",
    }
    truth.write_text(json.dumps(record) + "\n")
    with run_emulator(config(ground_truth=truth)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        job = create_job(http)
        upload(job, b"5\n7\n6\n7\n8\n")
        done = wait_for_status(http, job["id"], "complete")
        served = httpx.get(done["download_url"]).text

    assert [json.loads(line) for line in served.splitlines()] == [record]


def test_ground_truth_matches_the_download(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = create_job(client, "users")
    upload(job, id_file(3000))
    done = wait_for_status(client, job["id"], "complete")

    served = [json.loads(line) for line in httpx.get(done["download_url"]).text.splitlines()]

    assert served == emulator.ground_truth(job["id"])
    assert emulator.job_state(job["id"])["result_count"] == len(served)


def test_truncated_results_end_in_a_broken_line_but_ground_truth_is_whole() -> None:
    with run_emulator(config(truncate_results=True)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        job = create_job(http)
        upload(job, id_file(5000))
        done = wait_for_status(http, job["id"], "complete")
        served = httpx.get(done["download_url"]).text.splitlines()
        truth = emu.ground_truth(job["id"])

    with pytest.raises(json.JSONDecodeError):
        json.loads(served[-1])
    assert [json.loads(line) for line in served[:-1]] == truth[: len(served) - 1]
    assert len(served) < len(truth)


def test_one_id_gets_the_record_it_gets_among_others() -> None:
    ids = [int(i) for i in np.arange(1, 5000, dtype=np.uint64) * np.uint64(982_451_653)]
    records = {record["id"]: record for record in flagged("tweets", ids)}

    assert [deterministic_record("tweets", i) for i in ids] == [records.get(str(i)) for i in ids]


def test_each_flagged_id_is_written_once_in_order_of_first_upload(tmp_path: Path) -> None:
    ids = [int(r["id"]) for r in flagged("tweets")[:50]] + list(range(1, 2000))
    repeated = ids + ids[::-1] + ids[10:20]
    upload_file = tmp_path / "upload.txt"
    upload_file.write_text("".join(f"{i}\n" for i in repeated))

    outcome = process(upload_file, block_size=4096)  # repeats fall in other blocks than the first sighting
    written = [json.loads(line) for line in upload_file.with_suffix(".results").read_text().splitlines()]

    assert written == flagged("tweets", ids)
    assert (outcome.ids, outcome.results) == (len(repeated), len(written))


def test_blocks_stay_valid_until_as_many_more_as_there_are_buffers(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf" + b"".join(b"%d\n" % n for n in range(1, 400)) + b"7" * 300 + b"\n12\n3"
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(content)
    held: list[tuple[memoryview, bytes]] = []

    for block in results._line_blocks(upload_file, 64, buffers=3):
        held = [*held[-2:], (block, bytes(block))]
        assert [bytes(view) for view, _ in held] == [copy for _, copy in held]

    blocks = [bytes(block) for block in results._line_blocks(upload_file, 64, buffers=3)]
    assert b"".join(blocks) == content[3:]
    assert all(block.endswith(b"\n") for block in blocks[:-1])


def ground_truth(tmp_path: Path, ids: list[int]) -> GroundTruthSource:
    """Records for every third ID; one in two limited to ``tweets`` jobs, the others to ``users`` ones."""
    path = tmp_path / "truth.jsonl"
    lines = [
        json.dumps({"id": str(i), "type": ("tweets", "users")[n % 2], "action": "delete", "n": n})
        for n, i in enumerate(ids[::3])
    ]
    path.write_text("\n".join(lines) + "\n")
    return GroundTruthSource(path)


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("kind", ["rule", "ground truth"])
def test_parallel_processing_writes_what_one_thread_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crlf: bool, kind: str
) -> None:
    rng = random.Random(21)
    ids = [int(r["id"]) for r in flagged("tweets")[:300]] + list(SNOWFLAKES[:3000])
    lines = [
        str(rng.choice(ids)) if rng.random() < 0.95 else rng.choice(["x", "", "-1", "0042 "])
        for _ in range(8000)
    ]
    upload_file = tmp_path / "upload.txt"
    upload_file.write_text("\r\n".join(lines) + "\r\n")
    source = RuleSource() if kind == "rule" else ground_truth(tmp_path, ids)
    parse = results._parse_block

    def late_parse(block: memoryview) -> tuple[np.ndarray, int, int]:
        time.sleep(rng.choice((0, 0, 0.003)))  # blocks finish out of order
        return parse(block)

    monkeypatch.setattr(results, "_parse_block", late_parse)
    written: dict[int, tuple[ProcessingOutcome, bytes, bytes]] = {}
    for workers in (1, 4):
        monkeypatch.setattr(results, "WORKERS", workers)
        out, truth = tmp_path / f"{workers}.results", tmp_path / f"{workers}.truth"
        outcome = process_upload(
            upload_file, out, truth, job_type="tweets", source=source, crlf=crlf, block_size=256
        )
        written[workers] = (outcome, out.read_bytes(), truth.read_bytes())

    assert written[4] == written[1]
    outcome, served, truth_bytes = written[4]
    first_sightings = list(
        dict.fromkeys(int(line) for line in lines if parse_id_line(line.encode()) is not None)
    )
    if isinstance(source, GroundTruthSource):
        expected = [r for r in (source.record("tweets", i) for i in first_sightings) if r is not None]
    else:
        expected = flagged("tweets", first_sightings)
    assert [json.loads(line) for line in truth_bytes.splitlines()] == expected
    assert served.count(b"\r\n") == (len(expected) if crlf else 0)
    assert (outcome.ids, outcome.results) == (
        sum(parse_id_line(line.encode()) is not None for line in lines),
        len(expected),
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"1\n2\n3",
        b"1\r\n2\r\n\r\n3\r\n",
        b"\n\n1\n\n",
        b"1\r",
        b"\xef\xbb\xbf5\n6\n",
        b"1234567890123456789\n12345678901234567890\n00000000000000000001\n",
        b"-5\n+5\n 5\n5 \n0x1f\n5\t\n",
        b"1\n" + b"7" * 5000 + b"\n2\n",
    ],
)
@pytest.mark.parametrize("block_size", [16, 8 * 1024 * 1024])
def test_lines_are_counted_as_line_by_line_reading_counts_them(
    tmp_path: Path, content: bytes, block_size: int
) -> None:
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(content)

    outcome = process(upload_file, block_size=block_size)

    assert (outcome.ids, outcome.invalid_lines, outcome.blank_lines) == line_by_line(content)


def test_processing_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (seconds) when handed Python objects: that would delay the first job."""
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(id_file(3000) + b"x\n")
    script = f"""
import sys
from pathlib import Path
from airflow_provider_xcompliance.emulator.results import RuleSource, process_upload
upload = Path({str(upload_file)!r})
results, truth = upload.with_suffix(".r"), upload.with_suffix(".t")
process_upload(upload, results, truth, job_type="tweets", source=RuleSource())
print("pandas" in sys.modules)
"""
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert imported.stdout.strip() == "False"


def test_non_utf8_lines_are_counted_invalid_without_losing_the_rest(tmp_path: Path) -> None:
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(b"1\n\xff\xfe\n2\n")

    outcome = process(upload_file, "users")

    assert (outcome.ids, outcome.invalid_lines) == (2, 1)


def test_every_record_has_the_documented_fields() -> None:
    for record in flagged("tweets", range(1, 20_000)):
        assert re.fullmatch(r"[0-9]{1,19}", record["id"])
        assert set(record) - {"redacted_at"} == {"id", "action", "created_at", "reason"}


@pytest.mark.parametrize("option", [{"geo_scrub_action": "keep"}, {"result_timestamps": "weird"}])
def test_unknown_result_flag_values_are_refused(option: dict[str, str]) -> None:
    from airflow_provider_xcompliance.emulator import EmulatorConfig

    with pytest.raises(ValueError, match=next(iter(option))):
        EmulatorConfig(**option)  # type: ignore[arg-type]

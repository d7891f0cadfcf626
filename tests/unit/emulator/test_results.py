"""Which IDs need action and the result lines written for them (rule, ground-truth file, faults)."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable
from pathlib import Path

import httpx
import numpy as np
import pytest

from airflow_provider_xcompliance.emulator import EmulatorHandle, run_emulator
from airflow_provider_xcompliance.emulator.results import (
    GroundTruthSource,
    RuleSource,
    deterministic_record,
    process_upload,
)
from airflow_provider_xcompliance.models import parse_api_time

from .support import TOKEN, config, create_job, id_file, upload, wait_for_status

SNOWFLAKES = range(1_400_000_000_000_000_000, 1_400_000_000_000_000_000 + 200_000 * 7919, 7919)


def flagged(job_type: str, ids: Iterable[int] = SNOWFLAKES) -> list[dict[str, str]]:
    return [record for id_value in ids if (record := deterministic_record(job_type, id_value))]


def test_a_few_percent_of_ids_need_action() -> None:
    share = len(flagged("tweets")) / len(SNOWFLAKES)

    assert 0.02 < share < 0.05


def test_sequential_ids_are_flagged_at_the_same_rate() -> None:
    share = len(flagged("users", range(1, 200_001))) / 200_000

    assert 0.02 < share < 0.05


def test_the_rule_is_deterministic() -> None:
    assert flagged("tweets", range(1, 5000)) == flagged("tweets", range(1, 5000))


def test_tweets_get_every_reason_and_scrub_geo_has_its_own_action() -> None:
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
    assert {action for reason, action in actions if reason == "scrub_geo"} == {"scrub_geo"}
    assert {action for reason, action in actions if reason != "scrub_geo"} == {"delete"}


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

    outcome = process_upload(
        upload_file,
        tmp_path / "results.jsonl",
        tmp_path / "truth.jsonl",
        job_type="tweets",
        source=RuleSource(),
    )

    expected_results = 1 + (deterministic_record("tweets", 42) is not None)
    assert (outcome.ids, outcome.invalid_lines, outcome.blank_lines) == (3, 4, 2)
    assert outcome.results == expected_results
    assert json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])["id"] == str(flagged_id)


def test_crlf_option_writes_crlf_lines(tmp_path: Path) -> None:
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(id_file(2000))

    process_upload(
        upload_file,
        tmp_path / "results.jsonl",
        tmp_path / "truth.jsonl",
        job_type="tweets",
        source=RuleSource(),
        crlf=True,
    )

    content = (tmp_path / "results.jsonl").read_bytes()
    assert content.count(b"\r\n") == content.count(b"\n") > 0
    assert b"\r" not in (tmp_path / "truth.jsonl").read_bytes()


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
        upload(job, b"5\n6\n7\n8\n")
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


def test_the_vectorised_prefilter_agrees_with_the_rule() -> None:
    ids = np.arange(1, 50_000, dtype=np.uint64) * np.uint64(982_451_653)
    mask = RuleSource().candidates(ids)

    assert [int(i) for i in ids[mask]] == [int(r["id"]) for r in flagged("tweets", [int(i) for i in ids])]


def test_non_utf8_lines_are_counted_invalid_without_losing_the_rest(tmp_path: Path) -> None:
    upload_file = tmp_path / "upload.txt"
    upload_file.write_bytes(b"1\n\xff\xfe\n2\n")

    outcome = process_upload(
        upload_file, tmp_path / "r.jsonl", tmp_path / "t.jsonl", job_type="users", source=RuleSource()
    )

    assert (outcome.ids, outcome.invalid_lines) == (2, 1)


def test_every_record_has_the_documented_fields() -> None:
    for record in flagged("tweets", range(1, 20_000)):
        assert re.fullmatch(r"[0-9]{1,19}", record["id"])
        assert set(record) - {"redacted_at"} == {"id", "action", "created_at", "reason"}

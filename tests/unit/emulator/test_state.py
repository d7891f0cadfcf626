"""The job lifecycle, driven by a clock the tests move: expiry, processing, failures, cancel, tidy files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorHandle, run_emulator

from .support import TOKEN, FakeClock, config, create_job, id_file, upload, wait_for_status


@pytest.fixture
def api(clock: FakeClock, tmp_path: Path) -> Iterator[tuple[EmulatorHandle, httpx.Client]]:
    """An emulator on the fake clock, with a 60 s upload window, 60 s of processing and a known data dir."""
    settings = config(clock=clock, upload_window_seconds=60, processing_seconds=60, data_dir=tmp_path)
    with (
        run_emulator(settings) as emu,
        httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        yield emu, http


def status_of(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"/2/compliance/jobs/{job_id}").json()["data"]["status"])


def processed(emu: EmulatorHandle, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait for the worker thread to finish reading the upload (the clock still decides completion)."""
    deadline = time.monotonic() + timeout
    while (job := emu.job_state(job_id))["result_count"] is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return job


def test_a_job_without_upload_expires_when_the_window_passes(
    api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock
) -> None:
    _, http = api
    job = create_job(http)

    clock.advance(59)
    before = status_of(http, job["id"])
    clock.advance(1)

    assert (before, status_of(http, job["id"])) == ("created", "expired")


def test_an_expired_job_frees_the_slot(api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock) -> None:
    _, http = api
    create_job(http)
    clock.advance(60)

    assert http.post("/2/compliance/jobs", json={"type": "tweets"}).status_code == 200


def test_an_open_resumable_session_keeps_the_job_from_expiring(
    api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock
) -> None:
    _, http = api
    job = create_job(http, resumable=True)
    start = httpx.post(job["upload_url"], headers={"Content-Type": "text/plain", "x-goog-resumable": "start"})
    clock.advance(120)

    finish = httpx.put(start.headers["Location"], content=b"1\n", headers={"Content-Range": "bytes 0-1/2"})

    assert finish.status_code == 200
    assert status_of(http, job["id"]) == "in_progress"


def test_a_job_completes_only_after_the_processing_time(
    api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock
) -> None:
    emu, http = api
    job = create_job(http)
    upload(job, id_file(100))
    processed(emu, job["id"])

    clock.advance(59)
    during = status_of(http, job["id"])
    clock.advance(1)

    assert (during, status_of(http, job["id"])) == ("in_progress", "complete")


def test_cancel_during_processing_stays_failed(
    api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock
) -> None:
    emu, http = api
    job = create_job(http)
    upload(job, id_file(100))

    http.delete(f"/2/compliance/jobs/{job['id']}")
    processed(emu, job["id"])
    clock.advance(60)

    assert status_of(http, job["id"]) == "failed"
    assert httpx.get(job["download_url"]).status_code == 404


def test_expired_jobs_leave_no_files(
    api: tuple[EmulatorHandle, httpx.Client], clock: FakeClock, tmp_path: Path
) -> None:
    _, http = api
    job = create_job(http, resumable=True)
    httpx.post(job["upload_url"], headers={"Content-Type": "text/plain", "x-goog-resumable": "start"})
    other = create_job(http, "users")
    clock.advance(60)
    status_of(http, other["id"])

    assert not (tmp_path / other["id"]).exists()
    assert (tmp_path / job["id"]).exists()  # its session is still open


def test_results_files_go_when_the_download_window_passes(clock: FakeClock, tmp_path: Path) -> None:
    with run_emulator(config(clock=clock, data_dir=tmp_path, download_window_seconds=100)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        job = create_job(http)
        upload(job, id_file(1000))
        wait_for_status(http, job["id"], "complete")
        files_before = sorted(path.name for path in (tmp_path / job["id"]).iterdir())
        clock.advance(100)
        emu.state()
        files_after = sorted(path.name for path in (tmp_path / job["id"]).iterdir())
        truth = emu.ground_truth(job["id"])

    assert files_before == ["ground_truth.jsonl", "results.jsonl", "submission.txt"]
    assert files_after == ["ground_truth.jsonl"]
    assert truth


def test_a_temporary_data_dir_is_removed_on_shutdown() -> None:
    with run_emulator(config()) as emu:
        data_dir = Path(emu.state()["data_dir"])
        assert data_dir.is_dir()

    assert not data_dir.exists()


def test_a_given_data_dir_is_kept_on_shutdown(tmp_path: Path) -> None:
    with run_emulator(config(data_dir=tmp_path / "data")):
        pass

    assert (tmp_path / "data").is_dir()


def test_the_first_n_jobs_fail_with_the_configured_error() -> None:
    with run_emulator(config(fail_jobs=1, fail_jobs_error="Internal error: try again")) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        first = create_job(http)
        upload(first, id_file(10))
        failed = wait_for_status(http, first["id"], "failed")
        second = create_job(http)
        upload(second, id_file(10))
        completed = wait_for_status(http, second["id"], "complete")

    assert (failed["status"], failed["error"]) == ("failed", "Internal error: try again")
    assert completed["status"] == "complete"
    assert "error" not in completed


def test_a_job_over_the_id_limit_fails_with_a_size_error() -> None:
    with run_emulator(config(max_upload_ids=100)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        job = create_job(http)
        upload(job, id_file(101))
        failed = wait_for_status(http, job["id"], "failed")

    assert failed["status"] == "failed"
    assert "101 IDs" in failed["error"]
    assert "100" in failed["error"]


def test_job_ids_are_unique_and_increasing(client: httpx.Client) -> None:
    ids = []
    for _ in range(3):
        job = create_job(client)
        client.delete(f"/2/compliance/jobs/{job['id']}")
        ids.append(int(job["id"]))

    assert ids == sorted(set(ids))

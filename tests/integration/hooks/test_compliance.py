"""XComplianceHook against the bundled emulator over loopback: real HTTP, real faults, emulator state checked.

The hook and the emulator share one fake clock, so rate windows and upload windows pass without sleeping.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_xcompliance.emulator import EmulatorConfig, EmulatorHandle
from airflow_provider_xcompliance.exceptions import JobConflictError, UploadUrlExpiredError
from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.models import JobStatus
from airflow_provider_xcompliance.results import results_to_parquet
from airflow_provider_xcompliance.retry import RetryPolicy
from airflow_provider_xcompliance.transfers import RESUMABLE_QUANTUM

pytestmark = pytest.mark.integration

ID_COUNT = 40_000
WAIT = 24 * 3600.0  # fake seconds: bounded in real time by the emulator's processing speed


class SharedClock:
    """Wall time for the emulator and the hook that moves only when the hook sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        # The emulator reads uploads on a worker thread in real time: give it a moment per wait.
        time.sleep(0.005)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock() -> SharedClock:
    return SharedClock()


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest, clock: SharedClock) -> EmulatorConfig:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return EmulatorConfig(token="test-token", processing_seconds=0.0, clock=clock.time, **overrides)


def with_emulator(**overrides: Any) -> Any:
    return pytest.mark.parametrize("emulator_config", [overrides], indirect=True, ids=[str(overrides)])


@pytest.fixture
def hook(x_conn_env: EmulatorHandle, clock: SharedClock) -> XComplianceHook:
    hook = XComplianceHook(retry_policy=RetryPolicy(max_attempts=6, backoff_base=0.5))
    hook._sleep = clock.sleep
    hook._asleep = clock.asleep
    hook._clock = clock.time
    hook._now = clock.time
    return hook


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"".join(b"%d\n" % (1_000_000_000_000_000_000 + 7919 * i) for i in range(ID_COUNT)))
    return path


def ids_in(results: Path) -> set[str]:
    return {json.loads(line)["id"] for line in results.read_text().splitlines() if line}


@pytest.mark.parametrize("job_type", ["tweets", "users"])
def test_full_lifecycle(
    hook: XComplianceHook, emulator: EmulatorHandle, ids_file: Path, tmp_path, job_type
) -> None:
    job = hook.create_job(job_type, name=f"lifecycle-{job_type}")
    upload = hook.upload_ids(job, ids_file)
    done = hook.wait_for_job(job.id, poll_interval=1.0, timeout=WAIT)
    download = hook.download_results(done, tmp_path / "results")

    truth = emulator.ground_truth(job.id)
    results = Path(str(download.uri))
    assert results == tmp_path / "results"
    assert ids_in(results) == {record["id"] for record in truth}
    assert download.lines == len(truth)
    assert upload.lines == ID_COUNT
    state = emulator.job_state(job.id)
    assert (state["status"], state["type"], state["uploaded_ids"]) == ("complete", job_type, ID_COUNT)
    assert len(emulator.state()["jobs"]) == 1


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_results_and_tables_get_the_permissions_the_umask_gives(
    hook: XComplianceHook, ids_file: Path, tmp_path: Path, umask: int
) -> None:
    previous = os.umask(umask)
    try:
        job = hook.create_job("tweets", name="modes")
        hook.upload_ids(job, ids_file)
        download = hook.download_results(hook.wait_for_job(job.id, 1.0, WAIT), f"{tmp_path}/results/")
        results_to_parquet(str(download.uri), tmp_path / "tables", job_type="tweets")
        (tmp_path / "plain").touch()
    finally:
        os.umask(previous)
    written = [Path(str(download.uri)), *(tmp_path / "tables").rglob("*.parquet")]
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert len(modes) >= 2
    assert set(modes.values()) == {stat.S_IMODE((tmp_path / "plain").stat().st_mode)} == {0o666 & ~umask}


@with_emulator(drop_upload_after_bytes=300_000)
@pytest.mark.parametrize("chunk_size", [None, 2 * RESUMABLE_QUANTUM], ids=["one-request", "chunked"])
def test_resumable_upload_interrupted_resumes(
    hook: XComplianceHook, emulator: EmulatorHandle, ids_file, chunk_size: int | None
) -> None:
    hook.resumable_chunk_size = chunk_size
    job = hook.create_job("tweets", name="resumable", resumable=True)
    report = hook.upload_ids(job, ids_file)
    hook.wait_for_job(job.id, poll_interval=1.0, timeout=WAIT)

    size = ids_file.stat().st_size
    state = emulator.job_state(job.id)
    assert (report.bytes, report.lines) == (size, ID_COUNT)
    assert state["uploads_completed"] == 1
    assert (state["upload_bytes"], state["uploaded_ids"]) == (size, ID_COUNT)
    assert emulator.state()["bytes_up"] < size + 2 * RESUMABLE_QUANTUM  # resumed, not started over


@with_emulator(drop_upload_after_bytes=100_000)
def test_simple_upload_interrupted_is_sent_again(
    hook: XComplianceHook, emulator: EmulatorHandle, ids_file
) -> None:
    job = hook.create_job("tweets", name="simple")
    assert hook.upload_ids(job, ids_file).lines == ID_COUNT
    hook.wait_for_job(job.id, poll_interval=1.0, timeout=WAIT)
    state = emulator.job_state(job.id)
    assert state["upload_attempts"] == 2
    assert state["uploaded_ids"] == ID_COUNT


@with_emulator(drop_download_after_bytes=20_000)
def test_download_interrupted_resumes(
    hook: XComplianceHook, emulator: EmulatorHandle, ids_file, tmp_path
) -> None:
    job = hook.create_job("tweets", name="download")
    hook.upload_ids(job, ids_file)
    report = hook.download_results(hook.wait_for_job(job.id, poll_interval=1.0, timeout=WAIT), tmp_path)

    assert ids_in(Path(str(report.uri))) == {record["id"] for record in emulator.ground_truth(job.id)}
    assert emulator.job_state(job.id)["download_attempts"] == 2
    assert emulator.state()["bytes_down"] == report.bytes  # every byte served once: resumed, not restarted


def test_expired_upload_url_is_refused_and_the_job_expires(
    hook: XComplianceHook, emulator: EmulatorHandle, clock: SharedClock, ids_file: Path
) -> None:
    job = hook.create_job("tweets", name="late")
    clock.now += 16 * 60
    with pytest.raises(UploadUrlExpiredError):
        hook.upload_ids(job, ids_file)
    assert emulator.job_state(job.id)["upload_attempts"] == 0
    assert hook.get_job(job.id).status == JobStatus.EXPIRED


@pytest.mark.parametrize(
    "emulator_config",
    [
        {"conflict_status": 409, "problem_host": "https://api.twitter.com"},
        {"conflict_status": 400, "problem_host": "https://api.x.com"},
    ],
    indirect=True,
)
def test_second_unfinished_job_of_a_type_conflicts(hook: XComplianceHook, emulator: EmulatorHandle) -> None:
    hook.create_job("tweets", name="first")
    with pytest.raises(JobConflictError):
        hook.create_job("tweets", name="second")
    hook.create_job("users", name="users-run-side-by-side")
    assert sorted(job["name"] for job in emulator.state()["jobs"]) == ["first", "users-run-side-by-side"]


@with_emulator(rate_limit_count=3, rate_limit_window_seconds=60.0)
def test_spent_rate_window_is_waited_out_without_a_429(
    hook: XComplianceHook, emulator: EmulatorHandle, clock: SharedClock
) -> None:
    job = hook.create_job("tweets", name="polled")
    for _ in range(7):
        hook.get_job(job.id)
    assert emulator.state()["requests"]["GET /2/compliance/jobs/:id"] == 7
    assert sum(clock.sleeps) >= 120  # two full windows waited out


@with_emulator(rate_limit_count=2, rate_limit_window_seconds=30.0)
def test_429_is_waited_out_until_the_reset(
    hook: XComplianceHook, emulator: EmulatorHandle, clock: SharedClock, x_conn_env: EmulatorHandle
) -> None:
    job = hook.create_job("tweets", name="limited")
    hook.get_job(job.id)
    hook.get_job(job.id)
    other = XComplianceHook(
        retry_policy=RetryPolicy(max_attempts=3)
    )  # shares the app's budget, not its tracker
    other._sleep, other._now, other._clock = clock.sleep, clock.time, clock.time
    assert other.get_job(job.id).id == job.id
    assert emulator.state()["requests"]["GET /2/compliance/jobs/:id"] == 4  # 2 + one 429 + the retry
    assert clock.sleeps[-1] >= 1.0


@with_emulator(fail_every_nth_request=3)
def test_5xx_bursts_are_retried_without_duplicating_the_job(
    hook: XComplianceHook, emulator: EmulatorHandle, ids_file: Path, tmp_path: Path
) -> None:
    # Every 3rd API request fails: two lists (#1, #2) make each create's first POST (#3, #6) a 503.
    assert hook.list_jobs("tweets") == hook.list_jobs("users") == []
    job = hook.create_job("tweets", name="bursty")
    job2 = hook.create_job("users", name="bursty")
    hook.upload_ids(job, ids_file)
    done = hook.wait_for_job(job.id, poll_interval=1.0, timeout=WAIT)
    assert hook.download_results(done, tmp_path).lines == len(emulator.ground_truth(job.id))
    state = emulator.state()
    assert sorted(j["id"] for j in state["jobs"]) == sorted([job.id, job2.id])
    assert state["requests"]["POST /2/compliance/jobs"] == 4  # each create: one 503, one success


def test_create_whose_answer_was_lost_does_not_duplicate(
    hook: XComplianceHook, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = hook.get_conn()
    send = session.request
    lost: list[str] = []

    def lose_first_create_answer(method: str, url: str, **kwargs: Any) -> requests.Response:
        response = send(method, url, **kwargs)
        if method == "POST" and not lost:
            lost.append(url)
            raise requests.ReadTimeout("read timed out")
        return response

    monkeypatch.setattr(session, "request", lose_first_create_answer)
    job = hook.create_job("tweets", name="exactly-once")
    state = emulator.state()
    assert [j["id"] for j in state["jobs"]] == [job.id]
    assert state["requests"]["POST /2/compliance/jobs"] == 1


def test_cancel_frees_the_slot(hook: XComplianceHook, emulator: EmulatorHandle) -> None:
    job = hook.create_job("tweets", name="unwanted")
    assert hook.cancel_job(job.id).status == JobStatus.FAILED
    assert emulator.job_state(job.id)["status"] == "failed"
    assert hook.create_job("tweets", name="next").status == JobStatus.CREATED


async def test_async_polling_and_cancel(hook: XComplianceHook, emulator: EmulatorHandle) -> None:
    job = hook.create_job("tweets", name="async")
    async with hook:
        assert (await hook.aget_job(job.id)).status == JobStatus.CREATED
        assert (await hook.acancel_job(job.id)).status == JobStatus.FAILED
    assert emulator.job_state(job.id)["status"] == "failed"


def test_test_connection(
    hook: XComplianceHook, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorHandle
) -> None:
    assert hook.test_connection()[0]
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_DEFAULT",
        json.dumps({"conn_type": "x_api", "host": emulator.base_url, "password": "wrong-token"}),
    )
    ok, message = XComplianceHook().test_connection()
    assert not ok
    assert "Unauthorized" in message

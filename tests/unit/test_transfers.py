"""Specification of the signed-URL transfers: simple and resumable uploads, downloads that resume or restart.

Storage is mocked with ``responses``; retries are recorded, never slept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from airflow_provider_xcompliance.exceptions import (
    DownloadUrlExpiredError,
    TransferError,
    UploadRejectedError,
    UploadUrlExpiredError,
)
from airflow_provider_xcompliance.models import Job
from airflow_provider_xcompliance.retry import RetryPolicy
from airflow_provider_xcompliance.transfers import (
    RESUMABLE_QUANTUM,
    STREAM_CHUNK,
    JobTransfer,
    LineCounter,
    storage_session,
)

JOB_ID = "1425543269983784962"
STORAGE = "https://storage.googleapis.com/twttr-tweet-compliance"
UPLOAD_URL = f"{STORAGE}/{JOB_ID}/submission/u?X-Goog-Signature=upload-signature"
DOWNLOAD_URL = f"{STORAGE}/{JOB_ID}/delivery/d?X-Goog-Signature=download-signature"
NOW = 1_700_000_000.0  # 2023-11-14: before the URLs expire


def job(status: str = "created", resumable: bool = False) -> Job:
    return Job.from_api(
        {
            "id": JOB_ID,
            "type": "tweets",
            "status": status,
            "resumable": resumable,
            "upload_url": UPLOAD_URL,
            "upload_expires_at": "2030-01-01T00:15:00.000Z",
            "download_url": DOWNLOAD_URL,
            "download_expires_at": "2030-01-08T00:00:00.000Z",
        }
    )


def transfer(of: Job) -> JobTransfer:
    """A transfer whose retries do not wait: what is retried is asserted, not when."""
    return JobTransfer(
        of,
        requests.Session(),
        timeout=30.0,
        policy=RetryPolicy(max_attempts=4, backoff_cap=8.0),
        mask_url=lambda url: None,
        sleep=lambda seconds: None,
        clock=lambda: 0.0,
        now=lambda: NOW,
    )


@pytest.fixture
def mocked() -> responses.RequestsMock:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"\n".join(b"%d" % (10**15 + i) for i in range(1000)))  # last line unterminated
    return path


def consume(request: Any) -> bytes:
    """Read a streamed request body the way a server would (``responses`` does not read it itself)."""
    body = request.body
    if hasattr(body, "read"):
        return b"".join(iter(lambda: body.read(65536), b""))
    return body or b""


# --- line counting ---------------------------------------------------------------------------------------


def test_line_counter_counts_a_final_line_without_a_terminator() -> None:
    counter = LineCounter()
    counter.add(0, b"1\n2\n3")
    assert counter.lines == 3


def test_line_counter_counts_resent_bytes_once() -> None:
    counter = LineCounter()
    counter.add(0, b"1\n2\n")
    counter.add(2, b"2\n3\n")  # a retry resends from byte 2
    assert counter.lines == 3


# --- upload ----------------------------------------------------------------------------------------------


def test_upload_retried_after_a_5xx_counts_lines_once(mocked, ids_file: Path) -> None:
    statuses = iter([503, 200])

    def storage(request: Any) -> tuple[int, dict, str]:
        consume(request)
        return next(statuses), {}, ""

    mocked.add_callback(responses.PUT, UPLOAD_URL.split("?")[0], callback=storage)
    assert transfer(job()).upload(ids_file).lines == 1000
    assert len(mocked.calls) == 2


def test_upload_rejected_as_too_large_suggests_splitting(mocked, ids_file: Path) -> None:
    mocked.put(UPLOAD_URL.split("?")[0], status=413, body="<Error><Code>EntityTooLarge</Code></Error>")
    with pytest.raises(UploadRejectedError, match="max_ids_per_job"):
        transfer(job()).upload(ids_file)
    assert len(mocked.calls) == 1


def test_upload_with_an_expired_signature_answer(mocked, ids_file: Path) -> None:
    mocked.put(UPLOAD_URL.split("?")[0], status=400, body="<Error><Code>ExpiredToken</Code></Error>")
    with pytest.raises(UploadUrlExpiredError):
        transfer(job()).upload(ids_file)


class ResumableStorage:
    """A GCS resumable-upload session: stores chunks, answers 308 + Range, and can break once."""

    session_url = f"{STORAGE}/{JOB_ID}/submission/u?upload_id=session-secret-123"

    def __init__(
        self, total: int, break_at_chunk: int | None = None, store_before_break: bool = False
    ) -> None:
        self.total = total
        self.data = bytearray()
        self.ranges: list[str] = []
        self.break_at_chunk = break_at_chunk
        self.store_before_break = store_before_break
        self.chunks = 0

    def start(self, request: Any) -> tuple[int, dict, str]:
        assert request.headers["x-goog-resumable"] == "start"
        assert request.headers["Content-Type"] == "text/plain"
        assert "Authorization" not in request.headers
        return 201, {"Location": self.session_url}, ""

    def put(self, request: Any) -> tuple[int, dict, str]:
        assert "Authorization" not in request.headers
        content_range = request.headers["Content-Range"]
        self.ranges.append(content_range)
        body = consume(request)
        if content_range.startswith("bytes */"):
            return self._status()
        start = int(content_range.split(" ")[1].split("-")[0])
        assert start == len(self.data), "chunks must continue where the session stopped"
        self.chunks += 1
        if self.chunks == self.break_at_chunk:
            if self.store_before_break:
                self.data += body
            raise requests.ConnectionError("connection reset by peer")
        self.data += body
        return self._status()

    def _status(self) -> tuple[int, dict, str]:
        if len(self.data) == self.total:
            return 200, {}, ""
        headers = {"Range": f"bytes=0-{len(self.data) - 1}"} if self.data else {}
        return 308, headers, ""


def mock_resumable(mocked: responses.RequestsMock, server: ResumableStorage) -> None:
    base = UPLOAD_URL.split("?")[0]
    mocked.add_callback(responses.POST, base, callback=server.start)
    mocked.add_callback(responses.PUT, base, callback=server.put)


@pytest.fixture
def big_ids(tmp_path: Path) -> Path:
    path = tmp_path / "big.txt"
    path.write_bytes(b"".join(b"%019d\n" % i for i in range(40_000)))  # 800 000 bytes: 4 chunks of 256 KiB
    return path


@pytest.mark.parametrize("stored_before_break", [False, True])
def test_resumable_upload_resumes_from_the_offset_the_server_reports(
    mocked, big_ids: Path, stored_before_break: bool
) -> None:
    total = big_ids.stat().st_size
    server = ResumableStorage(total, break_at_chunk=2, store_before_break=stored_before_break)
    mock_resumable(mocked, server)
    report = transfer(job(resumable=True)).upload(big_ids, chunk_size=RESUMABLE_QUANTUM)
    assert bytes(server.data) == big_ids.read_bytes()
    assert (report.bytes, report.lines) == (total, 40_000)
    query = server.ranges.index(f"bytes */{total}")
    stored = RESUMABLE_QUANTUM * (2 if stored_before_break else 1)
    assert server.ranges[query + 1].startswith(f"bytes {stored}-")


def test_resumable_chunks_are_multiples_of_256_kib(mocked, big_ids: Path) -> None:
    total = big_ids.stat().st_size
    server = ResumableStorage(total)
    mock_resumable(mocked, server)
    transfer(job(resumable=True)).upload(big_ids, chunk_size=300 * 1024)  # rounded down to one quantum
    starts = [int(r.split(" ")[1].split("-")[0]) for r in server.ranges]
    assert starts == [0, RESUMABLE_QUANTUM, 2 * RESUMABLE_QUANTUM, 3 * RESUMABLE_QUANTUM]
    assert server.ranges[-1].endswith(f"-{total - 1}/{total}")


# --- download --------------------------------------------------------------------------------------------

RESULTS = b"".join(
    b'{"id":"%d","action":"delete","created_at":"2019-10-29T17:02:47.000Z","reason":"deleted"}\n' % i
    for i in range(2000)
)


class ResultStorage:
    """Serves the results; can cut the stream short and may or may not honour Range requests."""

    def __init__(self, cut_first_at: int | None = None, supports_range: bool = True) -> None:
        self.cut_first_at = cut_first_at
        self.supports_range = supports_range
        self.requests: list[dict[str, str]] = []

    def get(self, request: Any) -> tuple[int, dict, bytes]:
        assert "Authorization" not in request.headers
        self.requests.append(dict(request.headers))
        first = len(self.requests) == 1
        start = 0
        status = 200
        if "Range" in request.headers and self.supports_range:
            start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
            status = 206
        body = RESULTS[start:]
        headers = {"Content-Length": str(len(body))}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(RESULTS) - 1}/{len(RESULTS)}"
        if first and self.cut_first_at is not None:
            body = body[: self.cut_first_at]  # the connection drops before Content-Length bytes arrive
        return status, headers, body


def mock_results(mocked: responses.RequestsMock, server: ResultStorage) -> None:
    mocked.add_callback(responses.GET, DOWNLOAD_URL.split("?")[0], callback=server.get)


def test_download_into_a_folder_names_the_file_after_the_job(mocked, tmp_path) -> None:
    mock_results(mocked, ResultStorage())
    report = transfer(job("complete")).download(tmp_path)
    assert report.uri == str(tmp_path / f"{JOB_ID}.jsonl")


def test_broken_download_resumes_with_a_range_request(mocked, tmp_path: Path) -> None:
    server = ResultStorage(cut_first_at=50_000)
    mock_results(mocked, server)
    report = transfer(job("complete")).download(tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == RESULTS
    resumed_from = int(server.requests[1]["Range"].removeprefix("bytes=").rstrip("-"))
    assert resumed_from == 50_000  # every byte that arrived before the break was kept
    assert report.lines == 2000


def test_broken_download_restarts_when_range_is_not_supported(mocked, tmp_path: Path) -> None:
    mock_results(mocked, ResultStorage(cut_first_at=50_000, supports_range=False))
    report = transfer(job("complete")).download(tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == RESULTS
    assert (report.bytes, report.lines) == (len(RESULTS), 2000)


def test_download_that_keeps_breaking_leaves_no_file(mocked, tmp_path: Path) -> None:
    mocked.get(DOWNLOAD_URL.split("?")[0], body=requests.ConnectionError("reset"))
    with pytest.raises(TransferError):
        transfer(job("complete")).download(tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [400, 403])
def test_download_answered_expired_token(mocked, tmp_path: Path, status: int) -> None:
    body = "<?xml version='1.0'?><Error><Code>ExpiredToken</Code><Message>Token expired.</Message></Error>"
    mocked.get(DOWNLOAD_URL.split("?")[0], status=status, body=body)
    with pytest.raises(DownloadUrlExpiredError):
        transfer(job("complete")).download(tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


# --- secrets ---------------------------------------------------------------------------------------------


def test_storage_session_sends_bodies_in_large_blocks() -> None:
    """urllib3's default 16 KiB send blocks kept uploads well behind curl (figures in bench/README.md)."""
    session = storage_session()
    for prefix in ("https://", "http://"):
        pool = session.get_adapter(prefix + "storage.example").poolmanager
        assert pool.connection_pool_kw["blocksize"] == STREAM_CHUNK
    assert "Authorization" not in session.headers

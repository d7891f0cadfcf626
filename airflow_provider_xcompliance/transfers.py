"""Moving a job's bytes through its signed storage URLs: simple or resumable upload, download with resume.

The hook drives this with a ``requests.Session`` that never carries the API token, its retry policy and its
clocks; nothing here imports Airflow. Storage answers are classified by :mod:`problems`, and each transfer
retries under one :class:`RetryBudget`, restarted whenever a resumable upload moves forward.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, Literal, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from airflow_provider_xcompliance import problems, storage
from airflow_provider_xcompliance.exceptions import (
    DownloadUrlExpiredError,
    TransferError,
    UploadUrlExpiredError,
)
from airflow_provider_xcompliance.models import Job, TransferReport
from airflow_provider_xcompliance.redaction import redact_url
from airflow_provider_xcompliance.retry import RetryBudget, RetryPolicy

log = logging.getLogger(__name__)

# Resumable chunks other than the last must be multiples of 256 KiB.
RESUMABLE_QUANTUM = 256 * 1024
# Large reads: requests and http.client pay a cost per piece they are fed, so small pieces slow a transfer.
STREAM_CHUNK = 1024 * 1024
# Storage may take a while to answer after the last byte of a large upload.
MIN_TRANSFER_READ_TIMEOUT = 120.0
PROGRESS_SECONDS = 10.0
PROGRESS_STEP = 0.10

T = TypeVar("T")


class Progress:
    """Logs a transfer's progress at a bounded rate: every 10 % or every 10 s, whichever comes first."""

    def __init__(self, what: str, total: int | None, clock: Callable[[], float]) -> None:
        self.what = what
        self.total = total
        self._clock = clock
        self._started = clock()
        self._last_time = self._started
        self._last_step = 0

    def update(self, done: int) -> None:
        now = self._clock()
        step = int(done / self.total / PROGRESS_STEP) if self.total else 0
        if step > self._last_step or now - self._last_time >= PROGRESS_SECONDS:
            self._last_step = max(step, self._last_step)
            self._last_time = now
            self._log(done, now)

    def _log(self, done: int, now: float) -> None:
        rate = done / max(now - self._started, 1e-9) / 1e6
        if self.total:
            log.info(
                "%s: %d of %d bytes (%.0f%%), %.1f MB/s",
                self.what,
                done,
                self.total,
                100 * done / self.total,
                rate,
            )
        else:
            log.info("%s: %d bytes, %.1f MB/s", self.what, done, rate)

    def seconds(self) -> float:
        return self._clock() - self._started


class LineCounter:
    """Counts lines of a byte stream seen once per byte position, so resent bytes are not counted twice."""

    def __init__(self) -> None:
        self.newlines = 0
        self.counted = 0
        self.last_byte = b""

    def add(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end <= self.counted:
            return
        fresh = data[max(self.counted - offset, 0) :]
        self.newlines += fresh.count(b"\n")
        self.counted = end
        if fresh:
            self.last_byte = fresh[-1:]

    def reset(self) -> None:
        self.newlines = self.counted = 0
        self.last_byte = b""

    @property
    def lines(self) -> int:
        """Newlines, plus a final line without a terminator."""
        return self.newlines + (1 if self.counted and self.last_byte != b"\n" else 0)


class _CountingReader:
    """A file-object view of ``length`` bytes from ``start``, for ``requests``: counts bytes and lines and
    reports progress as it is read.

    ``requests`` streams file objects in large blocks; a generator would be sent in tiny pieces.
    """

    def __init__(
        self, source: IO[bytes], start: int, length: int, counter: LineCounter, progress: Progress
    ) -> None:
        source.seek(start)
        self._source = source
        self._start = start
        self._length = length
        self._counter = counter
        self._progress = progress
        self.sent = 0

    def __len__(self) -> int:
        return self._length - self.sent

    def read(self, size: int = -1) -> bytes:
        wanted = STREAM_CHUNK if size is None or size < 0 else max(size, 1)
        data = self._source.read(min(wanted, self._length - self.sent))
        # Counted once per byte position: bytes resent after a break are not counted again.
        self._counter.add(self._start + self.sent, data)
        self.sent += len(data)
        self._progress.update(self._start + self.sent)
        return data


class _LargeBlockAdapter(HTTPAdapter):
    """Sends request bodies in ``STREAM_CHUNK`` blocks instead of urllib3's 16 KiB.

    Small blocks mean one ``sendall`` and one line count per 16 KiB, which kept uploads well behind ``curl``
    (bench/README.md has the figures).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", STREAM_CHUNK)
        super().init_poolmanager(*args, **kwargs)


def storage_session() -> requests.Session:
    """A session for signed storage URLs: large send blocks, and never the API's bearer token."""
    session = requests.Session()
    adapter = _LargeBlockAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _RetryableError(Exception):
    """An attempt that failed in a way another attempt may fix; the message says how (never a URL)."""


@dataclass
class JobTransfer:
    """Moves one job's bytes through its signed URLs, retrying and resuming as far as storage allows.

    ``mask_url`` registers a URL's credentials with the log masker: resumable session URLs are credentials
    too, and only this class ever sees them.
    """

    job: Job
    session: requests.Session
    timeout: float
    policy: RetryPolicy
    mask_url: Callable[[str | None], None]
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time

    # --- upload ------------------------------------------------------------------------------------------

    def upload(self, source: str | os.PathLike[str], chunk_size: int | None = None) -> TransferReport:
        """Stream an ID file to the upload URL with flat memory.

        ``chunk_size`` splits a resumable upload into requests of that many bytes (rounded down to 256 KiB);
        by default the rest of the file goes in one streamed request, which is as fast as a simple upload and
        still resumes from the stored offset after a break (Google's advice for resumable uploads).
        """
        url = self.job.upload_url
        if not url:
            raise TransferError(f"Compliance job {self.job.id} has no upload URL")
        self.mask_url(url)
        self._check_upload_window()
        size = storage.source_size(source)
        resumable = " (resumable)" if self.job.resumable else ""
        log.info("Uploading %d bytes of IDs to job %s at %s%s", size, self.job.id, redact_url(url), resumable)
        progress = Progress(f"Upload to job {self.job.id}", size, self.clock)
        counter = LineCounter()
        with storage.open_source(source) as handle:
            if self.job.resumable:
                self._upload_resumable(url, handle, size, chunk_size, counter, progress)
            else:
                self._upload_simple(url, handle, size, counter, progress)
        report = TransferReport(bytes=size, lines=counter.lines, seconds=progress.seconds())
        log.info(
            "Uploaded %d bytes, %d lines to job %s in %.1f s", size, report.lines, self.job.id, report.seconds
        )
        return report

    def _check_upload_window(self) -> None:
        if self.job.upload_expired(now=self._utcnow()):
            raise UploadUrlExpiredError(
                f"The upload URL of compliance job {self.job.id} expired at {self.job.upload_expires_at}: "
                "nothing was sent; create a new job"
            )

    def _upload_simple(
        self, url: str, handle: IO[bytes], size: int, counter: LineCounter, progress: Progress
    ) -> None:
        def attempt() -> None:
            self._check_upload_window()
            reader = _CountingReader(handle, 0, size, counter, progress)
            try:
                self._send(
                    "PUT",
                    url,
                    data=reader,
                    headers={"Content-Type": "text/plain", "Content-Length": str(size)},
                )
            except _RetryableError as exc:
                raise _RetryableError(f"{exc} after {reader.sent} bytes") from None

        self._retrying(self._budget(), f"Upload to job {self.job.id}", attempt)

    def _upload_resumable(
        self,
        url: str,
        handle: IO[bytes],
        size: int,
        chunk_size: int | None,
        counter: LineCounter,
        progress: Progress,
    ) -> None:
        """Google Cloud Storage's resumable protocol: start a session, PUT ranges, resume where it stopped."""
        what = f"Upload to job {self.job.id}"
        session_url = self._retrying(
            self._budget(), f"Starting the resumable upload of job {self.job.id}", lambda: self._start(url)
        )
        step = (
            size
            if chunk_size is None
            else max(RESUMABLE_QUANTUM, chunk_size // RESUMABLE_QUANTUM * RESUMABLE_QUANTUM)
        )
        budget = self._budget()
        offset: int | None = 0
        while offset is not None:
            try:
                self._check_upload_window()
                reader = _CountingReader(handle, offset, min(step, size - offset), counter, progress)
                offset = self._put_range(session_url, reader, offset, size)
            except _RetryableError as exc:
                self._retry(budget, what, str(exc))
                offset = self._retrying(budget, what, lambda: self._stored_offset(session_url, size))
                log.info("Resuming upload to job %s from byte %d of %d", self.job.id, offset or size, size)
            else:
                budget.progressed()

    def _start(self, url: str) -> str:
        headers = {"Content-Type": "text/plain", "Content-Length": "0", "x-goog-resumable": "start"}
        response = self._send("POST", url, headers=headers)
        location = response.headers.get("Location")
        if response.status_code not in (200, 201) or not location:
            raise TransferError(
                f"Storage started no resumable session for job {self.job.id} (HTTP {response.status_code} "
                "without a Location header)"
            )
        self.mask_url(location)
        return location

    def _put_range(self, session_url: str, reader: _CountingReader, offset: int, size: int) -> int | None:
        """PUT the reader's bytes at ``offset``; returns where the session wants the next, None when whole."""
        length = len(reader)
        content_range = f"bytes {offset}-{offset + length - 1}/{size}" if length else f"bytes */{size}"
        headers = {
            "Content-Type": "text/plain",
            "Content-Range": content_range,
            "Content-Length": str(length),
        }
        try:
            response = self._send("PUT", session_url, data=reader, headers=headers, unfinished_ok=True)
        except _RetryableError as exc:
            raise _RetryableError(f"{exc} at byte {offset + reader.sent}") from None
        return _stored_bytes(response.headers) if response.status_code == 308 else None

    def _stored_offset(self, session_url: str, size: int) -> int | None:
        """Ask the session how much it stored (``bytes */TOTAL``); None when the upload is complete."""
        headers = {"Content-Range": f"bytes */{size}"}
        try:
            response = self._send("PUT", session_url, data=b"", headers=headers, unfinished_ok=True)
        except _RetryableError as exc:
            raise _RetryableError(f"status query: {exc}") from None
        return _stored_bytes(response.headers) if response.status_code == 308 else None

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: Any = None,
        unfinished_ok: bool = False,
    ) -> requests.Response:
        """One upload request: returns a 2xx answer (or a resumable session's 308 when ``unfinished_ok``)."""
        try:
            response = self.session.request(
                method, url, data=data, headers=headers, timeout=self._timeouts(), allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _RetryableError(f"connection broken ({type(exc).__name__})") from None
        if problems.is_success(response.status_code) or (unfinished_ok and response.status_code == 308):
            return response
        raise self._refusal(response, "upload")

    # --- download ----------------------------------------------------------------------------------------

    def download(self, destination: str | os.PathLike[str]) -> TransferReport:
        """Stream the results to ``destination`` atomically, resuming a broken stream where it can."""
        url = self.job.download_url
        if not url:
            raise TransferError(f"Compliance job {self.job.id} has no download URL")
        self.mask_url(url)
        if self.job.download_expired(now=self._utcnow()):
            raise DownloadUrlExpiredError(
                f"The download URL of compliance job {self.job.id} expired at "
                f"{self.job.download_expires_at}: results are kept 7 days; run the job again"
            )
        target = storage.resolve_destination(destination, f"{self.job.id}.jsonl")
        log.info("Downloading results of job %s from %s to %s", self.job.id, redact_url(url), target)
        counter = LineCounter()
        progress = Progress(f"Download of job {self.job.id}", None, self.clock)
        with storage.atomic_writer(target) as writer:
            self._retrying(
                self._budget(),
                f"Download of job {self.job.id}",
                lambda: self._download_attempt(url, writer, counter, progress),
            )
            size = writer.size
        report = TransferReport(bytes=size, lines=counter.lines, seconds=progress.seconds(), uri=target)
        log.info(
            "Downloaded %d bytes, %d lines of job %s in %.1f s",
            size,
            report.lines,
            self.job.id,
            report.seconds,
        )
        return report

    def _download_attempt(
        self, url: str, writer: storage.AtomicWriter, counter: LineCounter, progress: Progress
    ) -> None:
        """One GET of the results, appended to what earlier attempts wrote (a Range request when any)."""
        offset = writer.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.session.get(url, headers=headers, stream=True, timeout=self._timeouts()) as resp:
                if resp.status_code == 416 and offset:
                    # What was written is not a prefix the server recognises: start over.
                    _start_over(writer, counter)
                    raise _RetryableError("range not satisfiable")
                if not problems.is_success(resp.status_code):
                    raise self._refusal(resp, "download")
                if offset and not (resp.status_code == 206 and _range_start(resp.headers) == offset):
                    log.info(
                        "Storage ignored the Range request: restarting the download of job %s", self.job.id
                    )
                    _start_over(writer, counter)
                    offset = 0
                length = resp.headers.get("Content-Length")
                progress.total = offset + int(length) if length and length.isdigit() else None
                for chunk in _body_chunks(resp):
                    counter.add(writer.size, chunk)
                    writer.file.write(chunk)
                    progress.update(writer.size)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise _RetryableError(f"connection broken ({type(exc).__name__}) at byte {writer.size}") from None
        if progress.total is not None and writer.size < progress.total:
            raise _RetryableError(f"stream ended at byte {writer.size} of {progress.total}")

    # --- shared ------------------------------------------------------------------------------------------

    def _refusal(self, response: requests.Response, direction: Literal["upload", "download"]) -> Exception:
        """A transient answer is worth another attempt; any other is the transfer error a user acts on."""
        if problems.is_transient(response.status_code):
            return _RetryableError(f"HTTP {response.status_code}")
        return problems.transfer_error(
            response.status_code, response.content, direction=direction, job_id=self.job.id
        )

    def _retrying(self, budget: RetryBudget, what: str, attempt: Callable[[], T]) -> T:
        while True:
            try:
                return attempt()
            except _RetryableError as exc:
                self._retry(budget, what, str(exc))

    def _retry(self, budget: RetryBudget, what: str, failure: str) -> None:
        delay = budget.next_delay()
        if delay is None:
            raise TransferError(f"{what} failed after {budget.failures} attempts: {failure}") from None
        log.warning("%s: %s; retrying in %.1f s", what, failure, delay)
        self.sleep(delay)

    def _budget(self) -> RetryBudget:
        return RetryBudget(self.policy, self.clock)

    def _timeouts(self) -> tuple[float, float]:
        return self.timeout, max(self.timeout, MIN_TRANSFER_READ_TIMEOUT)

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)


def _start_over(writer: storage.AtomicWriter, counter: LineCounter) -> None:
    """Drop a partial download so the next bytes written are the file's first."""
    writer.restart()
    counter.reset()


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, up to 1 MiB at a time.

    ``read1`` hands over whatever bytes came in, so a stream that breaks mid-read has still delivered (and
    the download resumes after) everything received; ``iter_content`` would drop a partly filled block.
    """
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2
        yield from response.iter_content(STREAM_CHUNK)
        return
    try:
        while chunk := raw.read1(STREAM_CHUNK, decode_content=True):
            yield chunk
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc


def _stored_bytes(headers: Mapping[str, str]) -> int:
    """Bytes a resumable session holds, from a 308's ``Range: bytes=0-N`` (no header: nothing stored)."""
    match = re.match(r"bytes=0-(\d+)", headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def _range_start(headers: Mapping[str, str]) -> int | None:
    match = re.match(r"bytes (\d+)-", headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None

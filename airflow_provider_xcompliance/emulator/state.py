"""The emulator's jobs, their lifecycle, counters and files on disk.

Time only moves through ``config.clock``: statuses advance when someone looks (every API and storage call
refreshes first), so a test can create a job, move its clock past the upload window and see ``expired``
without sleeping. Processing an upload (reading every ID) runs on a worker thread so the event loop keeps
serving; a job turns ``complete`` once that work is done and ``processing_seconds`` have passed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airflow_provider_xcompliance.emulator import results
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.jobs import JobRecord, Status, UploadSession, WireView, snowflake
from airflow_provider_xcompliance.emulator.signing import UrlSigner

__all__ = ["ConflictError", "EmulatorState", "JobRecord", "RateLimitStatus", "UploadSession"]

log = logging.getLogger(__name__)

BUCKETS = {"tweets": "twttr-tweet-compliance", "users": "twttr-user-compliance"}
_APP_ID = "1202726487847104512"  # the fixed app part of object names, as in the real URLs
UPLOAD_FILE = "submission.txt"
RESULTS_FILE = "results.jsonl"
GROUND_TRUTH_FILE = "ground_truth.jsonl"


class ConflictError(Exception):
    """Another unfinished job of the same type holds the slot."""


@dataclasses.dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_at: int  # epoch seconds
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.limit),
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(self.reset_at),
        }


class EmulatorState:
    """All mutable state of one emulator; thread-safe (the worker thread and test helpers share it)."""

    def __init__(self, config: EmulatorConfig, data_dir: Path, *, owns_data_dir: bool) -> None:
        self.config = config
        self.data_dir = data_dir
        self._owns_data_dir = owns_data_dir
        self.signer = UrlSigner()
        self.view = WireView(
            resumable=not config.omit_resumable,
            expires_at=not config.omit_expires_at,
            in_progress_as=config.in_progress_status,
        )
        self.source: results.ResultSource = (
            results.GroundTruthSource(config.ground_truth)
            if config.ground_truth
            else results.RuleSource(config.geo_scrub_action)
        )
        self.jobs: dict[str, JobRecord] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.bytes_up = 0
        self.bytes_down = 0
        self.api_requests = 0
        self._jobs_failed_by_fault = 0
        self._windows: dict[str, tuple[float, int]] = {}  # endpoint -> (reset_at, used)
        self._last_id = 0
        self._lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="xcompliance-processing")
        self._closed = False

    # -- time, ids, counters -------------------------------------------------------------------------

    def now(self) -> float:
        return self.config.clock()

    def _new_job_id(self, now: float) -> str:
        """A snowflake: milliseconds since the Twitter epoch << 22, so ids have 19 digits and grow."""
        self._last_id = max(snowflake(now), self._last_id + 1)
        return str(self._last_id)

    def count_request(self, endpoint: str) -> int:
        """Count a request; returns how many API requests have been seen (for every-Nth faults)."""
        with self._lock:
            self.requests[endpoint] += 1
            if endpoint.split(" ", 1)[1].startswith("/2/"):
                self.api_requests += 1
            return self.api_requests

    def take_rate_limit(self, endpoint: str) -> RateLimitStatus:
        """Spend one request of ``endpoint``'s fixed window (refused requests spend nothing)."""
        limit = self.config.rate_limit_count
        with self._lock:
            now = self.now()
            reset_at, used = self._windows.get(endpoint, (0.0, 0))
            if now >= reset_at:
                reset_at, used = now + self.config.rate_limit_window_seconds, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._windows[endpoint] = (reset_at, used)
            return RateLimitStatus(limit, limit - used, int(reset_at), allowed)

    def add_bytes(self, *, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self.bytes_up += up
            self.bytes_down += down

    # -- jobs ------------------------------------------------------------------------------------------

    def create_job(self, job_type: str, name: str | None, resumable: bool, base_url: str) -> JobRecord:
        with self._lock:
            self.refresh()
            unfinished = sum(job.type == job_type and job.status.holds_slot for job in self.jobs.values())
            if unfinished >= self.config.unfinished_jobs_per_type:
                raise ConflictError(job_type)
            now = float(int(self.now()))
            job_id = self._new_job_id(now)
            job = JobRecord(
                id=job_id,
                type=job_type,
                name=name,
                resumable=resumable,
                created_at=now,
                upload_expires_at=now + self.config.upload_window_seconds,
                download_expires_at=now + self.config.download_window_seconds,
            )
            upload_headers = (
                ("content-type", "host", "x-goog-resumable") if resumable else ("content-type", "host")
            )
            job.upload_url = self._signed_url(base_url, job, "submission", upload_headers)
            job.download_url = self._signed_url(base_url, job, "delivery", ("host",))
            self.jobs[job_id] = job
            self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
            log.info("created %s job %s", job_type, job_id)
            return job

    def _signed_url(self, base_url: str, job: JobRecord, kind: str, headers: tuple[str, ...]) -> str:
        path = storage_path(job.type, job.id, kind)
        window = (
            self.config.upload_window_seconds if kind == "submission" else self.config.download_window_seconds
        )
        query = self.signer.sign(
            path, signed_at=job.created_at, expires_in=int(window), signed_headers=headers
        )
        return f"{base_url.rstrip('/')}{path}?{query}"

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            self.refresh()
            return self.jobs.get(job_id)

    def list_jobs(self, job_type: str, status: str | None) -> list[JobRecord]:
        with self._lock:
            self.refresh()
            matching = [
                job
                for job in self.jobs.values()
                if job.type == job_type and (status is None or job.status.value == status)
            ]
            return sorted(matching, key=lambda job: int(job.id), reverse=True)

    def cancel_job(self, job_id: str) -> JobRecord | None:
        """Fail an unfinished job and free its slot; finished jobs are returned unchanged."""
        with self._lock:
            self.refresh()
            job = self.jobs.get(job_id)
            if job is not None and job.status.holds_slot:
                job.status = Status.FAILED
                self._remove_files(job)
                log.info("cancelled job %s", job_id)
            return job

    def refresh(self) -> None:
        """Advance every job to where the clock says it should be, and drop files nobody can fetch."""
        with self._lock:
            now = self.now()
            for job in self.jobs.values():
                if job.status is Status.CREATED and not job.upload_started and now >= job.upload_expires_at:
                    job.status = Status.EXPIRED
                    self._remove_files(job)
                elif (
                    job.status is Status.IN_PROGRESS
                    and job.outcome is not None
                    and job.processing_due is not None
                    and now >= job.processing_due
                ):
                    self._finish(job)
                if job.status is Status.COMPLETE and now >= job.download_expires_at:
                    self._remove_files(job)

    def _finish(self, job: JobRecord) -> None:
        if job.outcome_error is None and self._jobs_failed_by_fault < self.config.fail_jobs:
            self._jobs_failed_by_fault += 1
            job.outcome_error = self.config.fail_jobs_error
        if job.outcome_error is None:
            job.status = Status.COMPLETE
        else:
            job.status, job.error = Status.FAILED, job.outcome_error
            self._remove_files(job)
        log.info("job %s is %s", job.id, job.status.value)

    # -- uploads and processing ------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.data_dir / job_id

    def temp_upload_path(self, job_id: str) -> Path:
        directory = self.job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"upload-{uuid.uuid4().hex}.part"

    def open_session(self, job: JobRecord) -> UploadSession:
        with self._lock:
            upload_id = uuid.uuid4().hex
            session = UploadSession(upload_id, self.temp_upload_path(job.id))
            session.path.touch()
            job.sessions[upload_id] = session
            job.upload_started = True
            return session

    def complete_upload(self, job: JobRecord, received: Path) -> None:
        """An upload finished: the first one moves the job to ``in_progress`` and starts processing;
        any later one (a client retrying a PUT whose answer it lost) is counted and discarded."""
        with self._lock:
            job.uploads_completed += 1
            if job.status is not Status.CREATED:
                received.unlink(missing_ok=True)
                return
            target = self.job_dir(job.id) / UPLOAD_FILE
            received.replace(target)
            job.status = Status.IN_PROGRESS
            job.processing_due = self.now() + self.config.processing_seconds
            log.info("job %s received its upload (%d bytes)", job.id, target.stat().st_size)
            self._executor.submit(self._process, job)

    def _process(self, job: JobRecord) -> None:
        directory = self.job_dir(job.id)
        error: str | None = None
        try:
            outcome = results.process_upload(
                directory / UPLOAD_FILE,
                directory / RESULTS_FILE,
                directory / GROUND_TRUTH_FILE,
                job_type=job.type,
                source=self.source,
                crlf=self.config.crlf,
                timestamps=self.config.result_timestamps,
            )
            limit = self.config.max_upload_ids
            if limit is not None and outcome.ids > limit:
                error = (
                    f"The uploaded file has {outcome.ids} IDs, more than the {limit} IDs a job may hold. "
                    "Split the IDs across several jobs."
                )
            elif self.config.truncate_results:
                results.truncate_mid_line(directory / RESULTS_FILE)
        except OSError as exc:  # files removed under us (cancelled, shutting down)
            log.warning("processing job %s stopped: %s", job.id, exc)
            outcome, error = results.ProcessingOutcome(0, 0, 0, 0), "Processing was interrupted."
        with self._lock:
            job.outcome, job.outcome_error = outcome, error

    # -- files -----------------------------------------------------------------------------------------

    def _remove_files(self, job: JobRecord) -> None:
        """Keep only the ground truth: tests may still ask which records a job produced."""
        if job.files_removed:
            return
        job.files_removed = True
        directory = self.job_dir(job.id)
        for path in directory.iterdir() if directory.is_dir() else ():
            if path.name != GROUND_TRUTH_FILE:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: the ground truth stays
            directory.rmdir()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.refresh()
            return {
                "jobs": [job.to_state() for job in self.jobs.values()],
                "requests": dict(self.requests),
                "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down,
                "data_dir": str(self.data_dir),
            }

    def close(self) -> None:
        """Stop processing and, when the data dir is ours (a temp dir), remove it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Not waiting: a long processing run must not hold up shutdown (it fails on the removed files).
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def storage_path(job_type: str, job_id: str, kind: str) -> str:
    """The object path of a job's upload (``submission``) or results (``delivery``)."""
    return f"/storage/{BUCKETS[job_type]}/{job_id}/{kind}/{_APP_ID}_{job_id}"

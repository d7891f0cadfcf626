"""One compliance job's lifecycle against the API, composed once and used by every operator.

The runner finds a chunk's job by its deterministic name or creates it, waits out whichever job holds the
type's single slot, uploads the IDs, replaces a job that can no longer be used, waits for the job to finish
and cancels it when asked. It holds no Airflow import: the operators give it the hook, a logger and two
callbacks for what only Airflow can do, publishing a job id the moment it exists and deferring a wait to the
triggerer. Every decision it acts on is a pure function of :mod:`~airflow_provider_xcompliance.lifecycle`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, NoReturn, Protocol

from airflow_provider_xcompliance import lifecycle
from airflow_provider_xcompliance.exceptions import (
    CancelNotSupportedError,
    JobConflictError,
    JobExpiredError,
    JobFailedError,
    JobTimeoutError,
    UploadRejectedError,
    UploadUrlExpiredError,
)
from airflow_provider_xcompliance.ids import IdChunk
from airflow_provider_xcompliance.lifecycle import Step
from airflow_provider_xcompliance.models import Job, JobStatus, JobType, TransferReport

# Creates that conflict while no job visibly holds the slot (it ended between the two calls) before giving up.
MAX_INVISIBLE_CONFLICTS = 3
MISSED_DEADLINE = "it missed the task's deadline"


class ComplianceApi(Protocol):
    """The part of :class:`~airflow_provider_xcompliance.hooks.compliance.XComplianceHook` a runner uses."""

    def find_job(self, job_type: JobType, name: str) -> Job | None: ...
    def create_job(self, job_type: JobType, name: str | None = None, resumable: bool = False) -> Job: ...
    def list_jobs(self, job_type: JobType) -> list[Job]: ...
    def get_job(self, job_id: str) -> Job: ...
    def cancel_job(self, job_id: str) -> Job: ...
    def upload_ids(self, job: Job, source: str | os.PathLike[str]) -> TransferReport: ...
    def wait_for_job(self, job_id: str, poll_interval: float = 30.0, timeout: float | None = None) -> Job: ...


class Log(Protocol):
    """The task's logger (Airflow's, or the standard library's), so the lines land in the task log."""

    def info(self, msg: str, /, *args: Any) -> Any: ...
    def warning(self, msg: str, /, *args: Any) -> Any: ...


class Wait(str, Enum):
    """What a deferred wait waits for: the slot another job holds, or our own job's processing."""

    SLOT = "slot"
    JOB = "job"


Defer = Callable[[Wait, str, float | None], NoReturn]
"""Hands the wait for job ``job_id`` until ``deadline`` to the triggerer; never returns (the task defers)."""
Stage = Callable[[IdChunk], None]
"""Makes a chunk's ID file present on this worker before its upload."""


def _nothing_to_stage(chunk: IdChunk) -> None:
    """The chunk's file is where the ID preparation left it."""


@dataclass
class JobRunner:
    """Creates, reattaches, uploads, waits for and cancels the jobs of one task try.

    :param api: the hook (or anything with its job calls).
    :param deadline: epoch seconds by which the try must be done (None: no bound).
    :param on_job: called with each job the moment it is created or reattached, before anything can fail.
    :param defer: hands a wait to the triggerer; None polls here, holding the worker.
    :param slot_deadline: the end of a slot wait already under way (kept across a deferral).
    """

    api: ComplianceApi
    job_type: JobType
    log: Log
    resumable: bool = False
    on_conflict: Literal["wait", "fail"] = "wait"
    slot_wait_timeout: float = 6 * 3600.0
    poll_interval: float = 30.0
    deadline: float | None = None
    on_job: Callable[[Job], None] = lambda job: None
    defer: Defer | None = None
    slot_deadline: float | None = None
    job_id: str | None = field(default=None, init=False)
    """The unfinished job this try created or reattached: the one a kill may cancel."""

    def start(self, chunk: IdChunk, name: str, stage: Stage = _nothing_to_stage) -> Job:
        """Reattach to this chunk's job or create it, and upload its IDs if that is still to do."""
        existing = self.api.find_job(self.job_type, name)
        if existing is not None:  # made by an earlier try of this task: with the protocol it asked for
            existing = existing.as_requested(self.resumable)
        step = lifecycle.reattach_step(existing, datetime.now(timezone.utc))
        if existing is not None and step is Step.CREATE:
            # Replacing a job that still holds the slot can only mean its upload window is closing.
            why = (
                "its upload window closes too soon"
                if existing.status.holds_slot
                else f"it is {existing.status.value}"
            )
            job = self._replace(existing, name, why)
        else:
            job = existing or self._create(name)
            self._track(job)
        if step not in (Step.CREATE, Step.UPLOAD):
            return job
        stage(chunk)
        return self._upload(job, chunk, name)

    def wait(self, job: Job, ids: int) -> Job:
        """The job once complete: deferred to the triggerer, or polled here, within the try's deadline."""
        if job.status is JobStatus.COMPLETE:
            return job
        if self.defer is not None:
            self.defer(Wait.JOB, job.id, self.deadline)
        left = None if self.deadline is None else max(self.deadline - time.time(), 0.0)
        try:
            return self.api.wait_for_job(job.id, self.poll_interval, timeout=left)
        except JobTimeoutError:
            self.cancel_quietly(job.id, MISSED_DEADLINE)
            raise
        except JobFailedError as error:
            raise JobFailedError(job.id, lifecycle.with_size_hint(error.error, ids)) from error

    def cancel_quietly(self, job_id: str, why: str) -> bool:
        """Best-effort cancel: the task fails or abandons the job anyway, so a failed cancel only logs.

        Returns whether the job was cancelled. Cancel is optional in X's API (absent from most spec
        versions): without it the job finishes on X's side, or expires by itself 15 minutes after its
        creation when nothing was uploaded, and a replacement waits for the slot until then.
        """
        try:
            self.api.cancel_job(job_id)
        except CancelNotSupportedError:
            self.log.warning(
                "Job %s is not cancelled (%s): this X API has no cancel, so it will finish on X's side, "
                "or expire by itself if nothing was uploaded",
                job_id,
                why,
            )
        except Exception as error:
            self.log.warning(
                "Could not cancel job %s (%s): %s. It will finish on X's side or expire by itself",
                job_id,
                why,
                error,
            )
        else:
            self.log.info("Cancelled job %s because %s", job_id, why)
            return True
        return False

    def _track(self, job: Job) -> None:
        """Make the job findable before anything else can fail: the callback and a log line naming it."""
        self.job_id = job.id
        self.on_job(job)
        self.log.info(
            "Compliance job %s (%s, name %s) is %s", job.id, job.type.value, job.name, job.status.value
        )

    def _create(self, name: str) -> Job:
        """Create the job, first waiting out whichever job holds the type's single slot."""
        conflicts_without_holder = 0
        while True:
            try:
                job = self.api.create_job(self.job_type, name=name, resumable=self.resumable)
            except JobConflictError:
                holder = lifecycle.slot_holder(self.api.list_jobs(self.job_type), self.job_type)
                if holder is None:
                    conflicts_without_holder += 1
                    if conflicts_without_holder < MAX_INVISIBLE_CONFLICTS:
                        continue  # the holder ended between the two calls: try again
                self._wait_for_slot(holder)
            else:
                self.slot_deadline = None
                return job

    def _wait_for_slot(self, holder: Job | None) -> None:
        """Wait (bounded) until ``holder`` leaves the slot: deferred, or polled here."""
        kind = self.job_type.value
        who = f"job {holder.id} (name {holder.name}, {holder.status.value})" if holder else "an unlisted job"
        if self.on_conflict == "fail" or holder is None:
            raise JobConflictError(
                f"The app's single {kind} slot is held by {who}: wait for it to end or cancel it "
                "(on_conflict='wait' waits for it)"
            )
        now = time.time()
        if self.slot_deadline is None:
            task_bound = self.deadline if self.deadline is not None else float("inf")
            self.slot_deadline = min(now + self.slot_wait_timeout, task_bound)
        until = datetime.fromtimestamp(self.slot_deadline, tz=timezone.utc)
        self.log.warning("The %s slot is held by %s: waiting until %s", kind, who, until)
        if self.defer is not None:
            self.defer(Wait.SLOT, holder.id, self.slot_deadline)
        try:
            self.api.wait_for_job(holder.id, self.poll_interval, timeout=max(self.slot_deadline - now, 0.0))
        except (JobFailedError, JobExpiredError):
            pass  # ended badly, but ended: the slot is free either way
        except JobTimeoutError as error:
            raise JobConflictError(
                f"The {kind} slot was still held by {who} at the end of the wait"
            ) from error

    def _upload(self, job: Job, chunk: IdChunk, name: str) -> Job:
        # Only a closed window: a reattached job was held to the margin already, and holding a fresh one to
        # it would replace job after job where the API's window is shorter than the margin.
        if job.upload_expired(datetime.now(timezone.utc)):
            job = self._replace(job, name, "its upload window has closed")
        try:
            self.api.upload_ids(job, chunk.path)
        except UploadUrlExpiredError:
            job = self._replace(job, name, "its upload URL expired during the upload")
            self.api.upload_ids(job, chunk.path)
        except UploadRejectedError as error:
            self.cancel_quietly(job.id, "its upload was rejected")
            raise UploadRejectedError(
                f"Upload to job {job.id} rejected: {error}.{lifecycle.size_hint(chunk.ids)}"
            ) from error
        return self.api.get_job(job.id)  # the status check before any wait

    def _replace(self, job: Job, name: str, why: str) -> Job:
        self.log.warning("Not using job %s because %s: creating a fresh one", job.id, why)
        if job.status.holds_slot:  # cancelling frees the slot at once where the API can cancel
            self.cancel_quietly(job.id, why)
        fresh = self._create(name)
        self._track(fresh)
        return fresh

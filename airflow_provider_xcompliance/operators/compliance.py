"""Operators that run X API batch compliance jobs: create and upload, download, or the whole lifecycle.

Every job gets a deterministic name (:func:`~airflow_provider_xcompliance.naming.job_name`), so a retried or
cleared task finds the job it started and carries on from the job's status instead of starting a second one.
The decisions (what to do with a job found by name, deadlines, which file a chunk's results go to, ETAs) are
pure functions in :mod:`airflow_provider_xcompliance.lifecycle`; the operators are thin glue around them
and the hook.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_xcompliance import lifecycle, storage
from airflow_provider_xcompliance.exceptions import (
    CancelNotSupportedError,
    InvalidIdsError,
    JobConflictError,
    JobExpiredError,
    JobFailedError,
    JobTimeoutError,
    UploadRejectedError,
    UploadUrlExpiredError,
    XComplianceError,
)
from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.ids import Fmt, IdChunk, OnInvalid, PreparedIds, prepare_ids
from airflow_provider_xcompliance.lifecycle import ChunkRecord, Step
from airflow_provider_xcompliance.models import Job, JobStatus, JobType
from airflow_provider_xcompliance.naming import job_name
from airflow_provider_xcompliance.plan import StoredPlan
from airflow_provider_xcompliance.task_state import task_state
from airflow_provider_xcompliance.transfers import LineCounter
from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger
from airflow_provider_xcompliance.version_compat import AirflowTaskTerminated, conf

if TYPE_CHECKING:
    from airflow.sdk import Context

# Creates that conflict while no job visibly holds the slot (it ended between the two calls) before giving up.
MAX_INVISIBLE_CONFLICTS = 3
UI_COLOR = "#cfe8fc"
_MISSED_DEADLINE = "it missed the task's deadline"


class XComplianceCreateJobOperator(BaseOperator):
    """Validate an ID source, create a compliance job and upload the IDs; returns the job id.

    The job id is pushed to XCom (key ``job_id``) the moment the job exists. A retry finds the job by its
    deterministic name: an uploaded job is returned as is, a created one still inside its upload window gets
    the upload, a failed or expired one is replaced. When another job of the same type holds the app's
    single slot, the operator waits for it (deferred when ``deferrable``) or fails fast
    (``on_conflict="fail"``), naming the job that holds it.

    Nothing is carried in the resume kwargs of a deferral: a resumed task rebuilds its position from the
    trigger event, the API (jobs by name) and the destination, so resuming and retrying share one path.

    :param job_type: ``tweets`` or ``users``.
    :param ids: ID source: a file, folder, glob or list of them, local or object storage (templated).
    :param name: readable prefix of the job name (templated); a hash of DAG, task, run and chunk is always
        appended, so the same name in two runs never reattaches the wrong job.
    :param resumable: create a resumable job and upload it in chunks that survive a broken connection.
    :param x_conn_id: the X API connection.
    :param ids_format: ``text``, ``csv`` or ``parquet``; by default from the file suffix.
    :param id_column: the ID column of CSV or Parquet sources.
    :param on_invalid: ``fail`` (before any job exists) or ``skip`` (invalid lines are counted and written to
        a rejects file).
    :param dedupe: remove duplicate IDs (within a bounded memory; spills to disk beyond it).
    :param on_conflict: ``wait`` for the job that holds the slot, or ``fail`` at once.
    :param slot_wait_timeout: seconds to wait for the slot before failing.
    :param poll_interval: seconds between status checks (stretched when the rate window runs low).
    :param timeout: seconds the whole try may take (waits included); ``execution_timeout`` also counts.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param max_transient_errors: transient poll failures in a row a deferred wait tolerates.
    """

    template_fields: Sequence[str] = ("ids", "name")
    ui_color = UI_COLOR
    max_ids_per_job: int | None = None  # one job: splitting needs the run operator, which waits between jobs

    def __init__(
        self,
        *,
        job_type: JobType | str,
        ids: Any,
        name: str | None = None,
        resumable: bool = False,
        x_conn_id: str = XComplianceHook.default_conn_name,
        ids_format: Fmt | None = None,
        id_column: str | None = None,
        on_invalid: OnInvalid = "fail",
        dedupe: bool = False,
        on_conflict: Literal["wait", "fail"] = "wait",
        slot_wait_timeout: float = 6 * 3600.0,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_transient_errors: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_type = JobType(job_type)
        self.ids = ids
        self.name = name
        self.resumable = resumable
        self.x_conn_id = x_conn_id
        self.ids_format = ids_format
        self.id_column = id_column
        self.on_invalid = on_invalid
        self.dedupe = dedupe
        self.on_conflict = on_conflict
        self.slot_wait_timeout = slot_wait_timeout
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.max_transient_errors = max_transient_errors
        self._job_id: str | None = None  # our unfinished job, for on_kill
        self._slot_deadline: float | None = None  # end of the current wait for another job's slot
        self._running = False  # inside execute: a kill now interrupts the task (on_kill)

    @cached_property
    def hook(self) -> XComplianceHook:
        return XComplianceHook(self.x_conn_id)

    # --- entry points ---

    def execute(self, context: Context) -> Any:
        return self._carry_on(context)

    def execute_after_slot_wait(self, context: Context, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """Resume after waiting for another job to free the slot, and try to create the job again."""
        event = lifecycle.checked_event(event)
        if event["status"] == "timeout":
            raise JobConflictError(
                f"The {self.job_type.value} slot was still held by job {event['job_id']} after waiting "
                f"{self.slot_wait_timeout:.0f} s; try again later or cancel that job"
            )
        self.log.info("Job %s no longer holds the slot: %s", event["job_id"], event.get("message"))
        self._slot_deadline = event.get("deadline")  # a new conflict keeps waiting against the same bound
        return self._carry_on(context)

    def on_kill(self) -> None:
        """Stop at once when killed mid-run; cancel the job only when the task is stopped for good.

        Airflow calls this from the task's SIGTERM handler (the task was marked failed or success, cleared,
        or its worker is shutting down) and after an ``execution_timeout``. A task stopped mid-run must not
        poll on, so the handler raises ``AirflowTaskTerminated`` into the running code; whether the job is
        cancelled is decided once that has unwound (:meth:`_after_kill`), since asking the supervisor for
        the task's state from inside a signal handler could interleave with a request the task was making.
        A deferred wait is the trigger's business (:meth:`XComplianceJobTrigger.on_kill`).
        """
        if self._running:
            raise AirflowTaskTerminated(f"Task {self.task_id} was stopped while running")
        if self._job_id:  # the try has already ended (its execution_timeout): nothing will reattach to it
            self._cancel_quietly(self._job_id, "the task was killed")

    def _carry_on(self, context: Context) -> Any:
        """:meth:`_proceed`, marked as running so that a kill stops it (see :meth:`on_kill`)."""
        self._running = True
        try:
            return self._proceed(context)
        except AirflowTaskTerminated:
            self._after_kill(context)
            raise
        finally:
            self._running = False

    def _after_kill(self, context: Context) -> None:
        """Cancel a killed try's job only if the task is stopped for good; else leave it to the next try."""
        try:
            state = task_state(context["ti"])
        except Exception as error:
            state = None
            self.log.warning("Could not read this task's state after the kill: %s", error)
        if self._job_id and lifecycle.stopped_for_good(state):
            self._cancel_quietly(self._job_id, f"the task was stopped ({state})")
        elif self._job_id:
            self.log.info("Leaving job %s for the next try: this task is %s", self._job_id, state)
        if state == "running":  # the server did not stop it: the worker is shutting down, so let it retry
            raise XComplianceError(
                f"The worker stopped task {self.task_id} mid-run; a retry carries on with job {self._job_id}"
            )

    def _proceed(self, context: Context) -> Any:
        """Carry on from wherever this task run stands: a first try, a retry and a resume take one path."""
        prepared = self._prepare_ids(context)
        job = self._start_job(context, prepared.chunks[0], self._job_name(context, None))
        self._job_id = None  # uploaded: waiting (and cancelling) is someone else's business now
        for chunk in prepared.chunks:  # the rejects file, if any, stays for the user
            chunk.path.unlink(missing_ok=True)
        return job.id

    def _deadline(self, context: Context) -> float | None:
        """This try's deadline: its start (kept across deferrals) plus ``timeout``/``execution_timeout``."""
        start = context["ti"].start_date
        return lifecycle.run_deadline(
            start.timestamp() if start else time.time(), self.timeout, self.execution_timeout
        )

    # --- IDs ---

    def _staging_dir(self, context: Context) -> Path:
        # Deterministic per task run, so a resume on the same machine reuses the normalised files.
        return Path(tempfile.gettempdir()) / "xcompliance-ids" / self._job_name(context, None)

    def _prepare_ids(self, context: Context) -> PreparedIds:
        """Validated, normalised ID files: reused from an earlier call of this task run when still on disk.

        A source without a single valid ID fails here, before any job exists.
        """
        staging = self._staging_dir(context)
        manifest = staging / "manifest.json"
        if manifest.exists():
            prepared = PreparedIds.load(manifest)
            if all(chunk.path.exists() for chunk in prepared.chunks):
                return prepared
        prepared = self._read_ids(staging)
        self._ids_prepared(context, prepared)
        if not prepared.chunks:  # no manifest either: a retry reads the source again (it may be fixed)
            counts = prepared.counts.as_dict()
            raise InvalidIdsError(
                f"No valid ID in {self.ids!r}: nothing to upload, no job created ({counts})"
            )
        prepared.save(manifest)
        return prepared

    def _id_options(self) -> dict[str, Any]:
        """The settings that decide how the IDs are split into chunks."""
        return {
            "ids_format": self.ids_format,
            "id_column": self.id_column,
            "on_invalid": self.on_invalid,
            "dedupe": self.dedupe,
            "max_ids_per_job": self.max_ids_per_job,
        }

    def _read_ids(self, staging: Path) -> PreparedIds:
        """Read, validate and chunk the ID source into ``staging``."""
        return prepare_ids(
            storage.id_sources(self.ids),
            staging,
            fmt=self.ids_format,
            id_column=self.id_column,
            on_invalid=self.on_invalid,
            dedupe=self.dedupe,
            max_ids_per_job=self.max_ids_per_job,
        )

    def _ids_prepared(self, context: Context, prepared: PreparedIds) -> None:
        context["ti"].xcom_push(key="ids", value=prepared.counts.as_dict())
        if prepared.rejects_path is not None:
            self.log.warning(
                "%d invalid IDs skipped, listed in %s", prepared.counts.invalid, prepared.rejects_path
            )

    # --- jobs ---

    def _job_name(self, context: Context, chunk: int | None) -> str:
        ti = context["ti"]
        return job_name(
            ti.dag_id,
            ti.task_id,
            ti.run_id,
            map_index=-1 if ti.map_index is None else ti.map_index,
            chunk=chunk,
            label=self.name,
        )

    def _track(self, context: Context, job: Job) -> None:
        """Make the job findable before anything else can fail: XCom and a log line that identifies it."""
        self._job_id = job.id
        context["ti"].xcom_push(key="job_id", value=job.id)
        self.log.info(
            "Compliance job %s (%s, name %s) is %s", job.id, job.type.value, job.name, job.status.value
        )

    def _start_job(self, context: Context, chunk: IdChunk, name: str) -> Job:
        """Reattach to this chunk's job or create it, and upload its IDs if that is still to do."""
        existing = self.hook.find_job(self.job_type, name)
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
            job = self._replace(context, existing, name, why)
        else:
            job = existing or self._create(context, name)
            self._track(context, job)
        return self._upload(context, job, chunk, name) if step in (Step.CREATE, Step.UPLOAD) else job

    def _create(self, context: Context, name: str) -> Job:
        """Create the job, first waiting out whichever job holds the type's single slot."""
        conflicts_without_holder = 0
        while True:
            try:
                job = self.hook.create_job(self.job_type, name=name, resumable=self.resumable)
            except JobConflictError:
                holder = lifecycle.slot_holder(self.hook.list_jobs(self.job_type), self.job_type)
                if holder is None:
                    conflicts_without_holder += 1
                    if conflicts_without_holder < MAX_INVISIBLE_CONFLICTS:
                        continue  # the holder ended between the two calls: try again
                self._wait_for_slot(context, holder)
            else:
                self._slot_deadline = None
                return job

    def _wait_for_slot(self, context: Context, holder: Job | None) -> None:
        """Wait (bounded) until ``holder`` leaves the slot: defers, or polls when not deferrable."""
        kind = self.job_type.value
        who = f"job {holder.id} (name {holder.name}, {holder.status.value})" if holder else "an unlisted job"
        if self.on_conflict == "fail" or holder is None:
            raise JobConflictError(
                f"The app's single {kind} slot is held by {who}: wait for it to end or cancel it "
                "(on_conflict='wait' waits for it)"
            )
        now = time.time()
        if self._slot_deadline is None:
            deadline = self._deadline(context)
            task_bound = deadline if deadline is not None else float("inf")
            self._slot_deadline = min(now + self.slot_wait_timeout, task_bound)
        self.log.warning("The %s slot is held by %s: waiting until %s", kind, who, _utc(self._slot_deadline))
        if self.deferrable:
            self.defer(
                trigger=self._trigger(holder.id, self._slot_deadline, cancel_on_kill=False),
                method_name="execute_after_slot_wait",
                timeout=lifecycle.defer_timeout(self._slot_deadline, now),
            )
        try:
            self.hook.wait_for_job(holder.id, self.poll_interval, timeout=max(self._slot_deadline - now, 0.0))
        except (JobFailedError, JobExpiredError):
            pass  # ended badly, but ended: the slot is free either way
        except JobTimeoutError as error:
            raise JobConflictError(
                f"The {kind} slot was still held by {who} at the end of the wait"
            ) from error

    def _upload(self, context: Context, job: Job, chunk: IdChunk, name: str) -> Job:
        # Only a closed window: a reattached job was held to the margin already, and holding a fresh one to
        # it would replace job after job where the API's window is shorter than the margin.
        if job.upload_expired(datetime.now(timezone.utc)):
            job = self._replace(context, job, name, "its upload window has closed")
        try:
            self.hook.upload_ids(job, chunk.path)
        except UploadUrlExpiredError:
            job = self._replace(context, job, name, "its upload URL expired during the upload")
            self.hook.upload_ids(job, chunk.path)
        except UploadRejectedError as error:
            self._cancel_quietly(job.id, "its upload was rejected")
            raise UploadRejectedError(
                f"Upload to job {job.id} rejected: {error}.{lifecycle.size_hint(chunk.ids)}"
            ) from error
        return self.hook.get_job(job.id)  # the status check before any wait

    def _replace(self, context: Context, job: Job, name: str, why: str) -> Job:
        self.log.warning("Not using job %s because %s: creating a fresh one", job.id, why)
        if job.status.holds_slot:  # cancelling frees the slot at once where the API can cancel
            self._cancel_quietly(job.id, why)
        fresh = self._create(context, name)
        self._track(context, fresh)
        return fresh

    def _trigger(
        self, job_id: str, deadline: float | None, cancel_on_kill: bool = True
    ) -> XComplianceJobTrigger:
        return XComplianceJobTrigger(
            job_id=job_id,
            x_conn_id=self.x_conn_id,
            poll_interval=self.poll_interval,
            deadline=deadline,
            max_transient_errors=self.max_transient_errors,
            cancel_on_kill=cancel_on_kill,
        )

    def _cancel_quietly(self, job_id: str, why: str) -> bool:
        """Best-effort cancel: the task fails or abandons the job anyway, so a failed cancel only logs.

        Returns whether the job was cancelled. Cancel is optional in X's API (absent from most spec
        versions): without it the job finishes on X's side, or expires by itself 15 minutes after its
        creation when nothing was uploaded, and a replacement waits for the slot until then.
        """
        try:
            self.hook.cancel_job(job_id)
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


class XComplianceRunJobOperator(XComplianceCreateJobOperator):
    """Run the whole compliance lifecycle in one task: validate, create, upload, wait, download.

    With ``max_ids_per_job`` the IDs are split into chunks run one after another (the API runs one unfinished
    job per type), each downloaded as soon as it completes. Progress is derived, not stored: a chunk is
    finished when its deterministically named job is complete and its results file exists at the
    destination, so a resumed, retried or cleared task skips the finished chunks and reattaches to the
    running one. An ETA is logged per chunk from the chunk durations observed so far. The chunks themselves
    are planned once (:mod:`~airflow_provider_xcompliance.plan`): the plan and the validated chunks are
    stored beside the results, so a try on another worker resumes without reading the source again, and
    fails with :class:`~airflow_provider_xcompliance.exceptions.SourceChangedError` if the source now holds
    other IDs.

    Returns a small dict: ``job_ids``, ``results_uris``, ``uploaded_ids``, ``result_lines``, ``chunks`` (one
    record each, also pushed to XCom key ``chunks`` as they finish), ``ids`` (validation counts) and
    ``rejects_uri``.

    :param destination: where results go (templated): a folder (ending in ``/`` or existing) that receives
        ``<job name>.jsonl`` per chunk, or a file name (``name.part-00000.jsonl`` ... when there are chunks).
    :param max_ids_per_job: IDs per job; None runs one job however large the input.

    All other parameters are those of :class:`XComplianceCreateJobOperator`.
    """

    template_fields: Sequence[str] = ("ids", "name", "destination")

    def __init__(self, *, destination: str, max_ids_per_job: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.max_ids_per_job = max_ids_per_job

    def execute(self, context: Context) -> Any:
        # The key exists from the first call of a try on, so a resumed call pulls it without the API client
        # logging an ERROR for a missing XCom.
        context["ti"].xcom_push(key="chunks", value=[])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """Resume when the running chunk's job ended: carry on from what the API and destination show."""
        event = lifecycle.checked_event(event)
        self._job_id = job_id = event["job_id"]
        if event["status"] == "timeout":
            cancelled = self._cancel_quietly(job_id, _MISSED_DEADLINE)
            fate = "the job was cancelled" if cancelled else "the job was left to finish on X's side"
            raise JobTimeoutError(f"{event['message']}; {fate}")
        if event["status"] == "error":
            error = event.get("error")
            ids = self._ids_of(context, job_id) if lifecycle.looks_like_size_error(error) else None
            ended = lifecycle.job_outcome_error(
                job_id, event.get("job_status"), lifecycle.with_size_hint(error, ids)
            )
            # Without a final status, polling gave up: the job may still be running, and a retry reattaches.
            raise ended or XComplianceError(event["message"])
        return self._carry_on(context)  # finds the job complete without results: downloads it, goes on

    def _proceed(self, context: Context) -> Any:
        """Run the chunks the API and the destination do not show as finished, one job at a time."""
        prepared = self._prepare_ids(context)
        done = self._finished_chunks(context, prepared)
        for chunk in prepared.chunks[len(done) :]:
            remaining = sum(c.ids for c in prepared.chunks[chunk.index :])
            rate = lifecycle.processing_rate(done)
            self.log.info(
                lifecycle.eta_message(chunk.index, len(prepared.chunks), chunk.ids, remaining, rate)
            )
            name = self._chunk_name(context, prepared, chunk.index)
            job = self._wait(context, self._start_job(context, chunk, name), chunk)
            done.append(self._download(prepared, chunk, name, job))
            context["ti"].xcom_push(key="chunks", value=done)
        shutil.rmtree(self._staging_dir(context), ignore_errors=True)
        self._plan(context).finish(prepared)
        return self._summary(context, prepared, done)

    # --- the chunk plan, stored at the destination so a try on any worker can resume ---

    def _prepare_ids(self, context: Context) -> PreparedIds:
        """The chunks of this task run: from the plan at the destination (checked against the source, which
        is not read again), or read from the source once, staged at the destination and planned."""
        plan = self._plan(context)
        prepared = plan.load(self._read_ids)
        if prepared is not None:
            super()._ids_prepared(context, prepared)  # a new try starts without its predecessors' XCom
            return prepared
        fingerprint = plan.fingerprint()  # before the read: a change during it shows at a retry
        return plan.save(super()._prepare_ids(context), fingerprint)

    def _upload(self, context: Context, job: Job, chunk: IdChunk, name: str) -> Job:
        """Upload a chunk, first fetching its IDs when this worker's disk does not hold them."""
        if not chunk.path.exists():
            self._plan(context).restage(chunk, self._read_ids)
        return super()._upload(context, job, chunk, name)

    def _plan(self, context: Context) -> StoredPlan:
        name = self._job_name(context, None)
        target = storage.resolve_destination(self.destination, f"_{name}.jsonl")
        # A folder gets files named after the whole task run (``_``-prefixed, so readers skip them); a file
        # destination, files named after it.
        folder, slash, filename = target.rpartition("/")
        stem = filename.removesuffix(".jsonl") if filename == f"_{name}.jsonl" else filename.partition(".")[0]
        return StoredPlan(
            f"{folder}{slash}{stem}",
            storage.id_sources(self.ids),
            self._id_options(),
            self._staging_dir(context),
            self.log,
        )

    def _ids_prepared(self, context: Context, prepared: PreparedIds) -> None:
        """Publish the rejects beside the results, since the local staging folder is temporary."""
        if prepared.rejects_path is not None:
            target = self._rejects_file(context)
            storage.copy(prepared.rejects_path, target)
            prepared = dataclasses.replace(prepared, rejects_path=None)
            self.log.warning("%d invalid IDs skipped, listed in %s", prepared.counts.invalid, target)
        super()._ids_prepared(context, prepared)

    def _rejects_file(self, context: Context) -> str:
        name = self._job_name(context, None)
        return lifecycle.sibling_file(
            storage.resolve_destination(self.destination, f"{name}.jsonl"), "rejects", "csv"
        )

    def _chunk_name(self, context: Context, prepared: PreparedIds, index: int) -> str:
        return self._job_name(context, index if len(prepared.chunks) > 1 else None)

    def _results_file(self, name: str, index: int, chunks: int) -> str:
        target = storage.resolve_destination(self.destination, f"{name}.jsonl")
        return (
            lifecycle.chunk_file(target, index) if chunks > 1 and target == str(self.destination) else target
        )

    def _finished_chunks(self, context: Context, prepared: PreparedIds) -> list[ChunkRecord]:
        """The leading chunks with a complete job and a results file (one list call, no data read twice)."""
        ti = context["ti"]
        recorded = ti.xcom_pull(task_ids=ti.task_id, key="chunks", map_indexes=ti.map_index) or []
        known = {record["job_id"]: record for record in recorded}
        jobs = lifecycle.newest_by_name(self.hook.list_jobs(self.job_type))
        done: list[ChunkRecord] = []
        for chunk in prepared.chunks:
            name = self._chunk_name(context, prepared, chunk.index)
            job, target = jobs.get(name), self._results_file(name, chunk.index, len(prepared.chunks))
            if job is None or job.status is not JobStatus.COMPLETE or not storage.location(target).exists():
                break
            earlier = known.get(job.id)  # recorded by an earlier call of this try: no need to count again
            lines = earlier["result_lines"] if earlier else _count_lines(target)
            seconds = earlier["processing_seconds"] if earlier else None
            done.append(_record(chunk.index, job, name, chunk.ids, target, lines, seconds))
        if done and not known:
            self.log.info(
                "Resuming at chunk %d: %d chunk(s) finished by an earlier try", len(done) + 1, len(done)
            )
        return done

    def _wait(self, context: Context, job: Job, chunk: IdChunk) -> Job:
        """The job once complete: deferred to the trigger, or polled here when not deferrable."""
        if job.status is JobStatus.COMPLETE:
            return job
        deadline = self._deadline(context)
        if self.deferrable:
            self.defer(
                trigger=self._trigger(job.id, deadline),
                method_name="execute_complete",
                timeout=lifecycle.defer_timeout(deadline, time.time()),
            )
        left = None if deadline is None else max(deadline - time.time(), 0.0)
        try:
            return self.hook.wait_for_job(job.id, self.poll_interval, timeout=left)
        except JobTimeoutError:
            self._cancel_quietly(job.id, _MISSED_DEADLINE)
            raise
        except JobFailedError as error:
            raise JobFailedError(job.id, lifecycle.with_size_hint(error.error, chunk.ids)) from error

    def _ids_of(self, context: Context, job_id: str) -> int | None:
        """How many IDs the chunk of this job held (for the size hint of a failed job)."""
        prepared, name = self._prepare_ids(context), self.hook.get_job(job_id).name
        sizes = {self._chunk_name(context, prepared, c.index): c.ids for c in prepared.chunks}
        return sizes.get(name or "")

    def _download(self, prepared: PreparedIds, chunk: IdChunk, name: str, job: Job) -> ChunkRecord:
        report = self.hook.download_results(job, self._results_file(name, chunk.index, len(prepared.chunks)))
        # From creation to results: the chunk's whole duration, which is what an ETA needs.
        seconds = time.time() - job.created_at.timestamp() if job.created_at else None
        self._job_id = None  # complete: nothing left for on_kill to cancel
        self.log.info(
            "Chunk %d: %d result lines from job %s at %s", chunk.index + 1, report.lines, job.id, report.uri
        )
        return _record(chunk.index, job, name, chunk.ids, report.uri or "", report.lines, seconds)

    def _summary(self, context: Context, prepared: PreparedIds, done: list[ChunkRecord]) -> dict[str, Any]:
        return {
            "job_type": self.job_type.value,
            "job_ids": [c["job_id"] for c in done],
            "results_uris": [c["results_uri"] for c in done],
            "uploaded_ids": sum(c["uploaded_ids"] for c in done),
            "result_lines": sum(c["result_lines"] for c in done),
            "chunks": done,
            "ids": prepared.counts.as_dict(),
            "rejects_uri": self._rejects_file(context) if prepared.counts.invalid else None,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the ID sources in, the results files out (from the task's XCom)."""
        from airflow_provider_xcompliance import lineage

        result = task_instance.xcom_pull(task_ids=self.task_id) or {}
        return lineage.operator_lineage(lineage.uris(self.ids), result.get("results_uris", []))


class XComplianceDownloadResultsOperator(BaseOperator):
    """Download a complete job's results to ``destination``; returns the results URI and line count.

    :param job_id: the compliance job (templated), typically ``XComplianceCreateJobOperator``'s XCom.
    :param destination: a file, or a folder (ending in ``/`` or existing) that receives ``<job id>.jsonl``
        (templated; local path or object-storage URI).
    :param x_conn_id: the X API connection.
    """

    template_fields: Sequence[str] = ("job_id", "destination")
    ui_color = UI_COLOR

    def __init__(
        self,
        *,
        job_id: str,
        destination: str,
        x_conn_id: str = XComplianceHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.destination = destination
        self.x_conn_id = x_conn_id

    @cached_property
    def hook(self) -> XComplianceHook:
        return XComplianceHook(self.x_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        job = self.hook.get_job(self.job_id)
        if job.status is not JobStatus.COMPLETE:
            raise lifecycle.job_outcome_error(job.id, job.status, job.error) or XComplianceError(
                f"Job {job.id} is {job.status.value}, not complete: wait for it (XComplianceJobSensor) first"
            )
        report = self.hook.download_results(job, self.destination)
        return {
            "job_id": job.id,
            "results_uri": report.uri,
            "result_lines": report.lines,
            "bytes": report.bytes,
        }


# --- helpers ------------------------------------------------------------------------------------------


def _record(
    index: int, job: Job, name: str, ids: int, uri: str, lines: int, seconds: float | None
) -> ChunkRecord:
    return ChunkRecord(
        index=index,
        job_id=job.id,
        job_name=name,
        uploaded_ids=ids,
        results_uri=uri,
        result_lines=lines,
        processing_seconds=seconds,
    )


def _count_lines(uri: str) -> int:
    """Lines of a results file, streamed (an already-downloaded chunk is counted, never loaded)."""
    counter = LineCounter()
    with storage.open_source(uri) as handle:
        while block := handle.read(storage.COPY_CHUNK):
            counter.add(counter.counted, block)
    return counter.lines


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)

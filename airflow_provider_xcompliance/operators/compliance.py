"""Operators that run X API batch compliance jobs: create and upload, download, or the whole lifecycle.

Every job gets a deterministic name (:func:`~airflow_provider_xcompliance.naming.job_name`), so a retried or
cleared task finds the job it started and carries on from the job's status instead of starting a second one.
The decisions (what to do with a job found by name, deadlines, which file a chunk's results go to, ETAs) are
pure functions in :mod:`airflow_provider_xcompliance.lifecycle`; the operators are thin glue around them
and the hook.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_xcompliance import lifecycle, storage
from airflow_provider_xcompliance.exceptions import (
    InvalidIdsError,
    JobConflictError,
    JobTimeoutError,
    XComplianceError,
)
from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.ids import Fmt, IdChunk, OnInvalid, PreparedIds, prepare_ids
from airflow_provider_xcompliance.lifecycle import ChunkRecord
from airflow_provider_xcompliance.models import Job, JobStatus, JobType
from airflow_provider_xcompliance.naming import job_name
from airflow_provider_xcompliance.plan import StoredPlan
from airflow_provider_xcompliance.runner import MISSED_DEADLINE, JobRunner, Stage, Wait
from airflow_provider_xcompliance.task_state import task_state
from airflow_provider_xcompliance.transfers import LineCounter
from airflow_provider_xcompliance.triggers.compliance import XComplianceJobTrigger
from airflow_provider_xcompliance.version_compat import AirflowTaskTerminated, conf

if TYPE_CHECKING:
    from airflow.sdk import Context

UI_COLOR = "#cfe8fc"


class _XComplianceJobOperator(BaseOperator):
    """What the create and run operators share: their parameters, ID staging, the job runner and kills.

    Each call of a try (execute, or a resume after a deferral) composes a fresh
    :class:`~airflow_provider_xcompliance.runner.JobRunner` and carries on from what the API and the
    destination show; the subclass says what one call does (:meth:`_proceed`).
    """

    template_fields: Sequence[str] = ("ids", "name")
    ui_color = UI_COLOR

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
        self.max_ids_per_job: int | None = None  # one job unless the operator can wait between jobs
        self._runner: JobRunner | None = None  # this call's, for on_kill
        self._running = False  # inside execute: a kill now interrupts the task (on_kill)

    @cached_property
    def hook(self) -> XComplianceHook:
        return XComplianceHook(self.x_conn_id)

    def _proceed(self, context: Context, runner: JobRunner) -> Any:
        """Carry on from wherever this task run stands: a first try, a retry and a resume take one path."""
        raise NotImplementedError

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
        # A new conflict keeps waiting against the same bound.
        return self._carry_on(context, slot_deadline=event.get("deadline"))

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
        runner = self._runner
        if runner and runner.job_id:  # the try has already ended (its execution_timeout): no one reattaches
            runner.cancel_quietly(runner.job_id, "the task was killed")

    def _carry_on(self, context: Context, slot_deadline: float | None = None) -> Any:
        """:meth:`_proceed` with a fresh runner, marked as running so that a kill stops it (see on_kill)."""
        self._runner = runner = self._new_runner(context, slot_deadline)
        self._running = True
        try:
            return self._proceed(context, runner)
        except AirflowTaskTerminated:
            self._after_kill(context, runner)
            raise
        finally:
            self._running = False

    def _after_kill(self, context: Context, runner: JobRunner) -> None:
        """Cancel a killed try's job only if the task is stopped for good; else leave it to the next try."""
        try:
            state = task_state(context["ti"])
        except Exception as error:
            state = None
            self.log.warning("Could not read this task's state after the kill: %s", error)
        if runner.job_id and lifecycle.stopped_for_good(state):
            runner.cancel_quietly(runner.job_id, f"the task was stopped ({state})")
        elif runner.job_id:
            self.log.info("Leaving job %s for the next try: this task is %s", runner.job_id, state)
        if state == "running":  # the server did not stop it: the worker is shutting down, so let it retry
            raise XComplianceError(
                f"The worker stopped task {self.task_id} mid-run; a retry carries on with job {runner.job_id}"
            )

    # --- the job runner and its Airflow callbacks ---

    def _new_runner(self, context: Context, slot_deadline: float | None = None) -> JobRunner:
        start = context["ti"].start_date  # kept across deferrals: the deadline bounds the whole try
        deadline = lifecycle.run_deadline(
            start.timestamp() if start else time.time(), self.timeout, self.execution_timeout
        )
        return JobRunner(
            self.hook,
            self.job_type,
            self.log,
            resumable=self.resumable,
            on_conflict=self.on_conflict,
            slot_wait_timeout=self.slot_wait_timeout,
            poll_interval=self.poll_interval,
            deadline=deadline,
            on_job=lambda job: context["ti"].xcom_push(key="job_id", value=job.id),
            defer=self._defer_wait if self.deferrable else None,
            slot_deadline=slot_deadline,
        )

    def _defer_wait(self, wait: Wait, job_id: str, deadline: float | None) -> NoReturn:
        """Hand a wait to the triggerer; only our own job is cancelled if the task is stopped meanwhile."""
        self.defer(
            trigger=XComplianceJobTrigger(
                job_id=job_id,
                x_conn_id=self.x_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                max_transient_errors=self.max_transient_errors,
                cancel_on_kill=wait is Wait.JOB,
            ),
            method_name="execute_complete" if wait is Wait.JOB else "execute_after_slot_wait",
            timeout=lifecycle.defer_timeout(deadline, time.time()),
        )

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

    # --- IDs ---

    def _staging_dir(self, context: Context) -> Path:
        # Deterministic per task run, so a resume on the same machine reuses the normalised files.
        return Path(tempfile.gettempdir()) / "xcompliance-ids" / self._job_name(context, None)

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
            self.ids,
            staging,
            fmt=self.ids_format,
            id_column=self.id_column,
            on_invalid=self.on_invalid,
            dedupe=self.dedupe,
            max_ids_per_job=self.max_ids_per_job,
        )

    def _staged_ids(self, context: Context) -> PreparedIds:
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
        self._publish_counts(context, prepared)
        if not prepared.chunks:  # no manifest either: a retry reads the source again (it may be fixed)
            counts = prepared.counts.as_dict()
            raise InvalidIdsError(
                f"No valid ID in {self.ids!r}: nothing to upload, no job created ({counts})"
            )
        prepared.save(manifest)
        return prepared

    def _publish_counts(self, context: Context, prepared: PreparedIds) -> None:
        """The validation counts to XCom, and a warning naming where the skipped IDs are listed."""
        context["ti"].xcom_push(key="ids", value=prepared.counts.as_dict())
        if prepared.rejects_path is not None:
            where = self._keep_rejects(context, prepared.rejects_path)
            self.log.warning("%d invalid IDs skipped, listed in %s", prepared.counts.invalid, where)

    def _keep_rejects(self, context: Context, rejects: Path) -> str:
        """Where the skipped IDs' listing is kept for the user: here, the local staging folder."""
        return str(rejects)


class XComplianceCreateJobOperator(_XComplianceJobOperator):
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

    def _proceed(self, context: Context, runner: JobRunner) -> Any:
        prepared = self._staged_ids(context)
        job = runner.start(prepared.chunks[0], self._job_name(context, None))
        runner.job_id = None  # uploaded: waiting (and cancelling) is someone else's business now
        for chunk in prepared.chunks:  # the rejects file, if any, stays for the user
            chunk.path.unlink(missing_ok=True)
        return job.id


class XComplianceRunJobOperator(_XComplianceJobOperator):
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
        job_id = event["job_id"]
        if event["status"] == "timeout":
            self._runner = runner = self._new_runner(context)
            runner.job_id = job_id  # for a kill during the cancel
            cancelled = runner.cancel_quietly(job_id, MISSED_DEADLINE)
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

    def _proceed(self, context: Context, runner: JobRunner) -> Any:
        """Run the chunks the API and the destination do not show as finished, one job at a time."""
        plan = self._plan(context)
        prepared = self._planned_ids(context, plan)
        done = self._finished_chunks(context, prepared)
        stage = self._stager(plan)
        for chunk in prepared.chunks[len(done) :]:
            remaining = sum(c.ids for c in prepared.chunks[chunk.index :])
            rate = lifecycle.processing_rate(done)
            self.log.info(
                lifecycle.eta_message(chunk.index, len(prepared.chunks), chunk.ids, remaining, rate)
            )
            name = self._chunk_name(context, prepared, chunk.index)
            job = runner.wait(runner.start(chunk, name, stage=stage), chunk.ids)
            done.append(self._download(prepared, chunk, name, job))
            runner.job_id = None  # complete and downloaded: nothing left for a kill to cancel
            context["ti"].xcom_push(key="chunks", value=done)
        shutil.rmtree(self._staging_dir(context), ignore_errors=True)
        plan.finish(prepared)
        return self._summary(context, prepared, done)

    # --- the chunk plan, stored at the destination so a try on any worker can resume ---

    def _planned_ids(self, context: Context, plan: StoredPlan) -> PreparedIds:
        """The chunks of this task run: from the plan at the destination (checked against the source, which
        is not read again), or read from the source once, staged at the destination and planned."""
        prepared = plan.load(self._read_ids)
        if prepared is not None:
            self._publish_counts(context, prepared)  # a new try starts without its predecessors' XCom
            return prepared
        fingerprint = plan.fingerprint()  # before the read: a change during it shows at a retry
        return plan.save(self._staged_ids(context), fingerprint)

    def _stager(self, plan: StoredPlan) -> Stage:
        """Fetches a chunk's IDs from the plan when this worker's disk does not hold them."""

        def stage(chunk: IdChunk) -> None:
            if not chunk.path.exists():
                plan.restage(chunk, self._read_ids)

        return stage

    def _plan(self, context: Context) -> StoredPlan:
        name = f"_{self._job_name(context, None)}"  # ``_``-prefixed, so readers of the results skip them
        return StoredPlan(
            lifecycle.run_stem(storage.resolve_destination(self.destination, f"{name}.jsonl"), name),
            self.ids,
            self._id_options(),
            self._staging_dir(context),
            self.log,
        )

    def _keep_rejects(self, context: Context, rejects: Path) -> str:
        """Beside the results, since the local staging folder is temporary."""
        target = self._rejects_file(context)
        storage.copy(rejects, target)
        return target

    def _rejects_file(self, context: Context) -> str:
        name = self._job_name(context, None)
        return (
            lifecycle.run_stem(storage.resolve_destination(self.destination, f"{name}.jsonl"), name)
            + ".rejects.csv"
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
            if job is None or job.status is not JobStatus.COMPLETE or not storage.exists(target):
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

    def _ids_of(self, context: Context, job_id: str) -> int | None:
        """How many IDs the chunk of this job held (for the size hint of a failed job)."""
        prepared = self._planned_ids(context, self._plan(context))
        name = self.hook.get_job(job_id).name
        sizes = {self._chunk_name(context, prepared, c.index): c.ids for c in prepared.chunks}
        return sizes.get(name or "")

    def _download(self, prepared: PreparedIds, chunk: IdChunk, name: str, job: Job) -> ChunkRecord:
        report = self.hook.download_results(job, self._results_file(name, chunk.index, len(prepared.chunks)))
        # From creation to results: the chunk's whole duration, which is what an ETA needs.
        seconds = time.time() - job.created_at.timestamp() if job.created_at else None
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

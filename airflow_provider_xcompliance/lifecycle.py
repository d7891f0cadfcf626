"""The decisions a retried or resumed compliance task makes, as pure functions.

A task that dies, retries, is cleared or resumes from a deferral rebuilds its position from what the API
and the destination show: which step to take with the job found under its deterministic name, when its
wall-clock deadline falls, which job holds its type's single slot, where each chunk's results go, what a
trigger event means, how long the rest will take. Kept here, free of Airflow imports, so every such decision
is testable (and reusable) without a scheduler, a task instance or an HTTP call; the operators and the
sensor are the glue that feeds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypedDict

from airflow_provider_xcompliance.exceptions import JobExpiredError, JobFailedError, XComplianceError
from airflow_provider_xcompliance.models import Job, JobStatus, JobType

# An upload must start this long before the URL expires: a PUT that starts at the last second may be refused.
UPLOAD_MARGIN_SECONDS = 60.0
# The defer timeout sits this long after the trigger's own deadline, so the trigger's clean timeout event
# (which cancels the job) wins over Airflow's generic deferral timeout.
DEFER_BACKSTOP_SECONDS = 120.0
# The API documents no size limit or its error text: these words are a heuristic, kept deliberately broad.
_SIZE_ERROR_WORDS = ("too large", "too big", "too many", "more than", "size", "exceed", "limit", "split")


class Step(str, Enum):
    """What to do with the job a task finds under its deterministic name."""

    CREATE = "create"
    UPLOAD = "upload"
    WAIT = "wait"
    DOWNLOAD = "download"


def reattach_step(job: Job | None, now: datetime, upload_margin: float = UPLOAD_MARGIN_SECONDS) -> Step:
    """Decide how to carry on from the job an earlier try left behind (None: there is none)."""
    if job is None:
        return Step.CREATE
    if job.status is JobStatus.COMPLETE:
        return Step.CREATE if job.download_expired(now) else Step.DOWNLOAD
    if job.status is JobStatus.IN_PROGRESS or not job.status.is_known:
        return Step.WAIT  # a status X names but we do not know is unfinished: wait, bounded by the deadline
    if job.status is JobStatus.CREATED and not job.upload_expired(now, upload_margin):
        return Step.UPLOAD
    return Step.CREATE  # failed, expired, or created with an upload window about to close


def run_deadline(now: float, timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """Epoch seconds by which the task must be done: the tighter of ``timeout`` and ``execution_timeout``.

    Airflow applies ``execution_timeout`` to each execute/resume call separately, not to time spent deferred,
    so the operator turns it into a wall-clock deadline the trigger enforces.
    """
    limits = [] if timeout is None else [timeout]
    if execution_timeout is not None:
        limits.append(execution_timeout.total_seconds())
    return now + min(limits) if limits else None


def defer_timeout(deadline: float | None, now: float) -> timedelta | None:
    """Airflow's backstop for a deferral: a little after the trigger's own deadline."""
    if deadline is None:
        return None
    return timedelta(seconds=max(deadline - now, 0.0) + DEFER_BACKSTOP_SECONDS)


def slot_holder(jobs: Iterable[Job], job_type: JobType) -> Job | None:
    """The job most likely to occupy the type's single slot: in progress first, then one in a status we do
    not know, then a created one (it holds the slot until X expires it, upload window closed or not:
    without a cancel it is what a replacement must wait for); the newest of each."""
    rank = {JobStatus.IN_PROGRESS: 0, JobStatus.CREATED: 2}
    holding = [job for job in jobs if job.type is job_type and job.status.holds_slot]
    return min(holding, key=lambda job: (rank.get(job.status, 1), -int(job.id)), default=None)


def newest_by_name(jobs: Iterable[Job]) -> dict[str, Job]:
    """Index jobs by name, keeping the newest of each (names need not be unique)."""
    index: dict[str, Job] = {}
    for job in sorted(jobs, key=lambda job: int(job.id)):  # snowflake ids grow with time
        if job.name:
            index[job.name] = job
    return index


def job_outcome_error(
    job_id: str, job_status: str | None, error: str | None = None
) -> XComplianceError | None:
    """The error a job's final status stands for, or None while it may still complete."""
    if job_status == JobStatus.FAILED:
        return JobFailedError(job_id, error)
    if job_status == JobStatus.EXPIRED:
        return JobExpiredError(job_id)
    return None


# Task instance states after which no try of the task runs again unless a person clears it: only then is a
# job worth cancelling. A cleared task is ``None``/``restarting``, a retried one ``up_for_retry``, one whose
# trigger moved to another triggerer still ``deferred``: their next try reattaches to the same job.
STOPPED_FOR_GOOD = frozenset({"failed", "success", "skipped", "upstream_failed", "removed"})


def stopped_for_good(task_state: str | None) -> bool:
    """Whether a killed task's job may be cancelled: no try of it will run again (``STOPPED_FOR_GOOD``)."""
    return task_state in STOPPED_FOR_GOOD


def looks_like_size_error(text: str | None) -> bool:
    """Whether an API error text hints that the upload was too big (the API documents no size limit)."""
    lowered = (text or "").lower()
    return any(word in lowered for word in _SIZE_ERROR_WORDS)


def size_hint(ids: int | None) -> str:
    """Advice appended to an error that may come from a size cap: the user's fix is to split the IDs."""
    return (
        f" The API may cap the size of one job ({ids if ids is not None else 'this many'} IDs were sent): "
        "set max_ids_per_job lower to split the IDs over several jobs."
    )


def with_size_hint(error: str | None, ids: int | None) -> str | None:
    """A failed job's error text, with the size hint when the text reads like a size limit."""
    return f"{error}.{size_hint(ids)}" if looks_like_size_error(error) else error


def sibling_file(results_file: str, tag: str) -> str:
    """A file beside ``results_file`` named after it: ``results.<tag>.jsonl``."""
    folder, slash, filename = results_file.rpartition("/")
    stem, dot, suffix = filename.partition(".")
    return f"{folder}{slash}{stem}.{tag}{dot}{suffix}"


def run_stem(results_file: str, run_name: str) -> str:
    """Where a task run keeps its own files beside ``results_file`` (a suffix to add), named after the run.

    ``run_name`` (from the job name of the whole task run, which hashes DAG, task, run id and map index)
    keeps the files of runs and map indexes apart even where they share a file destination, and a retry of
    the run finds the same name: ``<run_name>`` in a folder destination (whose results file is named after
    the run already), ``<results stem>.<run_name>`` beside a file destination.
    """
    folder, slash, filename = results_file.rpartition("/")
    named = run_name if filename == f"{run_name}.jsonl" else f"{filename.partition('.')[0]}.{run_name}"
    return f"{folder}{slash}{named}"


def chunk_file(results_file: str, index: int) -> str:
    """The results file of chunk ``index`` when a run writes several: ``results.part-00003.jsonl``."""
    return sibling_file(results_file, f"part-{index:05d}")


def checked_event(event: Any, statuses: Sequence[str] = ("success", "error", "timeout")) -> dict[str, Any]:
    """Accept only a well-formed trigger event: a missing or unknown one fails the task (fail closed)."""
    if not isinstance(event, dict) or event.get("status") not in statuses or not event.get("job_id"):
        raise XComplianceError(f"Unexpected trigger event {event!r}: the job's outcome is unknown")
    return event


class ChunkRecord(TypedDict):
    """One finished chunk of a run (XCom-safe: ids, a URI and counts, never data)."""

    index: int
    job_id: str
    job_name: str
    uploaded_ids: int
    results_uri: str
    result_lines: int
    processing_seconds: float | None


def processing_rate(done: Iterable[ChunkRecord]) -> float | None:
    """IDs per second a chunk takes end to end, over the chunks whose duration this try observed."""
    timed = [(c["uploaded_ids"], c["processing_seconds"]) for c in done if c["processing_seconds"]]
    seconds = sum(s for _, s in timed if s)
    return sum(n for n, _ in timed) / seconds if seconds > 0 else None


def eta_message(position: int, total: int, ids: int, remaining_ids: int, rate: float | None) -> str:
    """The per-chunk progress line: this chunk's size and, once a rate is known, the expected durations."""
    head = f"Chunk {position + 1}/{total} ({ids} IDs)"
    if rate is None:
        return f"{head}: no processing rate observed yet, so no ETA"
    return (
        f"{head}: expected to take ~{_duration(ids / rate)} at the observed {rate:.0f} IDs/s; "
        f"~{_duration(remaining_ids / rate)} for all {total - position} remaining chunk(s)"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

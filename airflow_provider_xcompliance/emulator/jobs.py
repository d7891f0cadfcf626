"""The emulator's own model of a job: its statuses, the slot rule, and how a job looks on the wire.

Independent of the client's models on purpose: the emulator is the oracle the client is tested against,
so a client bug in reading statuses or in the slot rule must not be mirrored here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from airflow_provider_xcompliance.emulator import results

_TWITTER_EPOCH_MS = 1288834974657


class Status(str, Enum):
    """The statuses X documents for a job (spec 2.159's enum)."""

    CREATED = "created"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def holds_slot(self) -> bool:
        """One unfinished job per type and app (X docs); a ``created`` job counts until it expires."""
        return self in (Status.CREATED, Status.IN_PROGRESS)


@dataclasses.dataclass(frozen=True)
class WireView:
    """Which optional parts of a job object the API shows, and the name it gives ``in_progress``."""

    resumable: bool = True
    expires_at: bool = True
    in_progress_as: str = Status.IN_PROGRESS.value

    def status(self, status: Status) -> str:
        return self.in_progress_as if status is Status.IN_PROGRESS else status.value


@dataclasses.dataclass
class UploadSession:
    """A resumable upload in progress (the GCS ``upload_id``)."""

    upload_id: str
    path: Path
    size: int = 0
    complete: bool = False


@dataclasses.dataclass
class JobRecord:
    id: str
    type: str
    name: str | None
    resumable: bool
    created_at: float  # whole epoch seconds, like the API's ``.000Z`` times
    upload_expires_at: float
    download_expires_at: float
    upload_url: str = ""
    download_url: str = ""
    status: Status = Status.CREATED
    error: str | None = None
    processing_due: float | None = None
    outcome: results.ProcessingOutcome | None = None
    outcome_error: str | None = None  # decided by processing, applied when the job finishes
    upload_started: bool = False
    upload_attempts: int = 0
    uploads_completed: int = 0
    upload_bytes: int = 0
    upload_dropped: bool = False
    download_attempts: int = 0
    download_dropped: bool = False
    sessions: dict[str, UploadSession] = dataclasses.field(default_factory=dict)
    files_removed: bool = False

    def to_api(self, view: WireView = WireView()) -> dict[str, Any]:
        """The job as the API returns it: ``name`` only when given, ``error`` only when failed with one."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.name is not None:
            data["name"] = self.name
        if view.resumable:
            data["resumable"] = self.resumable
        data |= {
            "status": view.status(self.status),
            "created_at": api_time(self.created_at),
            "upload_url": self.upload_url,
            "download_url": self.download_url,
        }
        if view.expires_at:
            data["upload_expires_at"] = api_time(self.upload_expires_at)
            data["download_expires_at"] = api_time(self.download_expires_at)
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_state(self) -> dict[str, Any]:
        """The job for ``/_emulator/state``: counters for tests, no signed URLs."""
        outcome = dataclasses.asdict(self.outcome) if self.outcome else {}
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "resumable": self.resumable,
            "status": self.status.value,
            "error": self.error,
            "created_at": api_time(self.created_at),
            "upload_attempts": self.upload_attempts,
            "uploads_completed": self.uploads_completed,
            "upload_bytes": self.upload_bytes,
            "uploaded_ids": outcome.get("ids"),
            "invalid_lines": outcome.get("invalid_lines"),
            "blank_lines": outcome.get("blank_lines"),
            "result_count": outcome.get("results"),
            "download_attempts": self.download_attempts,
        }


def api_time(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``, the API's timestamp format."""
    utc = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def snowflake(epoch: float) -> int:
    """A snowflake id of that instant: milliseconds since the Twitter epoch << 22 (19 digits, growing)."""
    return (int(epoch * 1000) - _TWITTER_EPOCH_MS) << 22


def foreign_jobs(job_type: str, now: float) -> list[dict[str, Any]]:
    """Listing entries no client of this app created: a status and a type no client knows, and a
    nameless job with only the fields spec 2.167 requires (none): what a tolerant client must skip."""
    day = 86400.0
    return [
        {
            "id": str(snowflake(now - 3 * day)),
            "type": job_type,
            "name": "another-app-nightly",
            "status": "archived",
            "created_at": api_time(float(int(now - 3 * day))),
        },
        {"id": str(snowflake(now - 2 * day)), "type": "spaces", "status": "complete"},
        {"id": str(snowflake(now - day)), "type": job_type, "status": "complete"},
    ]

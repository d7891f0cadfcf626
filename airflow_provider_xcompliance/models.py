"""Typed values of the batch compliance API: job types, statuses, jobs and transfer reports.

Pure Python (no Airflow import) so the hook, the trigger, the operators and users' own code share one
definition. Signed URLs are kept out of ``repr`` and of :meth:`Job.to_xcom` because they are credentials.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class JobType(str, Enum):
    """What a job checks: post ("Tweet") IDs or user IDs. One file never mixes the two."""

    TWEETS = "tweets"
    USERS = "users"


class JobStatus(str, Enum):
    """A job's lifecycle state as the API reports it."""

    CREATED = "created"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change (results ready, or never will be)."""
        return self in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.EXPIRED)

    @property
    def holds_slot(self) -> bool:
        """True while the job occupies its type's single "unfinished job" slot."""
        return not self.is_terminal


def parse_api_time(value: str | None) -> datetime | None:
    """Parse the API's timestamps (``...000Z``, ``...421Z``, ``+00:00``) into aware UTC datetimes."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_api_time(value: datetime) -> str:
    """Format a datetime the way the API writes job timestamps: ``YYYY-MM-DDTHH:MM:SS.000Z``."""
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclasses.dataclass(frozen=True)
class Job:
    """One compliance job. ``upload_url`` and ``download_url`` are secrets: never log or return them."""

    id: str
    type: JobType
    status: JobStatus
    created_at: datetime | None = None
    name: str | None = None
    resumable: bool = False
    upload_url: str | None = dataclasses.field(default=None, repr=False)
    upload_expires_at: datetime | None = None
    download_url: str | None = dataclasses.field(default=None, repr=False)
    download_expires_at: datetime | None = None
    error: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        """Build a job from the ``data`` object of an API response; unknown fields are ignored."""
        return cls(
            id=str(data["id"]),
            type=JobType(data["type"]),
            status=JobStatus(data["status"]),
            created_at=parse_api_time(data.get("created_at")),
            name=data.get("name"),
            resumable=bool(data.get("resumable", False)),
            upload_url=data.get("upload_url"),
            upload_expires_at=parse_api_time(data.get("upload_expires_at")),
            download_url=data.get("download_url"),
            download_expires_at=parse_api_time(data.get("download_expires_at")),
            error=data.get("error"),
        )

    def upload_expired(self, now: datetime | None = None, margin_seconds: float = 0.0) -> bool:
        """True when the upload URL is past (or within ``margin_seconds`` of) its expiry."""
        return _expired(self.upload_expires_at, now, margin_seconds)

    def download_expired(self, now: datetime | None = None, margin_seconds: float = 0.0) -> bool:
        """True when the download URL is past (or within ``margin_seconds`` of) its expiry."""
        return _expired(self.download_expires_at, now, margin_seconds)

    def to_xcom(self) -> dict[str, Any]:
        """A JSON-safe summary without the signed URLs, fit for XCom and logs."""
        return {
            "id": self.id,
            "type": self.type.value,
            "status": self.status.value,
            "name": self.name,
            "resumable": self.resumable,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "upload_expires_at": self.upload_expires_at.isoformat() if self.upload_expires_at else None,
            "download_expires_at": self.download_expires_at.isoformat() if self.download_expires_at else None,
            "error": self.error,
        }


def _expired(expires_at: datetime | None, now: datetime | None, margin_seconds: float) -> bool:
    if expires_at is None:
        return False
    current = now or datetime.now(timezone.utc)
    return (expires_at - current).total_seconds() <= margin_seconds


@dataclasses.dataclass(frozen=True)
class TransferReport:
    """What an upload or a download moved: bytes, ID/result lines, and how long it took."""

    bytes: int
    lines: int
    seconds: float
    uri: str | None = None  # destination of a download; None for uploads

    def to_xcom(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

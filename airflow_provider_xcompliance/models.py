"""Typed values of the batch compliance API: job types, statuses, jobs and transfer reports.

Pure Python (no Airflow import) so the hook, the trigger, the operators and users' own code share one
definition. Signed URLs are kept out of ``repr`` and of :meth:`Job.to_xcom` because they are credentials.

This is the one place that reads a job object, and it reads it tolerantly: spec 2.167 makes every job field
optional and types ``status`` as a plain string, so an unknown status is kept (as unfinished), and missing
fields are derived from what is known (the protocol the upload URL is signed for, documented lifetimes).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Documented lifetimes, counted from creation: the upload URL 15 minutes, the results 7 days.
UPLOAD_LIFETIME = timedelta(minutes=15)
DOWNLOAD_LIFETIME = timedelta(days=7)
_TWITTER_EPOCH_MS = 1288834974657
_RESUMABLE_HEADER = "x-goog-resumable"


class JobType(str, Enum):
    """What a job checks: post ("Tweet") IDs or user IDs. One file never mixes the two."""

    TWEETS = "tweets"
    USERS = "users"


class JobStatus(str, Enum):
    """A job's lifecycle state as the API reports it.

    Any other non-empty string is a status too (spec 2.167 types it as a plain string; one public client
    shows ``processing``): ``JobStatus("processing")`` is an ``UNKNOWN`` pseudo-member whose ``value`` is
    the name X sent. It is never terminal, so a wait goes on (bounded by its deadline), and it holds its
    type's slot, because a job X still reports on may well be running.
    """

    CREATED = "created"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    EXPIRED = "expired"

    @classmethod
    def _missing_(cls, value: object) -> JobStatus | None:
        if not isinstance(value, str) or not value:
            return None
        unknown = str.__new__(cls, value)
        unknown._name_, unknown._value_ = "UNKNOWN", value
        return unknown

    @property
    def is_known(self) -> bool:
        """False for a status name this provider does not know."""
        return self._name_ != "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change (results ready, or never will be)."""
        return self in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.EXPIRED)

    @property
    def holds_slot(self) -> bool:
        """True while the job may occupy its type's single "unfinished job" slot."""
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
    def from_api(cls, data: dict[str, Any], *, resumable: bool | None = None) -> Job:
        """Build a job from the ``data`` object of an API response; unknown fields are ignored.

        ``resumable`` is what the creator asked for, when known. Raises ``ValueError`` for an object that
        is no job of a known type (no id, no status, a type other than tweets or users).
        """
        job_id, kind, status = data.get("id"), data.get("type"), data.get("status")
        if not isinstance(job_id, str | int) or not str(job_id).isdigit():
            raise ValueError(f"a job object needs a numeric id, not {job_id!r}")
        if kind not in (JobType.TWEETS.value, JobType.USERS.value):
            raise ValueError(f"job {job_id} has type {kind!r}, not tweets or users")
        if not isinstance(status, str) or not status:
            raise ValueError(f"job {job_id} has no status")
        created_at = _time(data.get("created_at")) or snowflake_time(str(job_id))
        upload_url = _text(data.get("upload_url"))
        return cls(
            id=str(job_id),
            type=JobType(kind),
            status=JobStatus(status),
            created_at=created_at,
            name=_text(data.get("name")),
            resumable=upload_is_resumable(upload_url, resumable, data.get("resumable")),
            upload_url=upload_url,
            upload_expires_at=_expiry(data.get("upload_expires_at"), created_at, UPLOAD_LIFETIME),
            download_url=_text(data.get("download_url")),
            download_expires_at=_expiry(data.get("download_expires_at"), created_at, DOWNLOAD_LIFETIME),
            error=_text(data.get("error")),
        )

    def as_requested(self, resumable: bool) -> Job:
        """This job with the upload protocol its creator asked for, unless its upload URL shows one."""
        if signed_headers(self.upload_url) is not None or self.resumable == resumable:
            return self
        return dataclasses.replace(self, resumable=resumable)

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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    """A job timestamp, or None when absent or unreadable (then it is derived, never trusted)."""
    try:
        return parse_api_time(_text(value))
    except ValueError:
        return None


def _expiry(value: Any, created_at: datetime | None, lifetime: timedelta) -> datetime | None:
    """The given expiry time, or the documented lifetime from creation (never "forever" when known)."""
    given = _time(value)
    return given or (created_at + lifetime if created_at is not None else None)


def snowflake_time(job_id: str) -> datetime | None:
    """When a snowflake id was minted (milliseconds since the Twitter epoch in its top bits), or None."""
    if not job_id.isdigit() or int(job_id) >> 22 == 0:
        return None
    return datetime.fromtimestamp(((int(job_id) >> 22) + _TWITTER_EPOCH_MS) / 1000, tz=timezone.utc)


def signed_headers(url: str | None) -> list[str] | None:
    """The headers a V4-signed storage URL is signed for (``X-Goog-SignedHeaders``), or None."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("X-Goog-SignedHeaders")
    return values[0].lower().split(";") if values else None


def upload_is_resumable(upload_url: str | None, asked: bool | None, flag: Any) -> bool:
    """Which upload protocol a job takes, from the strongest evidence there is.

    The URL's signature decides when it shows one (a simple PUT to a URL signed for the resumable start
    fails with 403); else what the creator asked for (X's own example answers a resumable create with
    ``"resumable": false``, and spec 2.159 has no such field); else the answer's flag.
    """
    signed = signed_headers(upload_url)
    if signed is not None:
        return _RESUMABLE_HEADER in signed
    if asked is not None:
        return asked
    return flag is True


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

"""Settings of the emulator: behaviour where the real API's is unknown, limits, and fault injection."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROBLEM_HOSTS = ("https://api.twitter.com", "https://api.x.com")
EMPTY_LIST_STYLES = ("empty", "data")
GEO_SCRUB_ACTIONS = ("delete", "scrub_geo")
RESULT_TIMESTAMPS = ("api", "missing", "odd")
_OTHER_STATUSES = ("created", "complete", "failed", "expired")


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def _meta(help: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Field metadata the command line is built from: the config is the one list of options."""
    return {"help": help, "choices": choices}


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return dataclasses.field(default=default, metadata=_meta(help, choices))


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes one emulator run; every fault is off by default.

    The defaults follow the real API where it is documented (15-minute upload window, 7-day download
    window, 150 requests per endpoint per 15 minutes). ``clock`` exists so tests can move time instead of
    sleeping; the command line always uses wall time.
    """

    host: str = _opt("127.0.0.1", "interface to bind (a warning is printed unless it is loopback)")
    port: int = _opt(0, "port to listen on; 0 picks a free one (printed at startup)")
    token: str = dataclasses.field(
        default_factory=_new_token,
        repr=False,
        metadata=_meta("bearer token clients must send (default: random)"),
    )
    processing_seconds: float = _opt(5.0, "how long a job stays in_progress after its upload")
    data_dir: Path | None = dataclasses.field(
        default=None, metadata=_meta("where uploads and results live (default: a temp dir removed on exit)")
    )

    # Behaviour the facts leave open.
    upload_window_seconds: float = _opt(
        900.0, "lifetime of upload URLs; a job with no upload by then expires"
    )
    download_window_seconds: float = _opt(604800.0, "lifetime of download URLs")
    conflict_status: int = _opt(409, "HTTP status of the one-unfinished-job-per-type conflict problem")
    unfinished_jobs_per_type: int = _opt(
        1, "unfinished jobs a type may have at once (the real API allows 1; more for load tests)"
    )
    problem_host: str = _opt(PROBLEM_HOSTS[0], "host prefix of problem type URIs", PROBLEM_HOSTS)
    empty_list_style: str = _opt(
        "empty", "a list with no jobs answers {} (as X does) or {data: [], meta: ...}", EMPTY_LIST_STYLES
    )
    # Alternatives X's specs and docs show: one flag each, all off by default.
    no_cancel_route: bool = _opt(
        False, "DELETE /2/compliance/jobs/{id} answers 404 as an absent route (specs 2.159 and 2.167)"
    )
    omit_resumable: bool = _opt(False, "job objects have no resumable field (spec 2.159's job schema)")
    omit_expires_at: bool = _opt(
        False, "job objects have no upload_expires_at/download_expires_at (the docs' quickstart answer)"
    )
    in_progress_status: str = _opt(
        "in_progress", "status name an in-progress job reports (e.g. processing, which clients do not know)"
    )
    foreign_jobs: bool = _opt(
        False, "listings also show jobs of other apps, with a status or a type clients do not know"
    )
    crlf: bool = _opt(False, "write result lines with \\r\\n endings")
    geo_scrub_action: str = _opt(
        "delete",
        "action of geo-scrub results (reason scrub_geo): delete as X's docs show, or scrub_geo",
        GEO_SCRUB_ACTIONS,
    )
    result_timestamps: str = _opt(
        "api",
        "one result line in four gets no created_at (missing) or an odd one (odd: null, a number, junk, "
        "an impossible date, nanoseconds); api: as X's docs show",
        RESULT_TIMESTAMPS,
    )
    ground_truth: Path | None = dataclasses.field(
        default=None,
        metadata=_meta("JSONL of result records to return (default: a deterministic rule of the ID)"),
    )

    # Rate limits: one fixed window per endpoint, like the real API's per-app limits.
    rate_limit_count: int = _opt(150, "requests per endpoint per window")
    rate_limit_window_seconds: float = _opt(900.0, "length of the rate-limit window")
    usage_capped: bool = _opt(False, "answer every API call with the usage-capped problem")

    # Safety caps.
    max_upload_bytes: int | None = _opt(None, "uploads larger than this get 413")
    max_upload_ids: int | None = _opt(None, "a job whose upload has more valid IDs fails with a size error")
    max_json_body_bytes: int = _opt(64 * 1024, "create-job bodies larger than this get 413")
    body_timeout_seconds: float = _opt(
        30.0, "a request body that stalls this long is answered 408 and its connection closed"
    )

    # Fault injection.
    fail_every_nth_request: int = _opt(0, "every Nth API request answers 503 (0: never)")
    drop_upload_after_bytes: int | None = _opt(None, "cut each job's first upload request after N bytes")
    drop_download_after_bytes: int | None = _opt(None, "cut each job's first download after N bytes")
    slow_response_seconds: float = _opt(0.0, "delay added to every API response")
    fail_jobs: int = _opt(0, "the first N jobs to finish processing fail instead")
    fail_jobs_error: str = _opt("Job failed due to an internal processing error.", "error text of those jobs")
    truncate_results: bool = _opt(False, "results files are cut in the middle of a line")

    clock: Callable[[], float] = dataclasses.field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.problem_host not in PROBLEM_HOSTS:
            raise ValueError(f"problem_host must be one of {PROBLEM_HOSTS}, not {self.problem_host!r}")
        if self.geo_scrub_action not in GEO_SCRUB_ACTIONS:
            raise ValueError(
                f"geo_scrub_action must be one of {GEO_SCRUB_ACTIONS}, not {self.geo_scrub_action!r}"
            )
        if self.result_timestamps not in RESULT_TIMESTAMPS:
            raise ValueError(
                f"result_timestamps must be one of {RESULT_TIMESTAMPS}, not {self.result_timestamps!r}"
            )
        if self.empty_list_style not in EMPTY_LIST_STYLES:
            raise ValueError(f"empty_list_style must be 'data' or 'empty', not {self.empty_list_style!r}")
        if not self.token:
            raise ValueError("token must not be empty")
        if self.rate_limit_count < 1 or self.rate_limit_window_seconds <= 0:
            raise ValueError("rate limits need a positive count and window")
        if not self.in_progress_status or self.in_progress_status in _OTHER_STATUSES:
            raise ValueError(f"in_progress_status must name no other status, not {self.in_progress_status!r}")
        if self.body_timeout_seconds <= 0:
            raise ValueError("body_timeout_seconds must be positive")
        if self.unfinished_jobs_per_type < 1:
            raise ValueError("unfinished_jobs_per_type must be at least 1")

"""What a conversion read, wrote and rejected: the counts kept while it runs, and the summary it returns."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.results.general import as_array
from airflow_provider_xcompliance.results.read import Source
from airflow_provider_xcompliance.results.schema import RANGE_FIELDS, TableSpec
from airflow_provider_xcompliance.results.write import REJECTS_FILE, SUMMARY_FILE

__all__ = ["PARSE_PATHS", "ConversionSummary", "RunCounts", "TableCounts", "format_summary", "summarise"]

PARSE_PATHS = ("fast", "general", "python")
"""Where a non-blank line was read: typed from its bytes in the API's exact shape, by pyarrow's JSON reader,
or through Python one line at a time (the odd lines, rejected ones included)."""

Ranges = dict[str, tuple[Any, Any]]


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
    """What one conversion read, wrote and rejected. ``lines_read`` counts non-blank lines.

    ``rows_missing_created_at`` (no or a null ``created_at``) and ``rows_unreadable_timestamps`` (a
    ``created_at`` or ``redacted_at`` that is no timestamp, written as null) count rows read, before
    duplicates collapse. ``rejected_with_id``: rejected lines that name an ID (in ``_rejects.jsonl``, in no
    table). ``geo_scrub``: the geo-scrub policy the tables were written under. ``lines_by_parse_path``: the
    non-blank lines per :data:`PARSE_PATHS` entry (they add up to ``lines_read``).

    IDs are strings (as the API writes them) so the summary survives JSON consumers that round big integers.
    """

    destination: str
    job_type: str
    id_type: str
    sources: tuple[str, ...]
    job_ids: tuple[str, ...]
    lines_read: int
    blank_lines: int
    rows_valid: int
    rows_written: int
    duplicates: int
    rejected: int
    rejected_with_id: int
    rows_missing_created_at: int
    rows_unreadable_timestamps: int
    rows_by_action: dict[str, int]
    rows_by_reason: dict[str, int]
    rows_by_action_reason: dict[str, dict[str, int]]
    rejects_by_reason: dict[str, int]
    id_min: str | None
    id_max: str | None
    created_at_min: datetime | None
    created_at_max: datetime | None
    redacted_at_min: datetime | None
    redacted_at_max: datetime | None
    tables: dict[str, str]
    geo_scrub: str
    rejects_path: str
    summary_path: str
    seconds: float
    lines_by_parse_path: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        """True when every non-blank line is a written row, a collapsed duplicate or a reject."""
        return (
            self.lines_read
            == self.rows_valid + self.rejected
            == (self.rows_written + self.duplicates + self.rejected)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: datetimes as ISO 8601 UTC strings, tuples as lists."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                value = _iso_ms(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = json.loads(json.dumps(value))
            out[field.name] = value
        out["reconciled"] = self.reconciled
        return out


def format_summary(summary: ConversionSummary) -> str:
    """Render a summary as a fixed-width text table for task logs."""
    jobs = ", ".join(summary.job_ids) or "unknown"
    paths = ", ".join(f"{path} {count:,}" for path, count in summary.lines_by_parse_path.items())
    lines = [
        f"Compliance results -> Parquet ({summary.job_type}; jobs: {jobs})",
        f"  {'lines read':<22}{summary.lines_read:>14,}   (+{summary.blank_lines:,} blank)",
        f"  {'rows written':<22}{summary.rows_written:>14,}",
        f"  {'duplicates collapsed':<22}{summary.duplicates:>14,}",
        f"  {'rejected':<22}{summary.rejected:>14,}   ({summary.rejected_with_id:,} naming an ID)",
        f"  {'no created_at':<22}{summary.rows_missing_created_at:>14,}",
        f"  {'odd timestamps (null)':<22}{summary.rows_unreadable_timestamps:>14,}",
        f"  {'reconciled':<22}{'yes' if summary.reconciled else 'NO':>14}",
        f"  {'parse paths':<22}{paths}",
        "",
        f"  {'action':<16}{'reason':<16}{'rows':>14}",
    ]
    for action, reasons in sorted(summary.rows_by_action_reason.items()):
        for reason, count in sorted(reasons.items()):
            lines.append(f"  {action:<16}{reason:<16}{count:>14,}")
        lines.append(f"  {action:<16}{'(total)':<16}{summary.rows_by_action.get(action, 0):>14,}")
    if summary.rejects_by_reason:
        lines += ["", f"  {'reject reason':<32}{'lines':>14}"]
        lines += [f"  {r:<32}{n:>14,}" for r, n in sorted(summary.rejects_by_reason.items())]
    lines += [
        "",
        f"  id range      {summary.id_min} .. {summary.id_max}",
        f"  created_at    {_iso_or_dash(summary.created_at_min)} .. {_iso_or_dash(summary.created_at_max)}",
        f"  redacted_at   {_iso_or_dash(summary.redacted_at_min)} .. {_iso_or_dash(summary.redacted_at_max)}",
        "",
    ]
    lines += [f"  table {action:<12} {path}" for action, path in sorted(summary.tables.items())]
    lines.append(f"  rejects            {summary.rejects_path}")
    return "\n".join(lines)


def _iso_ms(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_or_dash(value: datetime | None) -> str:
    return _iso_ms(value) if value else "-"


def _widen(ranges: Ranges, name: str, low: Any, high: Any) -> None:
    old = ranges.get(name)
    ranges[name] = (min(old[0], low), max(old[1], high)) if old else (low, high)


@dataclasses.dataclass
class TableCounts:
    """Rows, reasons and value ranges written to one action's table."""

    rows: int = 0
    reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    ranges: Ranges = dataclasses.field(default_factory=dict)

    def merge(self, other: TableCounts) -> None:
        self.rows += other.rows
        self.reasons.update(other.reasons)
        for name, (low, high) in other.ranges.items():
            _widen(self.ranges, name, low, high)

    def add(self, part: pa.Table) -> None:
        self.rows += part.num_rows
        reason = as_array(part["reason"])
        counts = np.bincount(
            reason.indices.fill_null(-1).to_numpy() + 1, minlength=len(reason.dictionary) + 1
        )
        for value, count in zip(["(none)", *reason.dictionary.to_pylist()], counts.tolist(), strict=True):
            if count:
                self.reasons[value] += count
        for name in RANGE_FIELDS:
            low, high = (value.as_py() for value in pc.min_max(part[name]).values())
            if low is not None:
                _widen(self.ranges, name, low, high)


@dataclasses.dataclass
class RunCounts:
    """What a conversion has counted so far, over all its blocks."""

    lines: int = 0
    blank: int = 0
    valid: int = 0
    rejects: Counter[str] = dataclasses.field(default_factory=Counter)
    notes: Counter[str] = dataclasses.field(default_factory=Counter)
    parse_paths: Counter[str] = dataclasses.field(default_factory=Counter)
    tables: dict[str, TableCounts] = dataclasses.field(default_factory=dict)


def _as_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value else None


def _rows_summary(counts: RunCounts) -> dict[str, Any]:
    """The summary's fields about the rows written: counts per action and reason, and value ranges."""
    reason_totals: Counter[str] = Counter()
    ranges: Ranges = {}
    for table in counts.tables.values():
        reason_totals.update(table.reasons)
        for name, (low, high) in table.ranges.items():
            _widen(ranges, name, low, high)
    ids = ranges.get("id", (None, None))
    written = sum(table.rows for table in counts.tables.values())
    return {
        "rows_written": written,
        "duplicates": counts.valid - written,
        "rows_by_action": {action: table.rows for action, table in counts.tables.items()},
        "rows_by_reason": dict(sorted(reason_totals.items())),
        "rows_by_action_reason": {
            action: dict(sorted(table.reasons.items())) for action, table in sorted(counts.tables.items())
        },
        "id_min": None if ids[0] is None else str(ids[0]),
        "id_max": None if ids[1] is None else str(ids[1]),
        **{
            f"{name}_{end}": _as_utc(ranges.get(name, (None, None))[index])
            for name in ("created_at", "redacted_at")
            for index, end in enumerate(("min", "max"))
        },
    }


def summarise(
    inputs: list[Source],
    final: Any,
    spec: TableSpec,
    counts: RunCounts,
    tables: dict[str, str],
    started: float,
) -> ConversionSummary:
    return ConversionSummary(
        destination=str(final),
        job_type=spec.job_type,
        id_type=spec.id_type,
        sources=tuple(source.name for source in inputs),
        job_ids=tuple(dict.fromkeys(source.job_id for source in inputs if source.job_id)),
        lines_read=counts.lines,
        blank_lines=counts.blank,
        rows_valid=counts.valid,
        rejected=sum(counts.rejects.values()),
        rejected_with_id=counts.notes["rejected_with_id"],
        rows_missing_created_at=counts.notes["rows_missing_created_at"],
        rows_unreadable_timestamps=counts.notes["rows_unreadable_timestamps"],
        rejects_by_reason=dict(sorted(counts.rejects.items())),
        tables=tables,
        geo_scrub=spec.geo_scrub,
        rejects_path=str(final / REJECTS_FILE),
        summary_path=str(final / SUMMARY_FILE),
        seconds=round(time.monotonic() - started, 3),
        lines_by_parse_path={path: counts.parse_paths[path] for path in PARSE_PATHS},
        **_rows_summary(counts),
    )

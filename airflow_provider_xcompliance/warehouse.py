"""Apply compliance result tables to a SQL warehouse table: deletes and geo scrubs, all or nothing.

Pure and Airflow-free: :func:`read_result_tables` reads the reporting step's output (``_summary.json`` and one
folder of Parquet parts per action), :func:`plan_changes` decides what each action does to the target table
(refusing actions nobody mapped), and :func:`apply_changes` runs the plan on a DB-API connection in one
transaction with an engine from :mod:`~airflow_provider_xcompliance.warehouse_sql`, returning an
:class:`ApplyRecord` (the audit record).

Idempotent: deletes match only rows still there, scrubs only rows that still hold geo data, so a rerun
changes 0 rows and the record says so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from airflow_provider_xcompliance.exceptions import ResultsIncompleteError, UnmappedActionError
from airflow_provider_xcompliance.paths import as_path
from airflow_provider_xcompliance.sql_names import Quoting, column_name, sql_name
from airflow_provider_xcompliance.table_files import SUMMARY_FILE

Operation = Literal["delete", "scrub_geo"]
OPERATIONS: tuple[Operation, ...] = ("delete", "scrub_geo")
DEFAULT_ACTIONS: dict[str, Operation] = {"delete": "delete", "scrub_geo": "scrub_geo"}
NULL_REASON = "(none)"  # the key a missing reason has in the summary's counts
# Range predicates only prune: a day either side covers time zones and date-typed columns.
_RANGE_MARGIN = timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class ResultTables:
    """The reporting step's output: where it is, what its summary says, the Parquet parts per action."""

    location: str
    job_type: str
    job_ids: tuple[str, ...]
    id_type: str
    rows_by_action_reason: dict[str, dict[str, int]]
    parts: dict[str, tuple[str, ...]]

    @property
    def summary_path(self) -> str:
        return f"{self.location.rstrip('/')}/{SUMMARY_FILE}"


@dataclasses.dataclass(frozen=True)
class ActionTable:
    """One action's table and what it does to the target: ``operation`` rows, ``ids`` IDs in all."""

    action: str
    operation: Operation
    parts: tuple[str, ...]
    ids_by_reason: dict[str, int]
    created_at_range: tuple[datetime, datetime] | None

    @property
    def ids(self) -> int:
        return sum(self.ids_by_reason.values())


@dataclasses.dataclass(frozen=True)
class Target:
    """The warehouse table, its names already validated and quoted (see :mod:`sql_names`)."""

    table: str
    id_column: str
    geo_columns: tuple[str, ...] | None
    created_at_column: str | None

    @classmethod
    def build(
        cls,
        table: str,
        *,
        quoting: Quoting,
        id_column: str = "id",
        geo_columns: Sequence[str] | None = None,
        created_at_column: str | None = None,
    ) -> Target:
        if geo_columns is not None and (isinstance(geo_columns, str) or not geo_columns):
            raise ValueError("geo_columns must be a list of column names, or None to delete scrubbed rows")
        return cls(
            table=sql_name(table, quoting),
            id_column=column_name(id_column, quoting),
            geo_columns=None if geo_columns is None else tuple(column_name(c, quoting) for c in geo_columns),
            created_at_column=None if created_at_column is None else column_name(created_at_column, quoting),
        )


@dataclasses.dataclass(frozen=True)
class Counts:
    """What an engine counted for one action table.

    ``rows_changed`` is always exact (the statement's own row count). ``by_reason`` (reason -> rows changed,
    IDs changed) is None when the engine counted per action only; ``ids_changed`` is None when not counted
    (an ID may have several rows, so rows are no count of IDs).
    """

    rows_changed: int
    ids_changed: int | None = None
    by_reason: dict[str, tuple[int, int]] | None = None

    @classmethod
    def per_reason(cls, by_reason: dict[str, tuple[int, int]]) -> Counts:
        rows = sum(n for n, _ in by_reason.values())
        return cls(rows, sum(ids for _, ids in by_reason.values()), by_reason)

    @classmethod
    def total(cls, parts: Sequence[Counts]) -> Counts:
        """The counts of disjoint sets of IDs added up (per reason only where every part counted so)."""
        if parts and all(part.by_reason is not None for part in parts):
            by_reason: dict[str, tuple[int, int]] = {}
            for part in parts:
                for reason, (rows, ids) in (part.by_reason or {}).items():
                    before = by_reason.get(reason, (0, 0))
                    by_reason[reason] = (before[0] + rows, before[1] + ids)
            return cls.per_reason(by_reason)
        changed = [part.ids_changed for part in parts]
        rows = sum(part.rows_changed for part in parts)
        return cls(rows, None if None in changed else sum(n or 0 for n in changed))


@dataclasses.dataclass(frozen=True)
class ReasonChange:
    """For one reason: IDs in the table, and the rows and IDs changed where they were counted (else None)."""

    ids: int
    rows_changed: int | None
    ids_changed: int | None

    @property
    def ids_unchanged(self) -> int | None:
        """IDs the warehouse does not hold (or, for scrubs, holds without geo data already)."""
        return None if self.ids_changed is None else self.ids - self.ids_changed

    def to_dict(self) -> dict[str, int]:
        """The counts that were made: ``ids`` always, the others only where counted."""
        return _counted(
            ids=self.ids,
            rows_changed=self.rows_changed,
            ids_changed=self.ids_changed,
            ids_unchanged=self.ids_unchanged,
        )


@dataclasses.dataclass(frozen=True)
class ActionChange:
    """One action table's change: rows changed in all (exact), IDs changed where counted, per reason.

    ``counted_per_reason`` says how the engine counted: per reason (rows and IDs), or per action.
    """

    action: str
    operation: Operation
    rows_changed: int
    ids_changed: int | None
    by_reason: dict[str, ReasonChange]
    counted_per_reason: bool

    @property
    def ids(self) -> int:
        return sum(change.ids for change in self.by_reason.values())

    @property
    def ids_unchanged(self) -> int | None:
        return None if self.ids_changed is None else self.ids - self.ids_changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "counted": "per_reason" if self.counted_per_reason else "per_action",
            **_counted(
                ids=self.ids,
                rows_changed=self.rows_changed,
                ids_changed=self.ids_changed,
                ids_unchanged=self.ids_unchanged,
            ),
            "by_reason": {reason: change.to_dict() for reason, change in sorted(self.by_reason.items())},
        }


def _counted(**counts: int | None) -> dict[str, int]:
    """The counts that were made (None: not counted, so not in the record)."""
    return {name: value for name, value in counts.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class ApplyRecord:
    """The audit record: what was removed or scrubbed from which table, when, and why."""

    target: dict[str, str]
    tables: str
    job_type: str
    job_ids: tuple[str, ...]
    dry_run: bool
    started_at: datetime
    ended_at: datetime
    changes: tuple[ActionChange, ...]

    def rows(self, operation: Operation) -> int:
        return sum(c.rows_changed for c in self.changes if c.operation == operation)

    @property
    def ids_unchanged(self) -> int | None:
        """IDs unchanged in all; None when an action counted rows only (see :class:`Counts`)."""
        counts = [c.ids_unchanged for c in self.changes]
        return None if None in counts else sum(c for c in counts if c is not None)

    def counts(self) -> dict[str, Any]:
        """The headline numbers (asset events and logs carry these)."""
        return {
            "rows_deleted": self.rows("delete"),
            "rows_scrubbed": self.rows("scrub_geo"),
            "ids_unchanged": self.ids_unchanged,
            "changed": bool(self.rows("delete") or self.rows("scrub_geo")),
            "dry_run": self.dry_run,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": dict(self.target),
            "tables": self.tables,
            "job_type": self.job_type,
            "job_ids": list(self.job_ids),
            **self.counts(),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "seconds": round((self.ended_at - self.started_at).total_seconds(), 3),
            "actions": {change.action: change.to_dict() for change in self.changes},
        }


def read_result_tables(location: str) -> ResultTables:
    """Read the reporting step's output at ``location``; refuse one without its summary (incomplete).

    Object-storage locations go through the Airflow connection they name (``s3://aws_conn@bucket/...``),
    and every part keeps it.
    """
    root = as_path(location)
    summary_file = root / SUMMARY_FILE
    try:
        summary = json.loads(summary_file.read_text())
    except FileNotFoundError:
        raise ResultsIncompleteError(
            f"{location} has no {SUMMARY_FILE}: the reporting step did not finish there, so its tables "
            "may be partial. Rerun the reporting step; nothing was applied."
        ) from None
    if not summary.get("reconciled", False):
        raise ResultsIncompleteError(
            f"{location}/{SUMMARY_FILE} does not reconcile (lines read != rows written + duplicates + "
            "rejected): its tables may miss IDs. Rerun the reporting step; nothing was applied."
        )
    parts: dict[str, tuple[str, ...]] = {}
    for action, folder in summary["tables"].items():
        table_dir = root / str(folder).rstrip("/").rsplit("/", 1)[-1]
        found = tuple(sorted(str(part) for part in table_dir.glob("*.parquet")))
        if not found and summary["rows_by_action"].get(action, 0):
            raise ResultsIncompleteError(f"{table_dir} holds no Parquet parts but the summary counts rows")
        parts[action] = found
    return ResultTables(
        location=location,
        job_type=summary["job_type"],
        job_ids=tuple(summary.get("job_ids", ())),
        id_type=summary.get("id_type", "int64"),
        rows_by_action_reason=summary["rows_by_action_reason"],
        parts=parts,
    )


def plan_changes(
    tables: ResultTables,
    *,
    actions: Mapping[str, str] | None = None,
    delete_geo_scrubs: bool = False,
    use_created_at: bool = False,
) -> list[ActionTable]:
    """What each action table does to the target, deletes first. Refuses actions nobody mapped.

    ``actions`` adds to (or overrides) :data:`DEFAULT_ACTIONS`: action name -> ``delete`` or ``scrub_geo``.
    ``delete_geo_scrubs`` turns scrubs into deletes (a target without geo columns to null).
    """
    mapping = {**DEFAULT_ACTIONS, **(actions or {})}
    bad = {action: op for action, op in mapping.items() if op not in OPERATIONS}
    if bad:
        raise ValueError(f"actions maps to unknown operations {bad}: use one of {OPERATIONS}")
    plan = []
    for action, reasons in sorted(tables.rows_by_action_reason.items()):
        if not sum(reasons.values()):
            continue
        if action not in mapping:
            raise UnmappedActionError(
                f"The results hold {sum(reasons.values()):,} IDs with action {action!r}, which this "
                f"operator does not know how to apply. Map it, e.g. actions={{{action!r}: 'delete'}}; "
                "nothing was applied."
            )
        operation: Operation = "delete" if delete_geo_scrubs else mapping[action]  # type: ignore[assignment]
        parts = tables.parts[action]
        plan.append(
            ActionTable(
                action=action,
                operation=operation,
                parts=parts,
                ids_by_reason=dict(reasons),
                created_at_range=_created_at_range(parts) if use_created_at else None,
            )
        )
    return sorted(plan, key=lambda table: table.operation != "delete")


def _created_at_range(parts: Sequence[str]) -> tuple[datetime, datetime] | None:
    """The ``created_at`` range of a table from its Parquet statistics (no data read), widened a day."""
    import pyarrow.parquet as pq  # imported here: DuckDB reads local tables without pyarrow

    lows, highs = [], []
    for part in parts:
        with as_path(part).open("rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
        column = metadata.schema.to_arrow_schema().get_field_index("created_at")
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                return None  # no statistics: no bound rather than a wrong one
            lows.append(stats.min)
            highs.append(stats.max)
    if not lows:
        return None
    return (_naive_utc(min(lows)) - _RANGE_MARGIN, _naive_utc(max(highs)) + _RANGE_MARGIN)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Engine(Protocol):
    """How one warehouse family stages IDs and changes rows (see :mod:`warehouse_sql`)."""

    def begin(self, connection: Any) -> Any:
        """Start the transaction; return the cursor its statements run on."""
        ...

    def change(
        self, cursor: Any, target: Target, table: ActionTable, *, id_type: str, dry_run: bool
    ) -> Counts:
        """Change the rows (count them, change nothing, when ``dry_run``); what was counted."""
        ...


def apply_changes(
    connection: Any,
    engine: Engine,
    target: Target,
    plan: Sequence[ActionTable],
    *,
    tables: ResultTables,
    target_info: Mapping[str, str],
    dry_run: bool = False,
) -> ApplyRecord:
    """Run ``plan`` on ``target`` in one transaction: committed when every step succeeds, else rolled back.

    A dry run counts what would change and rolls back, so it changes nothing.
    """
    started = datetime.now(timezone.utc)
    cursor = engine.begin(connection)
    try:
        changes = []
        for table in plan:
            counts = engine.change(cursor, target, table, id_type=tables.id_type, dry_run=dry_run)
            changes.append(_action_change(table, counts))
        if dry_run:
            connection.rollback()
        else:
            connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return ApplyRecord(
        target=dict(target_info),
        tables=tables.location,
        job_type=tables.job_type,
        job_ids=tables.job_ids,
        dry_run=dry_run,
        started_at=started,
        ended_at=datetime.now(timezone.utc),
        changes=tuple(changes),
    )


def apply_tables(
    connection: Any,
    engine: Engine,
    tables: ResultTables,
    *,
    table: str,
    quoting: Quoting,
    id_column: str = "id",
    geo_columns: Sequence[str] | None = None,
    created_at_column: str | None = None,
    actions: Mapping[str, str] | None = None,
    dry_run: bool = False,
    target_info: Mapping[str, str] | None = None,
) -> ApplyRecord:
    """Plan and apply ``tables`` to ``table`` (names validated first): the whole apply step, Airflow-free."""
    target = Target.build(
        table,
        quoting=quoting,
        id_column=id_column,
        geo_columns=geo_columns,
        created_at_column=created_at_column,
    )
    plan = plan_changes(
        tables,
        actions=actions,
        delete_geo_scrubs=geo_columns is None,
        use_created_at=created_at_column is not None,
    )
    info = {"table": table, **(target_info or {})}
    return apply_changes(connection, engine, target, plan, tables=tables, target_info=info, dry_run=dry_run)


def _action_change(table: ActionTable, counts: Counts) -> ActionChange:
    """The record of one action table; rows per reason are known without counting them in two cases."""
    by_reason = counts.by_reason
    if by_reason is None and counts.rows_changed == 0:
        by_reason = {reason: (0, 0) for reason in table.ids_by_reason}  # nothing changed, for every reason
    changes = {}
    for reason, ids in table.ids_by_reason.items():
        if by_reason is not None:
            rows, reason_ids = by_reason.get(reason, (0, 0))
            changes[reason] = ReasonChange(ids, rows, reason_ids)
        elif len(table.ids_by_reason) == 1:  # one reason: the action's rows are that reason's
            changes[reason] = ReasonChange(ids, counts.rows_changed, counts.ids_changed)
        else:
            changes[reason] = ReasonChange(ids, None, None)
    ids_changed = counts.ids_changed if counts.rows_changed else 0
    per_reason = counts.by_reason is not None
    return ActionChange(table.action, table.operation, counts.rows_changed, ids_changed, changes, per_reason)


def format_record(record: ApplyRecord) -> str:
    """The audit record as a fixed-width text table for task logs ("-": not counted)."""
    head = "DRY RUN (nothing changed): " if record.dry_run else ""
    lines = [
        f"{head}compliance results -> {record.target.get('table')} ({record.job_type}; jobs: "
        f"{', '.join(record.job_ids) or 'unknown'})",
        f"  {'action':<12}{'operation':<11}{'reason':<14}{'ids':>12}{'rows changed':>14}"
        f"{'ids unchanged':>15}",
    ]
    for change in record.changes:
        rows = [
            (reason, c.ids, c.rows_changed, c.ids_unchanged) for reason, c in sorted(change.by_reason.items())
        ]
        if len(rows) > 1 and not change.counted_per_reason:
            rows.append(("(all)", change.ids, change.rows_changed, change.ids_unchanged))
        for reason, ids, changed, unchanged in rows:
            lines.append(
                f"  {change.action:<12}{change.operation:<11}{reason:<14}{ids:>12,}"
                f"{_number(changed):>14}{_number(unchanged):>15}"
            )
    counts = record.counts()
    lines.append(
        f"  rows deleted {counts['rows_deleted']:,}, rows scrubbed {counts['rows_scrubbed']:,}, "
        f"IDs unchanged {_number(counts['ids_unchanged'])}"
    )
    if not all(change.counted_per_reason for change in record.changes):
        lines.append("  rows counted per action, not per reason (count_by_reason=True counts each reason)")
    if not counts["changed"]:
        lines.append("  nothing to change: the table already matches these results")
    return "\n".join(lines)


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"

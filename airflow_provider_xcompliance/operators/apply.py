"""Apply compliance result tables to a warehouse table (thin glue over ``warehouse``/``warehouse_sql``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import Asset, BaseOperator

from airflow_provider_xcompliance import lineage, storage
from airflow_provider_xcompliance.sql_names import Quoting
from airflow_provider_xcompliance.version_compat import BaseHook
from airflow_provider_xcompliance.warehouse import (
    ApplyRecord,
    apply_tables,
    format_record,
    read_result_tables,
)
from airflow_provider_xcompliance.warehouse_sql import IDS_PER_STATEMENT, engine_for

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import Context

TablesInput = str | os.PathLike[str] | Mapping[str, Any]


def tables_location(tables: TablesInput) -> str:
    """The tables folder: a folder/URI as given, or the reporting step's XCom (its ``destination``)."""
    if isinstance(tables, Mapping):
        if tables.get("destination"):
            return str(tables["destination"])
        if tables.get("summary_path"):
            return str(tables["summary_path"]).rsplit("/", 1)[0]
        raise ValueError(f"Cannot find the tables folder in {sorted(tables)}: give its URI instead")
    return os.fspath(tables)


def audit_file_name(conn_id: str, table: str, *, dry_run: bool) -> str:
    """``_applied-<conn>-<table>.json`` (``_dry_run-...`` for dry runs): one per target beside the tables."""
    kind = "_dry_run" if dry_run else "_applied"
    return f"{kind}-{quote(conn_id, safe='')}-{quote(table, safe='')}.json"


class XComplianceApplyOperator(BaseOperator):
    """Apply the reporting step's tables to one warehouse table: delete rows, null geo columns.

    ``delete`` rows are deleted; ``scrub_geo`` rows get ``geo_columns`` set to NULL (the row is deleted when
    ``geo_columns`` is None); any other action is refused unless ``actions`` maps it to ``delete`` or
    ``scrub_geo``. Everything happens in one transaction: all or nothing. A rerun changes 0 rows and says
    so. Tables whose ``_summary.json`` is missing (an unfinished reporting step) are refused.

    DuckDB (``duckdb`` connections, Apache DuckDB provider) reads the Parquet in place; PostgreSQL
    (``postgres`` connections) loads the IDs with ``COPY``; any other common.sql ``DbApiHook`` loads them in
    batches into a temporary table. Names are validated and quoted with the hook's quote characters.

    Returns, logs and writes beside the tables the audit record (``_applied-<conn_id>-<table>.json``):
    target, job ids, rows deleted and scrubbed per action (and per reason where counted, see
    ``count_by_reason``), IDs per reason, IDs unchanged where counted, dry run or not, start and end. Asset
    outlets get the counts in their event's ``extra``.

    :param tables: the reporting step's XCom, or its destination folder / URI (templated).
    :param conn_id: an Airflow connection whose hook is a common.sql ``DbApiHook`` (templated).
    :param table: the target table, schema-qualified allowed; quote parts that are not plain identifiers,
        e.g. ``'"x-data"."Posts Table"'`` (templated).
    :param id_column: the target's ID column.
    :param geo_columns: columns nulled for geo scrubs; None deletes geo-scrubbed rows instead.
    :param created_at_column: the target's creation-time column: each statement is bounded by the tables'
        ``created_at`` range (a day's margin either side), so a table partitioned by it prunes partitions.
        It must hold the post's or account's creation time as X reports it.
    :param dry_run: count what would change, change nothing (the record says ``dry_run``).
    :param actions: extra action -> operation mappings, e.g. ``{"bounced": "delete"}``.
    :param count_by_reason: DuckDB only: also count the rows and IDs changed per reason, which takes a second
        pass over the table. Without it DuckDB changes each action's rows in one statement and the record
        has the exact rows per action and, per reason, the IDs the results hold (``"counted": "per_action"``).
        Other warehouses always count per reason (at no extra pass), as does a dry run.
    :param ids_per_statement: DuckDB only: the IDs of an action are changed a range of about this many at a
        time, so the task's memory stays flat whatever their number. Each statement reads the blocks of the
        target its range may hold: a target stored in ID order (X's IDs grow with time) skips the others,
        one in no such order is scanned once per statement, so there a larger value trades memory for time.
    """

    template_fields: Sequence[str] = ("tables", "conn_id", "table")
    ui_color = "#fbe8e8"

    def __init__(
        self,
        *,
        tables: TablesInput,
        conn_id: str,
        table: str,
        id_column: str = "id",
        geo_columns: Sequence[str] | None = None,
        created_at_column: str | None = None,
        dry_run: bool = False,
        actions: Mapping[str, str] | None = None,
        count_by_reason: bool = False,
        ids_per_statement: int = IDS_PER_STATEMENT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.conn_id = conn_id
        self.table = table
        self.id_column = id_column
        self.geo_columns = geo_columns
        self.created_at_column = created_at_column
        self.is_dry_run = dry_run  # BaseOperator.dry_run is a method
        self.actions = actions
        self.count_by_reason = count_by_reason
        self.ids_per_statement = ids_per_statement
        self._applied: list[str] = []  # for lineage: the table folders applied

    def execute(self, context: Context) -> dict[str, Any]:
        location = tables_location(self.tables)
        results = read_result_tables(location)
        hook = self._hook()
        connection = hook.get_conn()
        try:
            record = apply_tables(
                connection,
                engine_for(
                    hook.conn_type,
                    placeholder=hook.placeholder,
                    count_by_reason=self.count_by_reason,
                    ids_per_statement=self.ids_per_statement,
                ),
                results,
                table=self.table,
                quoting=Quoting.from_format(hook.escape_word_format),
                id_column=self.id_column,
                geo_columns=self.geo_columns,
                created_at_column=self.created_at_column,
                actions=self.actions,
                dry_run=self.is_dry_run,
                target_info={"conn_id": self.conn_id, "conn_type": str(hook.conn_type)},
            )
        finally:
            connection.close()
        self.log.info("%s", format_record(record))
        self._write_audit(location, record)
        self._emit(context, record)
        self._applied = [f"{location.rstrip('/')}/{folder}" for folder in _folders(results.parts)]
        return record.to_dict()

    def _hook(self) -> DbApiHook:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(self.conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise TypeError(
                f"Connection {self.conn_id!r} gives a {type(hook).__name__}, not a common.sql DbApiHook: "
                "use a SQL warehouse connection (duckdb, postgres, ...)"
            )
        return hook

    def _write_audit(self, location: str, record: ApplyRecord) -> None:
        name = audit_file_name(self.conn_id, self.table, dry_run=record.dry_run)
        destination = f"{location.rstrip('/')}/{name}"
        with storage.atomic_writer(destination) as writer:
            writer.file.write(json.dumps(record.to_dict(), indent=2).encode())
        self.log.info("Audit record: %s", destination)

    def _emit(self, context: Context, record: ApplyRecord) -> None:
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {
                    "conn_id": self.conn_id,
                    "table": self.table,
                    "job_ids": list(record.job_ids),
                    **record.counts(),
                }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the Parquet tables applied; output: the warehouse table."""
        connection = BaseHook.get_connection(self.conn_id)
        database = connection.schema if connection.conn_type != "duckdb" else None
        table = lineage.table_dataset(str(connection.conn_type), connection.host, self.table, database)
        return lineage.operator_lineage(self._applied, [table])


def _folders(parts: Mapping[str, Sequence[str]]) -> list[str]:
    """The action folders that hold Parquet parts (relative to the tables folder)."""
    return sorted({part.replace(os.sep, "/").rsplit("/", 2)[-2] for f in parts.values() for part in f})

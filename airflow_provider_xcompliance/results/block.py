"""One block of whole lines, from bytes to one ready-to-write table part per action (in a worker thread;
numpy and pyarrow release the GIL).

Lines in the API's exact shape go through the fast path (:mod:`.api_lines`); the others through the general
path (:mod:`.general`) and :func:`~.validate.type_rows`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.actions import effective_actions
from airflow_provider_xcompliance.concurrency import WORKER_MEMORY_POOL
from airflow_provider_xcompliance.results.api_lines import parse_api_lines
from airflow_provider_xcompliance.results.dedupe import order_by_bucket, spill_keys
from airflow_provider_xcompliance.results.general import as_array, lines_array, parse_general, selected_lines
from airflow_provider_xcompliance.results.read import Block, line_offsets
from airflow_provider_xcompliance.results.rejects import reject_tails
from airflow_provider_xcompliance.results.schema import IdType, TableSpec, output_schema
from airflow_provider_xcompliance.results.summary import TableCounts
from airflow_provider_xcompliance.results.validate import type_rows
from airflow_provider_xcompliance.results.write import constant_column

__all__ = ["ActionRows", "ParsedBlock", "convert_block"]


@dataclasses.dataclass
class ActionRows:
    """One action's rows of a block, ready to write, with what the run keeps of them."""

    action: str
    table: pa.Table  # in the output schema, ordered by (hash bucket of id, line)
    counts: TableCounts
    keys: np.ndarray  # spill records: the id (dedupe key) and the row in this part, in the same order
    bucket_sizes: list[int]  # records per hash bucket


@dataclasses.dataclass
class ParsedBlock:
    """A parsed block: its rows split by action, and its rejected lines."""

    parts: list[ActionRows]
    rejects: list[tuple[int, str]]  # (line index in block, the reject record after its line number)
    reject_reasons: Counter[str]
    physical_lines: int
    blank: int
    notes: Counter[str]  # rows_missing_created_at, rows_unreadable_timestamps, rejected_with_id
    parse_paths: Counter[str]  # non-blank lines per parse path


@dataclasses.dataclass
class _BlockRows:
    """Typed rows of a block, grouped by parse path rather than in line order: :func:`order_by_bucket`
    restores line order in the sort it does anyway, cheaper than a reordering copy here."""

    table: pa.Table
    lines: np.ndarray  # each row's line index
    rejects: list[tuple[int, str]]  # (line index, reason)
    blank: int
    notes: Counter[str]
    parse_paths: Counter[str]


def _parse_block(block: Block, offsets: np.ndarray, id_type: IdType) -> _BlockRows:
    """Typed rows, rejected lines and counts of a block: the fast path first, the general one for the rest."""
    count = len(offsets) - 1
    fast = parse_api_lines(block, offsets, id_type)
    if len(fast.lines) == count:
        return _BlockRows(fast.table, fast.lines, [], 0, Counter(), Counter(fast=count))
    rest = np.ones(count, bool)
    rest[fast.lines] = False
    rest_lines = np.flatnonzero(rest)
    rest_data, rest_offsets = selected_lines(lines_array(block, offsets).filter(pa.array(rest)))
    general = parse_general(rest_data.to_pybytes(), rest_offsets)
    rows, row_rejects, notes = type_rows(
        general.table.combine_chunks(memory_pool=WORKER_MEMORY_POOL), id_type
    )
    row_lines = rest_lines[np.delete(general.lines, [row for row, _ in row_rejects])]
    line_of, row_of = rest_lines.tolist(), general.lines.tolist()  # list lookups: no numpy scalar a reject
    rejects = [(line_of[i], reason) for i, reason in general.rejects]
    rejects += [(line_of[row_of[row]], reason) for row, reason in row_rejects]
    paths = Counter(
        fast=len(fast.lines),
        general=count - len(fast.lines) - general.blank - general.by_python,
        python=general.by_python,
    )
    table = pa.concat_tables([fast.table, rows])
    return _BlockRows(table, np.concatenate([fast.lines, row_lines]), rejects, general.blank, notes, paths)


def convert_block(block: Block, spec: TableSpec, buckets: int, job_id: str | None) -> ParsedBlock:
    """Parse, validate, bucket and split one block of whole lines by action."""
    offsets = line_offsets(block)
    parsed = _parse_block(block, offsets, spec.id_type)
    found = sorted(parsed.rejects)
    lines = np.array([index for index, _ in found], np.int64)
    tails, parsed.notes["rejected_with_id"] = reject_tails(block, offsets, lines, [r for _, r in found])
    rejects = list(zip(lines.tolist(), tails, strict=True))
    rows = parsed.table.combine_chunks(memory_pool=WORKER_MEMORY_POOL)
    actions = effective_actions(as_array(rows["action"]), as_array(rows["reason"]), spec.geo_scrub)
    rows = rows.set_column(rows.schema.get_field_index("action"), "action", actions)
    rows, counts = order_by_bucket(rows, parsed.lines, buckets)
    parts = _split_by_action(rows, counts, spec.id_type, {"job_id": job_id, "job_type": spec.job_type})
    reasons = Counter(reason for _, reason in found)
    return ParsedBlock(
        parts, rejects, reasons, len(offsets) - 1, parsed.blank, parsed.notes, parsed.parse_paths
    )


def _split_by_action(
    rows: pa.Table, counts: np.ndarray, id_type: IdType, per_source: dict[str, str | None]
) -> list[ActionRows]:
    """The rows (ordered by action, bucket, line) as one table part per action, with the per-source
    columns added."""
    parts = []
    start = 0
    schema = output_schema(id_type)
    for local, action in enumerate(as_array(rows["action"]).dictionary.to_pylist()):
        size = int(counts[local].sum())
        if not size:
            continue
        part = rows.slice(start, size)
        start += size
        if 2 * size < rows.num_rows:  # copy, or the writer's buffered slice would keep the whole block alive
            part = pc.take(part, pa.array(np.arange(size)), memory_pool=WORKER_MEMORY_POOL)
        constants = {**per_source, "action": action}
        columns = [constant_column(constants[n], size) if n in constants else part[n] for n in schema.names]
        table = pa.Table.from_arrays(columns, schema=schema)
        table_counts = TableCounts()
        table_counts.add(table)
        keys = spill_keys(as_array(part["id"]))
        parts.append(ActionRows(action, table, table_counts, keys, counts[local].tolist()))
    return parts

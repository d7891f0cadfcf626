"""Typing the general path's string columns into the result schema, and rejecting rows without a readable
id or action. Unreadable timestamps become null and are counted, never rejected."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_xcompliance.models import parse_api_time
from airflow_provider_xcompliance.results.general import as_array
from airflow_provider_xcompliance.results.schema import (
    LINE_FIELDS,
    TIMESTAMP,
    TIMESTAMP_FIELDS,
    IdType,
    row_schema,
)

__all__ = ["parse_timestamps", "type_rows"]

_INT64_MAX = "9223372036854775807"
_CASTABLE_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$"


def parse_timestamps(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Parse API timestamps to ms UTC; returns (timestamps, invalid mask). Null stays null, not invalid.

    One cast does a clean column; otherwise a shape check sets the odd values aside (they are few), so the
    column is still cast in one go and only the odd values are normalised.
    """
    try:
        return pc.cast(values, TIMESTAMP), pa.array(np.zeros(len(values), bool))
    except pa.ArrowInvalid:
        pass
    castable = pc.fill_null(pc.match_substring_regex(values, _CASTABLE_TIMESTAMP), False)
    try:
        parsed = pc.cast(pc.if_else(castable, values, pa.scalar(None, pa.string())), TIMESTAMP)
    except pa.ArrowInvalid:  # well-shaped but impossible (month 13) somewhere: treat all as odd
        castable = pa.array(np.zeros(len(values), bool))
        parsed = pa.nulls(len(values), TIMESTAMP)
    odd = pc.and_(pc.is_valid(values), pc.invert(castable))
    if pc.any(odd).as_py():
        parsed = pc.replace_with_mask(parsed, odd, _parse_odd_timestamps(values.filter(odd)))
    return parsed, pc.and_(pc.is_valid(values), pc.is_null(parsed))


def _parse_odd_timestamps(values: pa.Array) -> pa.Array:
    """Timestamps a plain cast refuses: sub-ms fractions, no zone (taken as UTC), or junk (null)."""
    shaped = pc.fill_null(pc.match_substring_regex(values, _TIMESTAMP_SHAPE), False)
    text = pc.replace_substring_regex(values, r"^(.{19}\.\d{3})\d+", r"\1")
    zoneless = pc.fill_null(pc.match_substring_regex(text, r"^.{19}(?:\.\d+)?$"), False)
    text = pc.if_else(zoneless, pc.binary_join_element_wise(text, "Z", ""), text)
    text = pc.if_else(shaped, text, pa.scalar(None, pa.string()))
    try:
        return pc.cast(text, TIMESTAMP)
    except pa.ArrowInvalid:  # well-shaped but impossible: decide value by value
        return pa.array([_parse_one_timestamp(v) for v in text.to_pylist()], TIMESTAMP)


def _parse_one_timestamp(value: str | None) -> datetime | None:
    try:
        return parse_api_time(value)
    except ValueError:
        return None


def _row_checks(ids: pa.Array, action: pa.Array, id_type: IdType) -> list[tuple[str, pa.Array]]:
    """(reject reason, mask of the rows it rejects), in the order a row's reason is chosen."""
    # ascii_is_decimal is false for "" and several times cheaper than a regex
    digits = pc.fill_null(pc.and_(pc.ascii_is_decimal(ids), pc.less_equal(pc.binary_length(ids), 19)), False)
    if id_type == "int64":
        too_big = pc.and_(pc.equal(pc.binary_length(ids), 19), pc.greater(ids, _INT64_MAX))
        digits = pc.and_(digits, pc.invert(pc.fill_null(too_big, False)))
    return [
        ("missing_id", pc.is_null(ids)),
        ("invalid_id", pc.invert(digits)),
        ("missing_action", pc.fill_null(pc.equal(action, ""), True)),
    ]


def type_rows(table: pa.Table, id_type: IdType) -> tuple[pa.Table, list[tuple[int, str]], Counter[str]]:
    """The string rows typed into :func:`~.schema.row_schema`; rows without a readable id and action become
    (row, reason) rejects. Unreadable timestamps become null, counted in the notes."""
    columns = {name: as_array(table[name]) for name in table.column_names}
    created_text = columns["created_at"]  # null when the line has no created_at
    odd = pa.array(np.zeros(table.num_rows, bool))
    for name in TIMESTAMP_FIELDS:
        columns[name], unreadable = parse_timestamps(columns[name])
        odd = pc.or_(odd, unreadable)
    checks = _row_checks(columns["id"], columns["action"], id_type)
    bad = checks[0][1]
    for _, mask in checks[1:]:
        bad = pc.or_(bad, mask)
    rejects: list[tuple[int, str]] = []
    if pc.any(bad).as_py():
        masks = [mask.to_numpy(zero_copy_only=False) for _, mask in checks]
        first = np.select(masks, np.arange(len(checks)), default=-1)
        rows = np.flatnonzero(first >= 0)
        reasons = [checks[check][0] for check in first[rows].tolist()]
        rejects = list(zip(rows.tolist(), reasons, strict=True))
        keep = pc.invert(bad)
        columns = {name: column.filter(keep) for name, column in columns.items()}
        odd, created_text = odd.filter(keep), created_text.filter(keep)
    notes = Counter(
        {
            "rows_missing_created_at": created_text.null_count,
            "rows_unreadable_timestamps": pc.sum(odd).as_py() or 0,
        }
    )
    typed = {}
    for field in LINE_FIELDS:
        column = columns[field.name]
        if field.kind == "id":
            typed[field.name] = pc.cast(column, pa.int64()) if id_type == "int64" else column
        elif field.kind == "text":
            typed[field.name] = pc.dictionary_encode(column)
        else:
            typed[field.name] = column
    return pa.table(typed, schema=row_schema(id_type)), rejects, notes

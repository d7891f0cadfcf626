"""The result schema, defined once: the columns of every table, and the keys of a line as the API writes it.

The general path reads the line keys, the fast path (:mod:`.api_lines`) matches the API's exact bytes built
from them, and the emulator writes its lines from them, so a new column is one entry here plus the code that
reads or writes its value.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import pyarrow as pa

from airflow_provider_xcompliance.actions import GeoScrubPolicy

__all__ = [
    "API_LINE_CLOSE",
    "API_LINE_KEYS",
    "LINE_FIELDS",
    "RANGE_FIELDS",
    "RESULT_FIELDS",
    "TEXT",
    "TIMESTAMP",
    "TIMESTAMP_FIELDS",
    "IdType",
    "ResultField",
    "TableSpec",
    "api_key_texts",
    "output_schema",
    "row_schema",
]

IdType = Literal["int64", "string"]
FieldKind = Literal["id", "text", "timestamp", "per_source"]


class TableSpec(NamedTuple):
    """What one conversion's tables are: the job type every row carries, the ``id`` column's type, and
    which table geo scrubs go to."""

    job_type: str
    id_type: IdType
    geo_scrub: GeoScrubPolicy


TIMESTAMP = pa.timestamp("ms", tz="UTC")
# Few distinct values a column: dictionary-encoded strings are smaller and faster to write.
TEXT = pa.dictionary(pa.int32(), pa.string())


@dataclasses.dataclass(frozen=True)
class ResultField:
    """One column of the result tables.

    ``kind``: ``id`` (int64 or digit strings), ``text`` (dictionary strings), ``timestamp`` (ms, UTC) or
    ``per_source`` (not in a line: one value for every row of a source).
    """

    name: str
    kind: FieldKind
    nullable: bool = True

    def arrow_type(self, id_type: IdType) -> pa.DataType:
        if self.kind == "id":
            return pa.int64() if id_type == "int64" else pa.string()
        return TIMESTAMP if self.kind == "timestamp" else TEXT


# The columns of every table, in table order.
RESULT_FIELDS = (
    ResultField("id", "id", nullable=False),
    ResultField("action", "text", nullable=False),
    ResultField("reason", "text"),
    ResultField("created_at", "timestamp"),
    ResultField("redacted_at", "timestamp"),
    ResultField("job_id", "per_source"),
    ResultField("job_type", "per_source", nullable=False),
)
# The keys of a line in the order the API writes them; it may leave out the optional ones.
API_LINE_KEYS = ("id", "action", "created_at", "redacted_at", "reason")
API_OPTIONAL_KEYS = frozenset({"redacted_at"})
API_LINE_CLOSE = b'"}'

LINE_FIELDS = tuple(field for field in RESULT_FIELDS if field.kind != "per_source")
TIMESTAMP_FIELDS = tuple(field.name for field in RESULT_FIELDS if field.kind == "timestamp")
RANGE_FIELDS = ("id", *TIMESTAMP_FIELDS)  # the columns whose min and max the summary reports
assert {field.name for field in LINE_FIELDS} == set(API_LINE_KEYS), "every line column is a key of a line"


def output_schema(id_type: IdType = "int64") -> pa.Schema:
    """The schema of every table written (``id`` is int64 or string)."""
    return pa.schema([pa.field(f.name, f.arrow_type(id_type), nullable=f.nullable) for f in RESULT_FIELDS])


def row_schema(id_type: IdType) -> pa.Schema:
    """The columns a line gives, before the per-source ones are added: what both parse paths return."""
    return pa.schema([pa.field(f.name, f.arrow_type(id_type), nullable=f.nullable) for f in LINE_FIELDS])


def api_key_texts() -> dict[str, bytes]:
    """The bytes before each value of a line the API writes: ``{"id":"``, then ``","action":"`` and so on;
    :data:`API_LINE_CLOSE` follows the last value."""
    first = API_LINE_KEYS[0]
    return {key: (b'{"' if key == first else b'","') + key.encode() + b'":"' for key in API_LINE_KEYS}

"""ID sources in, validated and normalised ID text files out: streaming, and free of Airflow.

The compliance API takes one plain-text file of decimal IDs per job and documents nothing about blank,
malformed or duplicate lines, so every ID is checked and normalised here before any job exists.

Rules (one place: :func:`normalise_id` is the reference, the fast paths in the readers must agree with it):

* Around each value, ASCII whitespace (``\\r`` included) and a UTF-8 byte order mark are trimmed.
  Blank lines, empty cells and nulls are skipped and counted as ``blank``.
* A valid ID is 1 to 19 ASCII digits once leading zeros are dropped (``"007"`` becomes ``"7"``).
  That is the API's own ``^[0-9]{1,19}$`` pattern, and every such number fits an unsigned 64-bit integer;
  20 digits are refused even below 2**64 (``2**64 - 1`` included): no real snowflake is that large.
* Zero (``"0"``, ``"000"``) is refused: X never issues it, and in exports it usually stands for a
  missing value.
* Signs, inner whitespace, non-ASCII characters (Arabic-Indic or fullwidth digits too), hex and the
  like are refused.

Positions: ``line`` is the 1-based line number in a text file, and the 1-based data row in CSV
(header and empty lines not counted) and Parquet, where :attr:`InvalidId.unit` says ``"row"``; a CSV
row with the wrong number of fields is an invalid record named by its line in the file.

Errors: an invalid value is an :class:`InvalidId` (``on_invalid`` decides). A source that cannot be read
as a whole (missing, a truncated or corrupt ``.gz``, a corrupt Parquet row group, a missing ID column, a
CSV quote never closed) raises :class:`~airflow_provider_xcompliance.exceptions.IdSourceError` naming the
file and the line or row group, with the library's error as its cause, whatever ``on_invalid`` says: the
IDs it holds are unknown, so skipping it would silently drop IDs that may need action.

Formats: :data:`~airflow_provider_xcompliance.ids.formats.READERS` maps each format (``fmt=``) to its
suffixes and its reader; a new format is one reader function and one line there.

Speed: text is read in large byte blocks; a block of plain ``digits\\n`` lines (CRLF allowed) is checked
with a handful of vectorised passes and written out unchanged; only a block with an anomaly takes the
per-line path, which also yields exact line numbers. CSV and Parquet are read in record batches:
integer columns are range-checked with pyarrow compute, string cells are joined into lines and take the
text path. Reading stays in the caller's thread, which numbers the lines; checking and formatting run in
a few threads (:data:`WORKERS`) and come back in input order, so counts, line numbers, rejects and
output are those of a sequential pass. Memory stays bounded by the block/batch size times the batches in
flight (plus the dedupe bound).
"""

from airflow_provider_xcompliance.ids.batches import iter_id_batches
from airflow_provider_xcompliance.ids.chunks import IdChunk, PreparedIds
from airflow_provider_xcompliance.ids.counts import IdCounts
from airflow_provider_xcompliance.ids.distinct import DEFAULT_DEDUPE_MEMORY_IDS
from airflow_provider_xcompliance.ids.formats import READERS, Fmt, Reader, detect_format
from airflow_provider_xcompliance.ids.prepare import OnInvalid, prepare_ids, validate_ids
from airflow_provider_xcompliance.ids.sources import (
    IdSource,
    IdSources,
    SourceFile,
    expand_sources,
    source_fingerprint,
)
from airflow_provider_xcompliance.ids.values import DEFAULT_BLOCK_SIZE, IdBatch, InvalidId, normalise_id
from airflow_provider_xcompliance.paths import OpenablePath, as_path

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_DEDUPE_MEMORY_IDS",
    "READERS",
    "Fmt",
    "IdBatch",
    "IdChunk",
    "IdCounts",
    "IdSource",
    "IdSources",
    "InvalidId",
    "OnInvalid",
    "OpenablePath",
    "PreparedIds",
    "Reader",
    "SourceFile",
    "as_path",
    "detect_format",
    "expand_sources",
    "iter_id_batches",
    "normalise_id",
    "prepare_ids",
    "source_fingerprint",
    "validate_ids",
]

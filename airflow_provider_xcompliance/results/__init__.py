"""Compliance results (JSON Lines) to Parquet tables a warehouse can apply directly.

Pure, with no Airflow import of its own: :func:`results_to_parquet` streams one or many result files (local
paths, ``file://`` URIs, ``os.PathLike`` objects, path objects with ``.open()``, and object-storage URIs such
as ``s3://``, which :func:`~airflow_provider_xcompliance.paths.as_path` opens through Airflow's
``ObjectStoragePath``) and writes this layout::

    destination/
      delete/part-00000.parquet       one folder per effective action: each folder is a complete table
      scrub_geo/part-00000.parquet    (both always written, empty tables when no row has that action)
      <other action>/part-00000.parquet   any other action that appears; the name is %-escaped, bounded
      _rejects.jsonl                  lines no row could be read from (see :mod:`.rejects`)
      _summary.json                   :class:`ConversionSummary` as JSON, written last

Geo scrubs (``reason`` or ``action`` ``scrub_geo``) go to ``scrub_geo/`` whatever their action, or to
``delete/`` with ``geo_scrub="delete"``; every table's ``action`` column equals its folder (see
:mod:`~airflow_provider_xcompliance.actions`).

One folder per table rather than Hive ``action=...`` partitions: every file carries its own ``action`` column,
so no engine has to reconcile a partition key that also lives in the file (engines disagree on that);
``destination/*/*.parquet`` loads all actions as one table. The ``_`` prefix makes Hive, Spark and Arrow
dataset readers skip the side files.

Schema (defined once, in :mod:`.schema`): ``id`` int64 (or string), ``action``/``reason``/``job_id``/
``job_type`` dictionary-encoded strings, ``created_at``/``redacted_at`` ``timestamp[ms, UTC]`` (nullable).
Unknown fields are ignored; unknown ``action`` and ``reason`` values are kept. A missing ``reason`` is kept
as null.

Fail closed: a line that is a JSON object with a readable ``id`` and a non-empty string ``action`` is always a
row. A missing or unreadable timestamp becomes null (``rows_missing_created_at`` and
``rows_unreadable_timestamps`` count them), a non-string ``reason`` is kept as its JSON text. Only a line
without a readable id or action is rejected, to ``_rejects.jsonl`` with any ID it names
(``rejected_with_id``): such an ID may need action and is in no table (its action is unknown, and guessing
one could delete a post X only asked to scrub), so ``max_rejects`` fails the run on it, after everything is
written. A line's verdict depends on its bytes alone, never on its neighbours or on where a block ends. The
summary reconciles exactly::

    lines_read (non-blank lines) == rows_written + duplicates + rejected

Speed: the input is cut into blocks of whole lines (local files are memory-mapped, so no byte is copied),
parsed in worker threads (numpy and pyarrow release the GIL) and written in input order by the calling
thread. Lines in the exact shape the API writes are typed straight from the bytes by the fast path
(:mod:`.api_lines`); any other line goes through pyarrow's JSON reader, and a line even that refuses through
Python, one by one (blank, cut off, not an object...). So a bad line costs little and line numbers stay
exact. ``lines_by_parse_path`` in the summary counts the lines each path read.

Duplicates and memory: tables are written while the input is read, and each row's id is also spilled with
its row number to a local file per (action, hash bucket of ``id``), buckets sized from the input (a
fixed amount of JSON each, see :mod:`.dedupe`). Then each spill file is checked with one sort (of 32-bit
hashes, twins compared exactly); only a table that holds a duplicate is rewritten, one row group at a time,
without the later occurrences. Peak memory is a few blocks in flight, one row group being written and one
bucket, whatever the input size (up to 256 buckets, beyond which buckets grow), plus a bit per row of a
table being rewritten. The first occurrence of an (id, action) pair wins, in the order sources
were given. Scratch space: 16 bytes per valid row in ``spill_dir`` (20 for string ids).

Atomic output: everything is written to a hidden sibling ``.<name>.staging-<uuid>`` and then swapped into
place, so a rerun replaces its own output. Locally the swap is two renames: readers see the old output, for an
instant none, then the new one; never a mix. Object stores have no atomic rename: the staging prefix is moved
after the old output is removed, and ``_summary.json``, written last, marks a complete output.

The package by stage: :mod:`.read` (sources and whole-line blocks), :mod:`.api_lines` (the fast path),
:mod:`.general` (pyarrow's reader and the line-by-line fallback), :mod:`.validate` (typing and row rejects),
:mod:`.block` (one block, bytes to table parts), :mod:`.dedupe` (spill and duplicate check), :mod:`.write`
(Parquet tables and the atomic commit), :mod:`.rejects`, :mod:`.summary` and :mod:`.convert` (the run).
"""

from airflow_provider_xcompliance.results.convert import KNOWN_ACTIONS, results_to_parquet
from airflow_provider_xcompliance.results.schema import IdType, output_schema
from airflow_provider_xcompliance.results.summary import ConversionSummary, format_summary
from airflow_provider_xcompliance.results.write import PART_FILE, REJECTS_FILE, SUMMARY_FILE, parquet_options

__all__ = [
    "KNOWN_ACTIONS",
    "PART_FILE",
    "REJECTS_FILE",
    "SUMMARY_FILE",
    "ConversionSummary",
    "IdType",
    "format_summary",
    "output_schema",
    "parquet_options",
    "results_to_parquet",
]

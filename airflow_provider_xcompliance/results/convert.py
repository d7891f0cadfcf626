"""One conversion: blocks parsed in the pool and written in input order while the input is read, then
duplicates dropped, then the staged output committed."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_xcompliance.actions import GeoScrubPolicy, check_policy, table_dir_name
from airflow_provider_xcompliance.concurrency import WORKERS, in_order
from airflow_provider_xcompliance.exceptions import ResultsRejectedError
from airflow_provider_xcompliance.models import JobType
from airflow_provider_xcompliance.paths import PathInput, as_path
from airflow_provider_xcompliance.redaction import redact_url
from airflow_provider_xcompliance.results import read, write
from airflow_provider_xcompliance.results.block import ActionRows, ParsedBlock, convert_block
from airflow_provider_xcompliance.results.dedupe import INT_KEYS, STRING_KEYS, bucket_count, duplicate_rows
from airflow_provider_xcompliance.results.read import Source
from airflow_provider_xcompliance.results.schema import IdType, TableSpec, output_schema
from airflow_provider_xcompliance.results.summary import ConversionSummary, RunCounts, TableCounts, summarise
from airflow_provider_xcompliance.results.write import PART_FILE, REJECTS_FILE, SUMMARY_FILE, TableWriter

__all__ = ["KNOWN_ACTIONS", "results_to_parquet"]

KNOWN_ACTIONS = ("delete", "scrub_geo")


def results_to_parquet(
    sources: PathInput | Iterable[PathInput] | Mapping[Any, str | None],
    destination: PathInput,
    *,
    job_type: JobType | str,
    job_id: str | None = None,
    id_type: IdType = "int64",
    max_rejects: int | float | None = None,
    geo_scrub: GeoScrubPolicy = "scrub",
    spill_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> ConversionSummary:
    """Convert compliance result files to per-action Parquet tables under ``destination`` (see the package
    doc).

    ``sources``: one path or URI, several, or a mapping ``{source: job_id}`` (the results of several chunk
    jobs). A source's job id is its mapping value, else ``job_id``, else the last 10-19 digit run in its file
    name, else null. ``max_rejects``: an ``int`` is a count, a ``float`` a fraction of lines read; when
    exceeded, the tables, the rejects file and the summary are still committed and
    :class:`ResultsRejectedError` is raised (``None``: never). ``geo_scrub``: the table of geo scrubs,
    ``"scrub"`` or ``"delete"`` (see :mod:`~airflow_provider_xcompliance.actions`). ``spill_dir``: local
    scratch space for the dedupe spill (default: the system temp dir). ``workers``: parser threads
    (default: CPU count, at most 4).
    """
    started = time.monotonic()
    spec = TableSpec(JobType(job_type).value, id_type, check_policy(geo_scrub))
    if id_type not in ("int64", "string"):
        raise ValueError(f"id_type must be 'int64' or 'string', not {id_type!r}")
    inputs = read.sources(sources, job_id)
    final = as_path(destination)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="xcompliance-", dir=spill_dir) as scratch:
            counts, written = _convert(inputs, staging, spec, Path(scratch), workers or WORKERS)
        tables = {action: str(final / table_dir_name(action)) for action in written}
        summary = summarise(inputs, final, spec, counts, tables, started)
        with (staging / SUMMARY_FILE).open("w", encoding="utf-8") as out:
            json.dump(summary.to_dict(), out, indent=2)
        write.commit(staging, final)
    except BaseException:
        write.remove(staging)
        raise
    if _over_threshold(max_rejects, summary.rejected, summary.lines_read):
        raise ResultsRejectedError(
            f"{summary.rejected:,} of {summary.lines_read:,} result lines were rejected, more than "
            f"max_rejects={max_rejects}: {summary.rejected_with_id:,} of them name an ID that may need "
            f"action and is in no table. The tables, the rejects and the summary were written; see "
            f"{redact_url(summary.rejects_path)}",
            summary=summary,
        )
    return summary


def _convert(
    inputs: list[Source], staging: Any, spec: TableSpec, scratch: Path, threads: int
) -> tuple[RunCounts, list[str]]:
    """Write the tables and the rejects into ``staging``; the counts, and the actions that have a table."""
    sizes = [read.size_of(source.path) for source in inputs]
    buckets = bucket_count(None if None in sizes else sum(size or 0 for size in sizes))
    with ThreadPoolExecutor(threads, thread_name_prefix="xcompliance-results") as pool:
        run = _Conversion(inputs, staging, spec, buckets, pool, threads, scratch)
        with run, (staging / REJECTS_FILE).open("w", encoding="utf-8") as rejects_out:
            run.read(rejects_out)
            return run.counts, run.finish()


def _over_threshold(max_rejects: int | float | None, rejected: int, lines: int) -> bool:
    if max_rejects is None:
        return False
    if isinstance(max_rejects, float):
        return rejected > max_rejects * lines
    return rejected > max_rejects


class _Conversion:
    """One run. Tables are written while the input is read; each row's id is also spilled with its row
    number, per (action, hash bucket of id). Duplicates, once found (a cheap sort per spill file), are
    dropped by rewriting that table alone.
    """

    def __init__(
        self,
        inputs: list[Source],
        staging: Any,
        spec: TableSpec,
        buckets: int,
        pool: ThreadPoolExecutor,
        ahead: int,
        scratch: Path,
    ) -> None:
        self.inputs, self.staging, self.buckets = inputs, staging, buckets
        self.spec, self.pool, self.ahead, self.scratch = spec, pool, ahead, scratch
        self.schema = output_schema(spec.id_type)
        self.keys = STRING_KEYS if spec.id_type == "string" else INT_KEYS
        self.counts = RunCounts()
        self.spills: dict[tuple[str, int], Path] = {}
        self._spill_files: dict[tuple[str, int], IO[bytes]] = {}
        self._tables: dict[str, TableWriter] = {}
        self._rows: Counter[str] = Counter()  # rows written to each table so far
        self._stack = ExitStack()

    def __enter__(self) -> _Conversion:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _block_calls(self) -> Iterator[tuple[tuple[int, str], Callable[[], ParsedBlock]]]:
        """(source number and name, the call that converts one block) for every block, in input order."""
        for number, source in enumerate(self.inputs):
            for block in read.source_blocks(source.path):
                call = partial(convert_block, block, self.spec, self.buckets, source.job_id)
                yield (number, source.name), call

    def read(self, rejects_out: IO[str]) -> None:
        """Phase 1: parse blocks in the pool, in order: rejects, table rows and spill records."""
        for action in KNOWN_ACTIONS:
            self._table(action)  # empty tables with the schema even when no row has the action
        next_line = [1] * len(self.inputs)
        for (source, name), block in in_order(self.pool, self._block_calls(), self.ahead):
            first_line = next_line[source]
            next_line[source] += block.physical_lines
            self.counts.lines += block.physical_lines - block.blank
            self.counts.blank += block.blank
            self.counts.rejects.update(block.reject_reasons)
            self.counts.notes.update(block.notes)
            self.counts.parse_paths.update(block.parse_paths)
            if block.rejects:
                prefix = f'{{"source":{json.dumps(name)},"line":'
                rejects_out.write("".join(f"{prefix}{first_line + i}{rest}" for i, rest in block.rejects))
            for part in block.parts:
                self._consume(part)
        for writer in self._tables.values():
            writer.flush()

    def _consume(self, part: ActionRows) -> None:
        self.counts.valid += part.table.num_rows
        self._table(part.action).write(part.table)
        self.counts.tables[part.action].merge(part.counts)
        part.keys["row"] += self._rows[part.action]
        self._rows[part.action] += part.table.num_rows
        start = 0
        for bucket, size in enumerate(part.bucket_sizes):
            if size:
                self._spill(part.action, bucket).write(part.keys[start : start + size].data)
                start += size

    def _table(self, action: str) -> TableWriter:
        if action not in self._tables:
            folder = self.staging / table_dir_name(action)
            folder.mkdir(parents=True, exist_ok=True)
            self._tables[action] = TableWriter(folder / PART_FILE, self.schema)
            self._stack.callback(self._tables[action].close)
            self.counts.tables[action] = TableCounts()
        return self._tables[action]

    def _spill(self, action: str, bucket: int) -> IO[bytes]:
        key = (action, bucket)
        if key not in self._spill_files:
            self.spills[key] = self.scratch / f"spill-{len(self.spills):05d}.keys"
            self._spill_files[key] = self._stack.enter_context(self.spills[key].open("wb"))
        return self._spill_files[key]

    def finish(self) -> list[str]:
        """Phase 2: find duplicates bucket by bucket; rewrite only the tables that have any."""
        for spill in self._spill_files.values():
            spill.close()
        for writer in self._tables.values():
            writer.close()
        for action in self._tables:
            files = [path for (spilled, _), path in sorted(self.spills.items()) if spilled == action]
            checks = ((None, partial(duplicate_rows, path, self.keys)) for path in files)
            dropped = np.zeros(0, np.uint8)  # a bit per table row, once a duplicate is found
            for _, rows in in_order(self.pool, checks, self.ahead):
                if len(rows):
                    if not len(dropped):
                        dropped = np.zeros(self._rows[action] // 8 + 1, np.uint8)
                    np.bitwise_or.at(dropped, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
            for path in files:
                path.unlink()
            if len(dropped):
                self._rewrite(action, dropped)
        return list(self._tables)

    def _rewrite(self, action: str, dropped: np.ndarray) -> None:
        """Copy the table without its dropped rows (the bits set in ``dropped``), one row group at a time."""
        folder = self.staging / table_dir_name(action)
        original, rewritten = folder / f".{PART_FILE}.with-duplicates", folder / PART_FILE
        write.move(rewritten, original)
        counts = self.counts.tables[action] = TableCounts()
        writer = TableWriter(rewritten, self.schema)
        with original.open("rb") as stream, writer:
            parquet = pq.ParquetFile(stream)
            first = 0
            for group in range(parquet.num_row_groups):
                rows = parquet.read_row_group(group)
                bits = np.unpackbits(
                    dropped[first // 8 : (first + rows.num_rows) // 8 + 1], bitorder="little"
                )
                keep = bits[first % 8 : first % 8 + rows.num_rows] == 0
                first += rows.num_rows
                rows = rows.filter(pa.array(keep))
                counts.add(rows)
                writer.write(rows)
        write.remove_file(original)

"""Every file behind the sources, batch by batch: read in this thread, validated in a few, in input order."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple, NoReturn

import numpy as np

from airflow_provider_xcompliance.concurrency import WORKERS, in_order
from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.distinct import sorted_hashes
from airflow_provider_xcompliance.ids.formats import READERS, Fmt, detect_format
from airflow_provider_xcompliance.ids.sources import IdFile, IdSources, expand_sources
from airflow_provider_xcompliance.ids.values import DEFAULT_BLOCK_SIZE, BatchCall, IdBatch


class CheckedBatch(NamedTuple):
    """A validated batch and, when asked for, its IDs as sorted hashes (see :mod:`.distinct`)."""

    batch: IdBatch
    hashes: np.ndarray | None


def _batch_calls(
    sources: IdSources, fmt: Fmt | None, id_column: str | None, block_size: int
) -> Iterator[BatchCall]:
    """One call per batch of every file behind ``sources``, in order: reading here, validating in the call.

    An error while reading comes as a last call that raises it, so it is raised after the batches read
    before it, as in a sequential pass.
    """
    files = []
    for path in expand_sources(sources):  # every format is known before the first file is read
        kind, gzipped = detect_format(path, fmt)
        files.append((READERS[kind], IdFile(path, gzipped)))
    try:
        for reader, file in files:
            try:
                yield from reader.read(file, id_column, block_size)
            except (
                OSError,
                EOFError,
                zlib.error,
            ) as exc:  # not found, no permission: others say where
                raise IdSourceError(f"{file.source} cannot be read: {exc}", source=file.source) from exc
    except Exception as exc:  # raised in its turn, by the call below
        yield partial(_raise, exc)


def _raise(exc: Exception) -> NoReturn:
    raise exc


def _check(call: BatchCall, hashed: bool) -> CheckedBatch:
    batch = call()
    return CheckedBatch(batch, sorted_hashes(batch) if hashed else None)


def checked_batches(
    sources: IdSources, fmt: Fmt | None, id_column: str | None, block_size: int, *, hashed: bool
) -> Iterator[CheckedBatch]:
    """Each batch validated (and with ``hashed``, hashed) in the worker threads, yielded in input order.

    At most ``2 * WORKERS + 1`` batches are in flight: enough to keep the threads busy while this thread
    reads and writes, few enough to bound memory.
    """
    calls = _batch_calls(sources, fmt, id_column, block_size)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="xcompliance-ids") as pool:
        work = ((None, partial(_check, call, hashed)) for call in calls)
        for _, checked in in_order(pool, work, 2 * WORKERS):
            yield checked


def iter_id_batches(
    sources: IdSources,
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[IdBatch]:
    """Validated IDs of every file behind ``sources``, batch by batch, with provenance of the invalid ones."""
    for checked in checked_batches(sources, fmt, id_column, block_size, hashed=False):
        yield checked.batch

"""The two passes users call: :func:`validate_ids` (counts only) and :func:`prepare_ids` (chunk files)."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Literal, TypeAlias

from airflow_provider_xcompliance.ids.batches import CheckedBatch, checked_batches
from airflow_provider_xcompliance.ids.chunks import (
    CHUNK_PREFIX,
    ChunkWriter,
    PreparedIds,
    discarded_on_error,
    rejects_file,
)
from airflow_provider_xcompliance.ids.counts import IdCounts, RunningCounts
from airflow_provider_xcompliance.ids.distinct import DEFAULT_DEDUPE_MEMORY_IDS, Deduplicator
from airflow_provider_xcompliance.ids.formats import Fmt
from airflow_provider_xcompliance.ids.sources import IdSources
from airflow_provider_xcompliance.ids.values import DEFAULT_BLOCK_SIZE

log = logging.getLogger(__name__)

OnInvalid: TypeAlias = Literal["fail", "skip"]


class _Pass:
    """One pass's counts and distinct IDs. Under ``on_invalid="fail"`` the pass goes on reading after the
    first invalid value (to report the total) but keeps no more IDs: they will not be used."""

    def __init__(self, on_invalid: OnInvalid, distinct: Deduplicator) -> None:
        self.counts = RunningCounts()
        self.distinct = distinct
        self.on_invalid = on_invalid

    @property
    def failing(self) -> bool:
        return bool(self.counts.invalid) and self.on_invalid == "fail"

    def keep(self, checked: CheckedBatch) -> bool:
        """Count ``checked``; True when its IDs go on to the output."""
        self.counts.add(checked.batch)
        if checked.hashes is None or self.failing:
            return False
        self.distinct.add(checked.hashes)
        return True

    def raise_if_failing(self) -> None:
        if self.failing:
            raise self.counts.error()


def _check_options(on_invalid: str, max_ids_per_job: int | None = None) -> None:
    if on_invalid not in ("fail", "skip"):
        raise ValueError(f"on_invalid must be 'fail' or 'skip', not {on_invalid!r}")
    if max_ids_per_job is not None and max_ids_per_job < 1:
        raise ValueError(f"max_ids_per_job must be a positive number, not {max_ids_per_job}")


def validate_ids(
    sources: IdSources,
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    on_invalid: OnInvalid = "fail",
    dedupe_memory_ids: int = DEFAULT_DEDUPE_MEMORY_IDS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> IdCounts:
    """Check ``sources`` and count them; raise :class:`InvalidIdsError` on invalid values unless
    ``on_invalid="skip"``. ``written`` is then what :func:`prepare_ids` would write without dedupe.
    Nothing is written but the temporary spill files of the exact duplicate count, beyond its memory bound."""
    _check_options(on_invalid)
    with tempfile.TemporaryDirectory(prefix="xcompliance-dedupe-") as spill:
        run = _Pass(on_invalid, Deduplicator(Path(spill), dedupe_memory_ids))
        for checked in checked_batches(sources, fmt, id_column, block_size, hashed=True):
            run.keep(checked)
        run.raise_if_failing()
        distinct = run.distinct.count()
    return run.counts.final(distinct, run.counts.valid)


def _fresh_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir``, created, without the chunk files of an earlier call: the folder holds one copy."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{CHUNK_PREFIX}[0-9]*.txt*"):
        stale.unlink()
    return out


def _rejects_path(
    out: Path, on_invalid: OnInvalid, rejects_path: str | os.PathLike[str] | None
) -> Path | None:
    if on_invalid != "skip":
        return None
    return Path(rejects_path) if rejects_path is not None else out / "rejects.csv"


def prepare_ids(
    sources: IdSources,
    out_dir: str | os.PathLike[str],
    *,
    fmt: Fmt | None = None,
    id_column: str | None = None,
    on_invalid: OnInvalid = "fail",
    dedupe: bool = False,
    max_ids_per_job: int | None = None,
    rejects_path: str | os.PathLike[str] | None = None,
    dedupe_memory_ids: int = DEFAULT_DEDUPE_MEMORY_IDS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> PreparedIds:
    """Validate and normalise ``sources`` into local ID files, one per job, ready to upload.

    ``on_invalid="fail"`` reads everything (to report the total), then raises :class:`InvalidIdsError`
    and leaves no chunk file behind; an unreadable source raises ``IdSourceError`` in either mode.
    ``on_invalid="skip"`` writes each invalid value to ``rejects_path`` (default ``out_dir/rejects.csv``;
    see :class:`~airflow_provider_xcompliance.ids.chunks.RejectsFile` for the columns) and goes on.
    ``max_ids_per_job`` splits the output into chunks of that many IDs (the last one smaller).
    Chunk files left in ``out_dir`` by an earlier call are removed first, so the folder holds one copy.
    """
    _check_options(on_invalid, max_ids_per_job)
    out = _fresh_out_dir(out_dir)
    rejects = _rejects_path(out, on_invalid, rejects_path)
    with ExitStack() as stack:
        spill = stack.enter_context(tempfile.TemporaryDirectory(prefix=".dedupe-", dir=out))
        run = _Pass(on_invalid, Deduplicator(Path(spill), dedupe_memory_ids))
        rejected = stack.enter_context(rejects_file(rejects))
        writer = stack.enter_context(discarded_on_error(ChunkWriter(out, max_ids_per_job)))
        for checked in checked_batches(sources, fmt, id_column, block_size, hashed=True):
            if rejected is not None:
                rejected.write(checked.batch.invalid)
            if run.keep(checked) and not dedupe:
                writer.write(checked.batch.ids, checked.batch.count)
        run.raise_if_failing()
        for values in run.distinct.drain(ids=dedupe):  # counted in any case; with dedupe, the output
            writer.write_values(values)
        chunks = writer.close()
    counts = run.counts.final(run.distinct.unique, sum(chunk.ids for chunk in chunks))
    _log_counts(counts, len(chunks))
    return PreparedIds(chunks, counts, rejects)


def _log_counts(counts: IdCounts, files: int) -> None:
    log.info(
        "IDs: %s read, %s blank, %s valid, %s invalid, %s duplicates, %s written in %s file(s)",
        counts.read,
        counts.blank,
        counts.valid,
        counts.invalid,
        counts.duplicates,
        counts.written,
        files,
    )

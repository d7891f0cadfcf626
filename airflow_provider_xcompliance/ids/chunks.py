"""What :func:`~airflow_provider_xcompliance.ids.prepare_ids` writes: chunk files, their manifest, rejects."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np

from airflow_provider_xcompliance.ids.counts import IdCounts
from airflow_provider_xcompliance.ids.values import InvalidId, ids_text

CHUNK_PREFIX = "ids-"
_SLICE = 1 << 20
"""IDs formatted at a time when writing deduplicated values: the temporaries stay small."""


@dataclass(frozen=True)
class IdChunk:
    """One normalised ID file, for one job. ``index`` is 0-based and follows the order of the sources."""

    index: int
    path: Path
    ids: int
    size: int


@dataclass(frozen=True)
class PreparedIds:
    """The result of :func:`prepare_ids`. No chunk at all when no valid ID was found."""

    chunks: tuple[IdChunk, ...]
    counts: IdCounts
    rejects_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [chunk.path for chunk in self.chunks]

    def save(self, path: Path) -> None:
        """Write a manifest beside the chunks, so a resumed task reuses them instead of validating again."""
        chunks = [{**asdict(chunk), "path": str(chunk.path)} for chunk in self.chunks]
        rejects = str(self.rejects_path) if self.rejects_path else None
        body = {"chunks": chunks, "counts": self.counts.as_dict(), "rejects_path": rejects}
        path.write_text(json.dumps(body))

    @classmethod
    def load(cls, path: Path) -> PreparedIds:
        """Read a manifest written by :meth:`save` (counts this version does not know, such as the
        ``duplicates_exact`` flag of earlier versions, are dropped: a resumed task must not fail on them)."""
        body = json.loads(path.read_text())
        chunks = tuple(IdChunk(**{**chunk, "path": Path(chunk["path"])}) for chunk in body["chunks"])
        rejects = Path(body["rejects_path"]) if body["rejects_path"] else None
        known = {name: body["counts"][name] for name in IdCounts.__dataclass_fields__}
        return cls(chunks, IdCounts(**known), rejects)


class ChunkWriter:
    """Writes normalised IDs into ``ids-00000.txt``, ``ids-00001.txt``... of at most ``max_ids`` each.

    Each file is written under a ``.part`` name and renamed when full, so a listed chunk is complete.
    """

    def __init__(self, out_dir: Path, max_ids: int | None) -> None:
        self.out_dir = out_dir
        self.max_ids = max_ids
        self.chunks: list[IdChunk] = []
        self.stream: IO[bytes] | None = None
        self.in_chunk = 0
        self.size = 0

    def _path(self, index: int) -> Path:
        return self.out_dir / f"{CHUNK_PREFIX}{index:05d}.txt"

    def _finish(self) -> None:
        if self.stream is None:
            return
        self.stream.close()
        self.stream = None
        index = len(self.chunks)
        final = self._path(index)
        os.replace(final.with_name(final.name + ".part"), final)
        self.chunks.append(IdChunk(index, final, self.in_chunk, self.size))

    def write(self, ids: bytes, count: int) -> None:
        while count:
            if self.stream is None:
                part = self._path(len(self.chunks))
                self.stream = part.with_name(part.name + ".part").open("wb")
                self.in_chunk = self.size = 0
            room = count if self.max_ids is None else min(count, self.max_ids - self.in_chunk)
            if room == count:
                head, ids = ids, b""
            else:
                cut = int(np.flatnonzero(np.frombuffer(ids, np.uint8) == 10)[room - 1]) + 1
                head, ids = ids[:cut], ids[cut:]
            self.stream.write(head)
            self.in_chunk += room
            self.size += len(head)
            count -= room
            if self.max_ids is not None and self.in_chunk == self.max_ids:
                self._finish()

    def write_values(self, values: np.ndarray) -> None:
        """Write uint64 IDs, formatted a slice at a time."""
        for start in range(0, len(values), _SLICE):
            piece = values[start : start + _SLICE]
            self.write(ids_text(piece), len(piece))

    def close(self) -> tuple[IdChunk, ...]:
        self._finish()
        return tuple(self.chunks)

    def discard(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
            part = self._path(len(self.chunks))
            part.with_name(part.name + ".part").unlink(missing_ok=True)
        for chunk in self.chunks:
            chunk.path.unlink(missing_ok=True)
        self.chunks = []


@contextmanager
def discarded_on_error(writer: ChunkWriter) -> Iterator[ChunkWriter]:
    """``writer``, whose chunk files are all removed if the block raises: no partial output is ever listed."""
    try:
        yield writer
    except BaseException:
        writer.discard()
        raise


class RejectsFile:
    """CSV ``source,line,value,reason`` (header first), UTF-8: what the user fixes the source from."""

    def __init__(self, stream: IO[str]) -> None:
        self._rows = csv.writer(stream)
        self._rows.writerow(["source", "line", "value", "reason"])

    def write(self, invalid: tuple[InvalidId, ...]) -> None:
        self._rows.writerows((i.source, i.line, i.value, i.reason) for i in invalid)


@contextmanager
def rejects_file(path: Path | None) -> Iterator[RejectsFile | None]:
    """The rejects file at ``path`` (its folder created), or None when there is none to write."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        yield RejectsFile(out)

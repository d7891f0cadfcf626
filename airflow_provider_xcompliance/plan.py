"""The chunk plan of a run: how its IDs were split into jobs, stored beside its results.

A retried or resumed try may land on another worker, whose disk holds none of the staged ID files. The plan
(each chunk's size and SHA-256, the settings that decided them, and a fingerprint of the source files) lets
that try carry on without reading the source again, and tells it when the source changed since: chunk N of a
new read would then not be the chunk N whose job already ran. Free of Airflow imports, like the ID code:
object storage is reached through :mod:`~airflow_provider_xcompliance.storage`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from airflow_provider_xcompliance import paths, storage
from airflow_provider_xcompliance.exceptions import IdSourceError, SourceChangedError
from airflow_provider_xcompliance.ids import (
    IdChunk,
    IdCounts,
    IdSources,
    PreparedIds,
    SourceFile,
    source_fingerprint,
)

log = logging.getLogger(__name__)

PLAN_VERSION = 1
ReadIds = Callable[[Path], PreparedIds]
"""Reads, validates and chunks the source into a local folder (the operator's ``prepare_ids`` call)."""


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk as planned: what a copy, or a new read of the same source, must reproduce."""

    file: str
    ids: int
    size: int
    sha256: str


@dataclass(frozen=True)
class ChunkPlan:
    """A run's chunks, their counts, the settings that decided them and the source files they came from."""

    sources: tuple[SourceFile, ...]
    options: Mapping[str, Any]
    counts: IdCounts
    chunks: tuple[PlannedChunk, ...]

    @classmethod
    def of(
        cls,
        prepared: PreparedIds,
        digests: Sequence[str],
        sources: tuple[SourceFile, ...],
        options: Mapping[str, Any],
    ) -> ChunkPlan:
        chunks = tuple(
            PlannedChunk(chunk.path.name, chunk.ids, chunk.size, digest)
            for chunk, digest in zip(prepared.chunks, digests, strict=True)
        )
        return cls(sources, dict(options), prepared.counts, chunks)

    def prepared_at(self, paths: Sequence[Path]) -> PreparedIds:
        """The planned chunks as the ID files ``paths`` (which may not exist yet on this worker)."""
        chunks = tuple(
            IdChunk(index, path, chunk.ids, chunk.size)
            for index, (path, chunk) in enumerate(zip(paths, self.chunks, strict=True))
        )
        return PreparedIds(chunks, self.counts)

    def to_json(self) -> str:
        body = {
            "version": PLAN_VERSION,
            "sources": [asdict(source) for source in self.sources],
            "options": dict(self.options),
            "counts": self.counts.as_dict(),
            "chunks": [asdict(chunk) for chunk in self.chunks],
        }
        return json.dumps(body, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ChunkPlan:
        body = json.loads(text)
        if body.get("version") != PLAN_VERSION:
            raise ValueError(f"Unknown chunk plan version {body.get('version')!r}")
        return cls(
            tuple(SourceFile(**source) for source in body["sources"]),
            body["options"],
            IdCounts(**body["counts"]),
            tuple(PlannedChunk(**chunk) for chunk in body["chunks"]),
        )

    def mismatch(self, fresh: PreparedIds) -> str | None:
        """How a new read of the source differs from the plan (None: the same chunks, byte for byte)."""
        now, planned = [c.ids for c in fresh.chunks], [c.ids for c in self.chunks]
        if [(c.path.name, c.size) for c in fresh.chunks] != [(c.file, c.size) for c in self.chunks]:
            return f"it now gives {_sizes(now)} against {_sizes(planned)}"
        for chunk, planned_chunk in zip(fresh.chunks, self.chunks, strict=True):
            if storage.sha256(chunk.path) != planned_chunk.sha256:
                return f"chunk {chunk.index + 1} now holds other IDs"
        return None


@dataclass(frozen=True)
class StoredPlan:
    """A run's plan and staged ID files beside its results, named ``<prefix>.plan.json`` and
    ``<prefix>.ids-00000.txt``..., with ``staging`` the worker's local folder for the chunks; ``logger`` is
    the task's, so the lines land in its log.

    A local destination keeps the only copy of the chunks (they are moved there and uploaded from there); an
    object-storage one gets a copy, and each worker fetches the chunks it uploads into ``staging``.
    """

    prefix: str
    sources: IdSources
    options: Mapping[str, Any]
    staging: Path
    logger: Any = log

    @property
    def uri(self) -> str:
        return f"{self.prefix}.plan.json"

    def staged(self, chunk: IdChunk) -> str:
        return self._staged(chunk.index)

    def _staged(self, index: int) -> str:
        return f"{self.prefix}.ids-{index:05d}.txt"

    @property
    def local(self) -> bool:
        return paths.is_local(self.prefix)

    def placed(self, plan: ChunkPlan) -> PreparedIds:
        """The planned chunks where this worker uploads them from: the destination's own files when local."""
        if self.local:
            homes = [paths.as_path(self._staged(index)) for index in range(len(plan.chunks))]
        else:
            homes = [self.staging / chunk.file for chunk in plan.chunks]
        return plan.prepared_at(homes)

    def fingerprint(self) -> tuple[SourceFile, ...]:
        return source_fingerprint(self.sources)

    def read(self) -> ChunkPlan | None:
        text = storage.read_text(self.uri)
        return None if text is None else ChunkPlan.from_json(text)

    def load(self, read_ids: ReadIds) -> PreparedIds | None:
        """The planned chunks (None before the first read), once the source is known to be unchanged.

        Metadata decides when it can: a source whose size or version changed is read again, and its chunks
        are compared with the plan's digests (a rewrite with the same IDs goes on; other IDs fail).
        """
        plan = self.read()
        if plan is None:
            return None
        changes = option_changes(plan.options, self.options)
        if changes:
            raise self._changed(plan, changes, "restore the settings, or start a new DAG run")
        try:
            current = self.fingerprint()
        except (FileNotFoundError, IdSourceError) as error:
            raise self._changed(plan, [str(error)], "restore the source, or start a new DAG run") from error
        changes = source_changes(plan.sources, current)
        if changes:
            self.logger.warning(
                "The ID source changed since the plan (%s): comparing its IDs", "; ".join(changes)
            )
            differs = plan.mismatch(read_ids(self.staging))
            if differs:
                raise self._changed(plan, [*changes, differs], "restore the source, or start a new DAG run")
            storage.write_text(self.uri, replace(plan, sources=current).to_json())
        return self.placed(plan)

    def save(self, prepared: PreparedIds, fingerprint: tuple[SourceFile, ...]) -> PreparedIds:
        """Stage every chunk beside the results, then the plan (which makes them count); the chunks placed."""
        digests = [self._stage(chunk) for chunk in prepared.chunks]
        plan = ChunkPlan.of(prepared, digests, fingerprint, self.options)
        storage.write_text(self.uri, plan.to_json())
        return self.placed(plan)

    def _stage(self, chunk: IdChunk) -> str:
        if not self.local:
            return storage.copy(chunk.path, self.staged(chunk))
        digest = storage.sha256(chunk.path)
        _move(chunk.path, paths.as_path(self.staged(chunk)))
        return digest

    def restage(self, chunk: IdChunk, read_ids: ReadIds) -> None:
        """Bring one chunk's IDs to this worker: its staged copy, or a new read checked against the plan."""
        plan = self.read()
        if plan is None:
            raise SourceChangedError(f"The chunk plan {self.uri} disappeared during the task run")
        staged = self.staged(chunk)
        if not self.local and storage.exists(staged):
            self.logger.info("Chunk %d: IDs fetched from %s", chunk.index + 1, staged)
            if storage.copy(staged, str(chunk.path)) != plan.chunks[chunk.index].sha256:
                raise SourceChangedError(f"The staged IDs {staged} are not the ones planned in {self.uri}")
            return
        self.logger.info(
            "Chunk %d: no staged IDs at the destination; reading the source again", chunk.index + 1
        )
        fresh = read_ids(self.staging)
        differs = plan.mismatch(fresh)
        if differs:
            raise self._changed(plan, [differs], "start a new DAG run")
        _move(fresh.chunks[chunk.index].path, chunk.path)

    def finish(self, prepared: PreparedIds) -> None:
        """Every chunk is done: the staged copies go, the plan stays (a clear finds the run complete)."""
        for chunk in prepared.chunks:
            storage.remove(self.staged(chunk))

    def _changed(self, plan: ChunkPlan, changes: Sequence[str], advice: str) -> SourceChangedError:
        return SourceChangedError(
            f"The IDs of this task run were split into {len(plan.chunks)} chunk(s) by an earlier try "
            f"(plan {self.uri}), and since then {'; '.join(changes)}. Resuming would mix chunks of two "
            f"versions: {advice}."
        )


def source_changes(planned: tuple[SourceFile, ...], current: tuple[SourceFile, ...]) -> list[str]:
    """What differs between two fingerprints, one phrase per file: size, version, gone or new."""
    before = {source.uri: source for source in planned}
    now = {source.uri: source for source in current}
    changes = [f"{uri} is gone" for uri in before if uri not in now]
    changes += [f"{uri} is new" for uri in now if uri not in before]
    for uri in before.keys() & now.keys():
        old, new = before[uri], now[uri]
        if old.size != new.size:
            changes.append(f"{uri} changed size ({old.size} -> {new.size} bytes)")
        elif old.version != new.version:
            changes.append(f"{uri} was rewritten ({old.version} -> {new.version})")
    return sorted(changes)


def option_changes(planned: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Settings that decide the chunks and differ from the plan's, as ``name a -> b``."""
    names = sorted(planned.keys() | current.keys())
    return [
        f"{name} changed ({planned.get(name)!r} -> {current.get(name)!r})"
        for name in names
        if planned.get(name) != current.get(name)
    ]


def _move(source: Path, target: Path) -> None:
    if source != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)


def _sizes(ids: list[int]) -> str:
    return f"{len(ids)} chunk(s) of {ids} IDs"

"""The files behind the ID sources (files, folders, globs; local or object storage): opened, fingerprinted."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, TypeAlias

from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.paths import OpenablePath, as_path, is_local

IdSource: TypeAlias = "str | os.PathLike[str] | OpenablePath"
IdSources: TypeAlias = "IdSource | Sequence[IdSource]"

_GLOB_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class IdFile:
    """One file to read IDs from; ``gzipped`` when its name ends in ``.gz``."""

    path: OpenablePath
    gzipped: bool

    @property
    def source(self) -> str:
        """How messages, batches and rejects name the file."""
        return str(self.path)

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The file's bytes, decompressed when gzipped."""
        with self.path.open("rb") as raw:
            if not self.gzipped:
                yield raw
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:  # type: ignore[arg-type]
                yield unzipped  # type: ignore[misc]


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _glob(pattern: IdSource) -> list[OpenablePath]:
    """Files matching ``pattern``: the part before the first wildcard is the folder searched.

    A path object (an ``ObjectStoragePath`` with its connection) stays one, so its matches keep it too.
    """
    base: Any = as_path(pattern)
    tail: list[str] = []
    while _has_magic(base) and base.parent != base:
        tail.append(base.name)
        base = base.parent
    matches = sorted((p for p in base.glob("/".join(reversed(tail))) if p.is_file()), key=str)
    if not matches:
        raise IdSourceError(f"No ID files match {str(pattern)!r}", source=str(pattern))
    return matches


def _has_magic(item: object) -> bool:
    return isinstance(item, str | os.PathLike | OpenablePath) and bool(
        _GLOB_MAGIC.search(str(item).split("://", 1)[-1])
    )


def _folder_files(path: Any) -> list[OpenablePath]:
    """Every file below ``path``, sorted, but hidden ones and ``_``-prefixed markers (``_SUCCESS``)."""
    found = sorted(
        (
            p
            for p in path.rglob("*")
            if p.is_file() and not any(_hidden(n) for n in p.relative_to(path).parts)
        ),
        key=str,
    )
    if not found:
        raise IdSourceError(f"No ID files in folder {str(path)!r}", source=str(path))
    return found


def expand_sources(sources: IdSources) -> list[OpenablePath]:
    """The files behind ``sources``, in a deterministic order.

    A string with ``*``, ``?`` or ``[`` is a glob; a folder means every file below it, sorted by path,
    except hidden ones and ``_``-prefixed markers such as ``_SUCCESS``.
    """
    items = (
        [sources] if isinstance(sources, str | os.PathLike) or not isinstance(sources, Sequence) else sources
    )
    files: list[OpenablePath] = []
    for item in items:
        if _has_magic(item):
            files.extend(_glob(item))
            continue
        path: Any = as_path(item)
        files.extend(_folder_files(path) if path.is_dir() else [path])
    return files


@dataclass(frozen=True)
class SourceFile:
    """One source file as it was when its IDs were read: enough to tell later that it changed.

    ``version`` is the object store's ETag where there is one (a rewrite with the same bytes keeps it),
    else the modification time in nanoseconds.
    """

    uri: str
    size: int
    version: str


def source_fingerprint(sources: IdSources) -> tuple[SourceFile, ...]:
    """The files behind ``sources`` with their sizes and versions, from listings and metadata only."""
    return tuple(_source_file(path) for path in expand_sources(sources))


def _source_file(path: Any) -> SourceFile:
    if is_local(path):
        stat = path.stat()
        return SourceFile(str(path), stat.st_size, f"modified {stat.st_mtime_ns}")
    path.fs.invalidate_cache(path.path)  # a listing this process cached earlier must not hide a rewrite
    info = path.fs.info(path.path)
    etag = info.get("ETag") or info.get("etag")
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
    version = f"ETag {etag}" if etag else f"modified {modified}"
    return SourceFile(str(path), int(info["size"]), version)

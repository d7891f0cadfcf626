"""Local-or-object-storage file helpers for uploads and downloads (which is which: :func:`paths.is_local`).

Sources and destinations are plain local paths or ``ObjectStoragePath`` URIs (``file://``, ``s3://``,
``gs://``...). A destination is written atomically: it either holds the complete file or does not exist, so
a half-downloaded result file can never be mistaken for a complete one downstream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_xcompliance.paths import is_local, local_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

COPY_CHUNK = 8 * 1024 * 1024


def object_path(location: str | os.PathLike[str]) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(os.fspath(location))


def location(uri: str | os.PathLike[str]) -> Path | ObjectStoragePath:
    """A local file as ``Path``; else ``ObjectStoragePath``, so Airflow connections supply credentials."""
    return local_path(uri) if is_local(uri) else object_path(uri)


def id_sources(ids: Any) -> Any:
    """ID sources with each object-storage URI as ``ObjectStoragePath`` (so its Airflow connection, as in
    ``s3://aws_conn@bucket/ids/``, supplies credentials); local paths and other values stay as they are."""
    if isinstance(ids, str | os.PathLike):
        return ids if is_local(ids) else object_path(ids)
    if isinstance(ids, list | tuple):
        return [id_sources(item) for item in ids]
    return ids


def source_size(source: str | os.PathLike[str]) -> int:
    """Size in bytes of a source file (needed up front for resumable uploads and progress)."""
    if is_local(source):
        return local_path(source).stat().st_size
    return int(object_path(source).size())


@contextlib.contextmanager
def open_source(source: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a source for binary, seekable reading (seekable so a resumable upload can resume mid-file)."""
    if is_local(source):
        with local_path(source).open("rb") as handle:
            yield handle
    else:
        with object_path(source).open("rb") as handle:
            yield handle


def read_text(uri: str) -> str | None:
    """A small text file's content (a plan, a manifest), or None when it does not exist."""
    path = location(uri)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_text(destination: str, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_writer(destination) as writer:
        writer.file.write(text.encode("utf-8"))


def copy(source: str | os.PathLike[str], destination: str) -> str:
    """Stream ``source`` to ``destination`` (atomically), either side local or object storage.

    Returns the SHA-256 of the bytes copied, computed on the way (no second read).
    """
    with open_source(source) as reader, atomic_writer(destination) as writer:
        return _pump(reader, writer.file.write)


def sha256(source: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, streamed."""
    with open_source(source) as reader:
        return _pump(reader, lambda _: None)


def _pump(reader: IO[bytes], write: Callable[[bytes], Any]) -> str:
    digest = hashlib.sha256()
    while block := reader.read(COPY_CHUNK):
        digest.update(block)
        write(block)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    return location(uri).exists()


def remove(uri: str) -> None:
    """Delete a file if it exists."""
    if is_local(uri):
        local_path(uri).unlink(missing_ok=True)
    elif (path := object_path(uri)).exists():
        path.unlink()


def resolve_destination(destination: str | os.PathLike[str], default_name: str) -> str:
    """The destination file: ``destination`` itself, or ``default_name`` inside it when it is a folder.

    A folder is a location ending in ``/`` or an existing directory.
    """
    text = os.fspath(destination)
    if text.endswith("/"):
        return text + default_name
    if is_local(text):
        path = local_path(text)
        if path.is_dir():
            return str(path / default_name) if not text.startswith("file://") else f"{text}/{default_name}"
        return text
    if object_path(text).is_dir():
        return f"{text}/{default_name}"
    return text


def _create_beside(final: Path) -> tuple[int, str]:
    """A new hidden temporary file beside ``final``, with the permissions the umask gives any new file.

    ``mkstemp`` would create it 0600, and the rename would carry that onto the output, so a reader running
    as another user could not open results that every other file of the run lets it read.
    """
    temp = final.with_name(f".{final.name}.{secrets.token_hex(8)}.part")
    return os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), str(temp)


class AtomicWriter:
    """A temporary file that becomes the destination on :meth:`commit` and vanishes otherwise.

    Local destinations get a hidden temporary file in the same folder (so the final rename is atomic on one
    filesystem); object-storage destinations get a local temporary file uploaded in one go on commit (object
    stores publish an object only when its upload completes, which gives the same all-or-nothing view).
    """

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self._local = is_local(destination)
        if self._local:
            final = local_path(destination)
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = _create_beside(final)
        else:  # a private scratch copy: only the uploaded object is the output
            fd, temp = tempfile.mkstemp(prefix="xcompliance-", suffix=".part")
        self.temp_path = Path(temp)
        self.file: IO[bytes] = os.fdopen(fd, "w+b")

    @property
    def size(self) -> int:
        """Bytes written so far (where a resumed download continues)."""
        return self.file.tell()

    def restart(self) -> None:
        """Drop what was written, for a retry that must start from the first byte."""
        self.file.seek(0)
        self.file.truncate()

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self._local:
            os.replace(self.temp_path, local_path(self.destination))
        else:
            try:
                with self.temp_path.open("rb") as src, object_path(self.destination).open("wb") as dst:
                    shutil.copyfileobj(src, dst, COPY_CHUNK)
            finally:
                self.temp_path.unlink(missing_ok=True)

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.temp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_writer(destination: str) -> Iterator[AtomicWriter]:
    """Write ``destination`` atomically: committed when the block succeeds, discarded when it raises."""
    writer = AtomicWriter(destination)
    try:
        yield writer
    except BaseException:
        writer.discard()
        raise
    writer.commit()

"""Local-or-object-storage file helpers for uploads and downloads (which is which: :func:`paths.is_local`;
the path objects: :func:`paths.as_path`).

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
from typing import IO, Any

from airflow_provider_xcompliance.paths import as_path, is_local

COPY_CHUNK = 8 * 1024 * 1024


def source_size(source: str | os.PathLike[str]) -> int:
    """Size in bytes of a source file (needed up front for resumable uploads and progress)."""
    path = as_path(source)
    return int(path.stat().st_size) if is_local(path) else int(path.size())


@contextlib.contextmanager
def open_source(source: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a source for binary, seekable reading (seekable so a resumable upload can resume mid-file)."""
    with as_path(source).open("rb") as handle:
        yield handle


def read_text(uri: str) -> str | None:
    """A small text file's content (a plan, a manifest), or None when it does not exist."""
    path = as_path(uri)
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
    return bool(as_path(uri).exists())


def remove(uri: str) -> None:
    """Delete a file if it exists."""
    path = as_path(uri)
    if is_local(path):
        path.unlink(missing_ok=True)
    elif path.exists():
        path.unlink()


def resolve_destination(destination: str | os.PathLike[str], default_name: str) -> str:
    """The destination file: ``destination`` itself, or ``default_name`` inside it when it is a folder.

    A folder is a location ending in ``/`` or an existing directory.
    """
    text = os.fspath(destination)
    if text.endswith("/"):
        return text + default_name
    path = as_path(text)
    if not path.is_dir():
        return text
    if is_local(text) and not text.startswith("file://"):  # a file:// destination stays a URI
        return str(path / default_name)
    return f"{text}/{default_name}"


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
            final = as_path(destination)
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
            os.replace(self.temp_path, as_path(self.destination))
        else:
            try:
                with self.temp_path.open("rb") as src, as_path(self.destination).open("wb") as dst:
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

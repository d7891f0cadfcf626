"""The one "local or object storage?" decision (:func:`is_local`), and the one way to turn a user's path or
URI into the path object the package works with (:func:`as_path`).

Local paths and ``file://`` (or ``local://``) URIs become ``pathlib.Path``: what memory maps, pyarrow's native
readers and atomic renames need. Other URIs become Airflow's ``ObjectStoragePath``, so the connection named in
the URI (``s3://aws_lake@bucket/ids/``; without one, the filesystem's default) supplies the credentials.
Path objects with ``open()`` (``ObjectStoragePath``, ``upath.UPath``) are used as they are, a local one as
``pathlib.Path``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import IO, Any, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote, urlparse

__all__ = ["OpenablePath", "PathInput", "as_path", "is_local"]

_LOCAL_SCHEMES = ("file", "local")


@runtime_checkable
class OpenablePath(Protocol):
    """A path with ``open()``: ``pathlib.Path``, ``upath.UPath``, Airflow's ``ObjectStoragePath``."""

    def open(self, mode: str = ...) -> IO[Any]: ...


PathInput: TypeAlias = "str | os.PathLike[str] | OpenablePath"


def is_local(location: PathInput) -> bool:
    """True for plain paths, ``file://`` and ``local://`` URIs and local path objects: the local route."""
    if isinstance(location, str):
        return "://" not in location or urlparse(location).scheme in _LOCAL_SCHEMES
    protocol = getattr(location, "protocol", None)
    if protocol is not None:  # upath.UPath, ObjectStoragePath (an older UPath is a PurePath too)
        return protocol in _LOCAL_SCHEMES
    return isinstance(location, os.PathLike) and is_local(os.fspath(location))


def as_path(value: PathInput) -> Any:
    """``pathlib.Path`` for a local location, ``ObjectStoragePath`` for an object-storage URI, else as is."""
    if isinstance(value, str):
        if is_local(value):
            return Path(unquote(urlparse(value).path)) if "://" in value else Path(value)
        from airflow.sdk import ObjectStoragePath  # only object storage needs Airflow's paths and connections

        return ObjectStoragePath(value)
    # Before universal-pathlib 0.3 an object-storage UPath is a PurePath too: its protocol decides first.
    if getattr(value, "protocol", None) and isinstance(value, OpenablePath):
        return Path(str(value.path)) if is_local(value) else value  # type: ignore[attr-defined]
    if isinstance(value, PurePath) or not isinstance(value, OpenablePath):
        if isinstance(value, os.PathLike):
            return as_path(os.fspath(value))
        raise TypeError(f"Not a path: {value!r}")
    return value

"""The one "local or object storage?" decision, and one way to turn a location into a path object.

Local paths and ``file://`` (or ``local://``) URIs take the local route: ``pathlib.Path``, fast and
dependency-free. Other URIs become ``upath.UPath`` (fsspec); path objects with ``open()``
(``upath.UPath``, Airflow's ``ObjectStoragePath``) are used as they are, a local one as ``pathlib.Path``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import IO, Any, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote, urlparse

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


def local_path(location: str | os.PathLike[str]) -> Path:
    """The filesystem path of a local location (``file://`` and ``local://`` URIs included)."""
    text = os.fspath(location)
    return Path(unquote(urlparse(text).path)) if "://" in text else Path(text)


def as_path(value: PathInput) -> Any:
    """``pathlib.Path`` for local paths and ``file://`` URIs, ``upath.UPath`` for other URIs, else as is."""
    if isinstance(value, str):
        if is_local(value):
            return local_path(value)
        from upath import UPath  # only needed for object storage

        return UPath(value)
    # Before universal-pathlib 0.3 an object-storage UPath is a PurePath too: its protocol decides first.
    if getattr(value, "protocol", None) and isinstance(value, OpenablePath):
        return Path(str(value.path)) if is_local(value) else value  # type: ignore[attr-defined]
    if isinstance(value, PurePath) or not isinstance(value, OpenablePath):
        if isinstance(value, os.PathLike):
            return Path(os.fspath(value))
        raise TypeError(f"Not a path: {value!r}")
    return value

"""One way to turn a source or destination into a path object, for the Airflow-free data modules.

Local paths and ``file://`` URIs become ``pathlib.Path`` (fast, dependency-free local I/O); other URIs
become ``upath.UPath`` (fsspec); path objects with ``open()`` (``upath.UPath``, Airflow's
``ObjectStoragePath``) are used as they are, a local one as ``pathlib.Path``.
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


def as_path(value: PathInput) -> Any:
    """``pathlib.Path`` for local paths and ``file://`` URIs, ``upath.UPath`` for other URIs, else as is."""
    if isinstance(value, str):
        if "://" not in value:
            return Path(value)
        parsed = urlparse(value)
        if parsed.scheme in _LOCAL_SCHEMES:
            return Path(unquote(parsed.path))
        from upath import UPath  # only needed for object storage

        return UPath(value)
    if isinstance(value, PurePath) or not isinstance(value, OpenablePath):
        if isinstance(value, os.PathLike):
            return Path(os.fspath(value))
        raise TypeError(f"Not a path: {value!r}")
    if getattr(value, "protocol", None) in _LOCAL_SCHEMES:
        return Path(str(value.path))  # type: ignore[attr-defined]
    return value

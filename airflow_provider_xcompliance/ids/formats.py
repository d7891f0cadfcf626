"""The registry of ID file formats: a new format is one reader function and one line in :data:`READERS`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from airflow_provider_xcompliance.exceptions import IdSourceError
from airflow_provider_xcompliance.ids.csv_files import read_csv
from airflow_provider_xcompliance.ids.parquet_files import read_parquet
from airflow_provider_xcompliance.ids.sources import IdFile
from airflow_provider_xcompliance.ids.text import read_text
from airflow_provider_xcompliance.ids.values import BatchCall
from airflow_provider_xcompliance.paths import OpenablePath

Fmt: TypeAlias = Literal["text", "csv", "parquet"]
"""The names in :data:`READERS`, spelled out for type checkers (a test holds the two equal)."""

ReadFile: TypeAlias = Callable[[IdFile, str | None, int], Iterator[BatchCall]]
"""``read(file, id_column, block_size)``: calls that validate the file's batches, in order."""


@dataclass(frozen=True)
class Reader:
    """One format: the name ``fmt=`` selects it by, the suffixes that select it, the function reading it."""

    name: str
    suffixes: tuple[str, ...]
    read: ReadFile


READERS: dict[str, Reader] = {
    reader.name: reader
    for reader in (
        Reader("text", ("", ".txt", ".text", ".ids", ".lst"), read_text),
        Reader("csv", (".csv",), read_csv),
        Reader("parquet", (".parquet", ".pq"), read_parquet),
    )
}


def _choices() -> str:
    names = [repr(name) for name in READERS]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def detect_format(path: OpenablePath, fmt: Fmt | None = None) -> tuple[Fmt, bool]:
    """``(format, gzipped)`` of one file: ``fmt`` if given, else from the suffix (``.gz`` looked through)."""
    name = str(getattr(path, "name", path))
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[: -len(".gz")]
    if fmt is not None:
        if fmt not in READERS:
            raise ValueError(f"fmt must be {_choices()}, not {fmt!r}")
        return fmt, gzipped
    suffix = os.path.splitext(name)[1].lower()
    for reader in READERS.values():
        if suffix in reader.suffixes:
            return reader.name, gzipped  # type: ignore[return-value]
    raise IdSourceError(
        f"Cannot tell the format of {str(path)!r} from its suffix: pass fmt={_choices()}", source=str(path)
    )

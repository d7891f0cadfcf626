"""OpenLineage datasets for the operators' inputs and outputs (only used when the OpenLineage provider runs).

Names follow the OpenLineage naming spec: a local file is namespace ``file`` and its absolute path; an
object-storage URI ``s3://bucket/key`` is namespace ``s3://bucket`` and name ``key``; a warehouse table is
namespace ``<connection type>://<host>`` and its (schema-qualified) name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_xcompliance.paths import as_path, is_local
from airflow_provider_xcompliance.redaction import redact_url


def file_dataset(uri: str) -> Any:
    """The OpenLineage dataset of a file or folder (local path or object-storage URI)."""
    from openlineage.client.event_v2 import Dataset

    if is_local(uri):
        return Dataset(namespace="file", name=os.path.abspath(as_path(uri)))
    parts = urlsplit(redact_url(uri))
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


def uris(value: Any) -> list[str]:
    """One or many sources (a URI, a path, or a list of them) as a list of strings."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(item) for item in value]


def table_dataset(conn_type: str, host: str | None, table: str, database: str | None = None) -> Any:
    """The OpenLineage dataset of a warehouse table."""
    from openlineage.client.event_v2 import Dataset

    name = f"{database}.{table}" if database else table
    return Dataset(namespace=f"{conn_type}://{host or ''}", name=name)


def operator_lineage(inputs: Iterable[Any], outputs: Iterable[Any]) -> Any:
    """An ``OperatorLineage`` of datasets (file URIs are turned into datasets first)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(items: Iterable[Any]) -> list[Any]:
        return [file_dataset(item) if isinstance(item, str) else item for item in items]

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))

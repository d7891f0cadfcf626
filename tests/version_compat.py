"""Where the Airflow internals the tests reach into live, per supported version.

The tests' counterpart of the package's ``version_compat`` (whose version flags decide here too): names only
tests use, kept out of the package.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from airflow_provider_xcompliance.version_compat import (
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
)

if AIRFLOW_V_3_2_PLUS:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.exceptions import AirflowSkipException
else:
    from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef]
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.utils.module_loading import import_string  # type: ignore[no-redef]


def secrets_masker() -> Any:
    """The process's secrets masker: what ``mask_secret`` registers with and task logs are redacted by."""
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.log import _secrets_masker
    elif AIRFLOW_V_3_1_PLUS:
        from airflow.sdk._shared.secrets_masker import _secrets_masker  # type: ignore[no-redef]
    else:
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker  # type: ignore[no-redef]
    return _secrets_masker()


def filesystem_registry() -> ModuleType:
    """The module holding ``ObjectStoragePath``'s scheme -> filesystem registry."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk.io import fs

        return fs
    import airflow.io

    return airflow.io


__all__ = ["AirflowSkipException", "DagBag", "filesystem_registry", "import_string", "secrets_masker"]

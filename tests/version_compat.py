"""Where the Airflow internals the tests reach into live, per supported version.

The tests' counterpart of the package's ``version_compat`` (whose version flags decide here too): names only
tests use, kept out of the package.
"""

from __future__ import annotations

from types import ModuleType

from airflow_provider_xcompliance.version_compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_2_PLUS

if AIRFLOW_V_3_2_PLUS:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.sdk.listener import get_listener_manager
else:
    from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef]
    from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef]
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.utils.module_loading import import_string  # type: ignore[no-redef]


def filesystem_registry() -> ModuleType:
    """The module holding ``ObjectStoragePath``'s scheme -> filesystem registry."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk.io import fs

        return fs
    import airflow.io

    return airflow.io


__all__ = ["AirflowSkipException", "DagBag", "filesystem_registry", "get_listener_manager", "import_string"]

"""Which Airflow is installed, and where the names that moved between supported versions live.

The one place that branches on the Airflow version, as Airflow's own providers do: every module imports the
moved names from here, so supporting another release is a change to this file only. Names that are in the
same place in every supported release (``airflow.sdk.BaseOperator``, ``Asset``, ``ObjectStoragePath``...)
are imported from Airflow directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from airflow import __version__ as _airflow_version
from asgiref.sync import sync_to_async
from packaging.version import Version

T = TypeVar("T")


def _base_version() -> tuple[int, int, int]:
    """The installed Airflow as (major, minor, micro), pre-releases counted as their release."""
    version = Version(Version(_airflow_version).base_version)
    return version.major, version.minor, version.micro


AIRFLOW_VERSION = _base_version()
AIRFLOW_V_3_1_PLUS = AIRFLOW_VERSION >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)

if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import BaseHook
else:  # 3.0 keeps the hook base class in core
    from airflow.hooks.base import BaseHook  # type: ignore[attr-defined,no-redef]

if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowTaskTerminated,
        TaskDeferred,
    )
else:  # before 3.2 the Task SDK had no configuration or exceptions of its own
    from airflow.configuration import conf  # type: ignore[assignment]
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowTaskTerminated,
        TaskDeferred,
    )


async def aget_connection(hook: BaseHook, conn_id: str) -> Any:
    """The hook's connection, read without blocking the event loop (3.1 added ``aget_connection``)."""
    if AIRFLOW_V_3_1_PLUS:
        return await hook.aget_connection(conn_id)
    return await call_supervisor(hook.get_connection, conn_id)


async def call_supervisor(function: Callable[..., T], *args: Any) -> T:
    """A sync Task SDK call (one that asks the supervisor) made from the event loop without blocking it.

    Before 3.1 a triggerer answers such calls through asgiref, which must find the triggerer's own loop:
    ``sync_to_async`` carries it into the worker thread, where a bare ``asyncio.to_thread`` call crashes the
    whole trigger runner ("attached to a different loop").
    """
    if AIRFLOW_V_3_1_PLUS:
        return await asyncio.to_thread(function, *args)
    return await sync_to_async(function)(*args)


def secrets_masker() -> Any:
    """This process's secrets masker, which redacts its logs."""
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.log import _secrets_masker
    elif AIRFLOW_V_3_1_PLUS:
        from airflow.sdk._shared.secrets_masker import _secrets_masker  # type: ignore[no-redef]
    else:
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker  # type: ignore[no-redef]
    return _secrets_masker()


async def amask_secret(secret: str) -> None:
    """``airflow.sdk.log.mask_secret`` for the event loop."""
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.log import amask_secret as aregister

        await aregister(secret)
    else:  # no async call to the supervisor before 3.3, and the sync one cannot run in the event loop
        secrets_masker().add_mask(secret)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowTaskTerminated",
    "BaseHook",
    "TaskDeferred",
    "aget_connection",
    "amask_secret",
    "call_supervisor",
    "conf",
    "secrets_masker",
]

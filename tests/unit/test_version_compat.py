"""The names ``version_compat`` picks are the ones the installed Airflow uses (the floor run checks 3.0)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.version_compat import (
    TaskDeferred,
    aget_connection,
    amask_secret,
    conf,
    mask_secret,
)
from tests.version_compat import secrets_masker


class IdleTrigger(BaseTrigger):
    def serialize(self) -> tuple[str, dict[str, str]]:
        return f"{__name__}.IdleTrigger", {}

    async def run(self):  # type: ignore[no-untyped-def,override]
        yield  # pragma: no cover


def test_task_deferred_is_what_an_operator_raises_to_defer() -> None:
    with pytest.raises(TaskDeferred):
        BaseOperator(task_id="t").defer(trigger=IdleTrigger(), method_name="execute_complete")


def test_conf_reads_airflow_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert conf.getboolean("operators", "default_deferrable", fallback=False) is True


async def test_aget_connection_reads_the_connection_inside_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X_COMPAT", '{"conn_type": "x_api", "host": "http://127.0.0.1:9"}')

    connection = await aget_connection(XComplianceHook(x_conn_id="x_compat"), "x_compat")

    assert connection.host == "http://127.0.0.1:9"


async def test_secrets_registered_sync_or_async_are_redacted() -> None:
    mask_secret("compat-sync-secret-1f2e")
    await amask_secret("compat-async-secret-3d4c")

    redacted = secrets_masker().redact("compat-sync-secret-1f2e compat-async-secret-3d4c")

    assert "secret" not in redacted


def test_no_moved_name_is_imported_through_a_deprecation_shim() -> None:
    """On every supported release the names come from where that release keeps them, without warnings."""
    code = (
        "import warnings, airflow\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.simplefilter('error', FutureWarning)\n"  # Airflow's DeprecatedImportWarning is one
        "import airflow_provider_xcompliance.version_compat\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]

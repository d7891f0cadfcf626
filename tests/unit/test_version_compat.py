"""The names ``version_compat`` picks are the ones the installed Airflow uses (the floor run checks 3.0)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

from airflow_provider_xcompliance.hooks.compliance import XComplianceHook
from airflow_provider_xcompliance.version_compat import (
    AIRFLOW_V_3_3_PLUS,
    TaskDeferred,
    aget_connection,
    amask_secret,
    conf,
    secrets_masker,
)


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


class TriggererComms:
    """The triggerer's channel to its supervisor: inside the event loop only the async send works."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        raise RuntimeError("You cannot use AsyncToSync in the same thread as an async event loop")

    async def asend(self, msg: Any) -> None:
        self.sent.append(msg)


async def test_amask_secret_masks_in_a_trigger_without_the_blocking_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.execution_time import task_runner

    comms = TriggererComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)

    await amask_secret("compat-async-secret-3d4c")

    assert secrets_masker().redact("token compat-async-secret-3d4c") == "token ***"
    assert len(comms.sent) == (1 if AIRFLOW_V_3_3_PLUS else 0)  # the supervisor is told where Airflow can

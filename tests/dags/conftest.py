"""Fixtures of the DAG tests: an emulator reachable through the test module's connection ``CONN_ID``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> Any:
    """The emulator's settings, with per-test overrides given by indirect parametrization."""
    from airflow_provider_xcompliance.emulator import EmulatorConfig

    overrides = getattr(request, "param", {})
    # A big rate window: the pacing that spreads 150 calls over 15 minutes would slow the 0.2 s polls here.
    defaults = {"token": "test-token", "processing_seconds": 0.0, "rate_limit_count": 100_000}
    return EmulatorConfig(**{**defaults, **overrides})


@pytest.fixture
def api(emulator: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """The emulator, reachable through the DAGs' connection (an env var: inline triggers read it too)."""
    [value] = emulator.conn_env().values()
    monkeypatch.setenv(f"AIRFLOW_CONN_{request.module.CONN_ID.upper()}", value)
    return emulator


@pytest.fixture
def ids_file(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{1_300_000_000_000_000_000 + n * 7919}\n" for n in range(100)))
    return path

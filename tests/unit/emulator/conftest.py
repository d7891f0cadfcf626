"""Fixtures for the emulator's own tests: a movable clock and an authenticated API client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorHandle

from .support import TOKEN, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    """An authenticated client for the API routes (storage URLs are absolute, so it serves those too)."""
    with httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http

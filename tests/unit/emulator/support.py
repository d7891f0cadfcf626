"""Shortcuts for the emulator's tests: settings, a movable clock and job helpers over plain HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx

from airflow_provider_xcompliance.emulator import EmulatorConfig

TOKEN = "test-token"


class FakeClock:
    """A clock the test moves by hand, so windows and expiries need no sleeping."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(**overrides: Any) -> EmulatorConfig:
    """The test token and instant processing, unless a test says otherwise."""
    return EmulatorConfig(**{"token": TOKEN, "processing_seconds": 0.0, **overrides})


def create_job(client: httpx.Client, job_type: str = "tweets", **body: Any) -> dict[str, Any]:
    response = client.post("/2/compliance/jobs", json={"type": job_type, **body})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def upload(job: dict[str, Any], content: bytes) -> httpx.Response:
    """A simple upload, without the API's bearer token (signed URLs carry their own credentials)."""
    return httpx.put(job["upload_url"], content=content, headers={"Content-Type": "text/plain"})


def wait_for_status(client: httpx.Client, job_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll until processing (a worker thread) has moved the job on."""
    deadline = time.monotonic() + timeout
    while True:
        job = dict(client.get(f"/2/compliance/jobs/{job_id}").json()["data"])
        if job["status"] == status or time.monotonic() > deadline:
            return job
        time.sleep(0.005)


def id_file(count: int, start: int = 1_400_000_000_000_000_000, step: int = 7919) -> bytes:
    return "".join(f"{start + i * step}\n" for i in range(count)).encode()

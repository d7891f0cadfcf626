"""The alternatives X's specs and docs show, one flag each, and the create endpoint's robustness."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_xcompliance.emulator import run_emulator
from airflow_provider_xcompliance.emulator.cli import config_from_args

from .support import TOKEN, config, create_job, id_file, upload

JOBS = "/2/compliance/jobs"


@pytest.fixture
def flagged(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of an emulator run with the test's flags (given by indirect parametrization)."""
    with run_emulator(config(**request.param)) as emu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=emu.base_url, headers=headers) as http:
            yield http


def with_flags(**flags: Any) -> Any:
    return pytest.mark.parametrize("flagged", [flags], indirect=True)


def test_job_objects_show_every_documented_field_by_default(client: httpx.Client) -> None:
    job = create_job(client, resumable=True)

    assert {"resumable", "upload_expires_at", "download_expires_at"} <= set(job)


@with_flags(no_cancel_route=True)
def test_without_a_cancel_route_delete_answers_404_and_the_job_runs_on(flagged: httpx.Client) -> None:
    job = create_job(flagged)

    response = flagged.delete(f"{JOBS}/{job['id']}")

    assert response.status_code == 404
    assert response.json()["type"] == "about:blank"  # not resource-not-found: the route, not the job
    assert flagged.get(f"{JOBS}/{job['id']}").json()["data"]["status"] == "created"


@with_flags(omit_resumable=True)
def test_job_objects_can_omit_resumable_while_the_url_stays_signed_for_it(flagged: httpx.Client) -> None:
    job = create_job(flagged, resumable=True)

    assert "resumable" not in job
    assert "x-goog-resumable" in httpx.URL(job["upload_url"]).params["X-Goog-SignedHeaders"]
    simple = upload(job, b"1\n")
    assert simple.status_code == 403
    assert "SignatureDoesNotMatch" in simple.text


@with_flags(omit_expires_at=True)
def test_job_objects_can_omit_their_expiry_times(flagged: httpx.Client) -> None:
    job = create_job(flagged)

    assert "upload_expires_at" not in job
    assert "download_expires_at" not in job
    assert job["created_at"].endswith(".000Z")


@with_flags(in_progress_status="processing", processing_seconds=30.0)
def test_an_in_progress_job_can_report_a_status_clients_do_not_know(flagged: httpx.Client) -> None:
    job = create_job(flagged)
    upload(job, id_file(3))

    assert flagged.get(f"{JOBS}/{job['id']}").json()["data"]["status"] == "processing"
    listed = flagged.get(JOBS, params={"type": "tweets"}).json()["data"]
    assert [entry["status"] for entry in listed] == ["processing"]


def test_in_progress_status_must_not_name_another_status() -> None:
    with pytest.raises(ValueError, match="in_progress_status"):
        config(in_progress_status="complete")


@with_flags(foreign_jobs=True)
def test_listings_can_show_other_apps_jobs_of_unknown_statuses_and_types(flagged: httpx.Client) -> None:
    ours = create_job(flagged, name="ours")

    body = flagged.get(JOBS, params={"type": "tweets"}).json()

    assert body["data"][0]["id"] == ours["id"]  # newest first: the foreign jobs are older
    foreign = body["data"][1:]
    assert {entry.get("status") for entry in foreign} >= {"archived"}
    assert {entry.get("type") for entry in foreign} >= {"spaces"}
    assert body["meta"]["result_count"] == len(body["data"])
    assert flagged.get(f"{JOBS}/{foreign[0]['id']}").status_code == 404  # not this app's


@with_flags(foreign_jobs=True)
def test_foreign_jobs_follow_the_status_filter(flagged: httpx.Client) -> None:
    listed = flagged.get(JOBS, params={"type": "users", "status": "created"}).json()

    assert listed == {}


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"tweets"',
        b"null",
        b"{",
        b"\xff\xfe",
        b'{"type": NaN}',
        b'{"type": "tweets", "extra": Infinity}',
        b'{"type": ["tweets"]}',
        b'{"type": {"a": 1}}',
        b'{"type": "tweets", "name": 5}',
        b'{"type": "tweets", "name": "' + b"n" * 65 + b'"}',
        b'{"type": "tweets", "resumable": "true"}',
        b'{"type": "tweets", "resumable": null}',
        b'{"type": "tweets", "unexpected": {"deep": [1, 2, 3]}}',
        b'{"' + b"k" * 5000 + b'": 1, "type": "tweets"}',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"type": 1' + b"0" * 5000 + b"}",
    ],
)
def test_any_bad_create_body_is_a_clear_400(client: httpx.Client, body: bytes) -> None:
    response = client.post(JOBS, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/2/problems/invalid-request")
    assert len(response.content) < 4096  # a rejected value is echoed shortened


def test_a_half_sent_create_body_is_timed_out_and_its_connection_closed() -> None:
    with run_emulator(config(body_timeout_seconds=0.5)) as emu:
        host, port = httpx.URL(emu.base_url).host, httpx.URL(emu.base_url).port
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(
                b"POST /2/compliance/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + TOKEN.encode()
                + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"type"'
            )
            started = time.monotonic()
            answer = _read_until_closed(sock)
            waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408")
    assert waited < 5


def test_a_stalled_upload_is_timed_out_without_completing_the_job() -> None:
    with run_emulator(config(body_timeout_seconds=0.5)) as emu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        job = httpx.post(f"{emu.base_url}{JOBS}", json={"type": "tweets"}, headers=headers).json()["data"]
        url = httpx.URL(job["upload_url"])
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            target = url.raw_path.decode()
            sock.sendall(
                f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n".encode()
                + b"Content-Length: 1000\r\n\r\n1\n2\n"
            )
            answer = _read_until_closed(sock)
        state = emu.job_state(job["id"])

    assert answer.startswith(b"HTTP/1.1 4")
    assert (state["status"], state["uploads_completed"]) == ("created", 0)


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_every_flag_has_a_command_line_option() -> None:
    settings = config_from_args(
        [
            "--no-cancel-route",
            "--omit-resumable",
            "--omit-expires-at",
            "--in-progress-status",
            "processing",
            "--foreign-jobs",
            "--conflict-status",
            "400",
            "--body-timeout-seconds",
            "5",
        ]
    )

    assert (settings.no_cancel_route, settings.omit_resumable, settings.omit_expires_at) == (True,) * 3
    assert (settings.in_progress_status, settings.foreign_jobs) == ("processing", True)
    assert (settings.conflict_status, settings.body_timeout_seconds) == (400, 5.0)

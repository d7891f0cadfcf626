"""The signed storage URLs: signatures, expiry, simple and resumable uploads, ranged and dropped downloads."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorHandle, run_emulator

from .support import FakeClock, config, create_job, id_file, upload, wait_for_status

TEXT = {"Content-Type": "text/plain"}
KIB_256 = 256 * 1024


def start_session(job: dict[str, Any]) -> str:
    response = httpx.post(job["upload_url"], headers={**TEXT, "x-goog-resumable": "start"})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def put_range(session: str, body: bytes, first: int, total: int | str) -> httpx.Response:
    last = first + len(body) - 1
    return httpx.put(session, content=body, headers={"Content-Range": f"bytes {first}-{last}/{total}"})


def status_query(session: str, total: int) -> httpx.Response:
    return httpx.put(session, content=b"", headers={"Content-Range": f"bytes */{total}"})


def read_until_dropped(url: str) -> bytes:
    """The bytes a GET received before its connection broke (fails if it did not break)."""
    received = bytearray()
    try:
        with httpx.stream("GET", url) as response:
            for chunk in response.iter_bytes():
                received += chunk
    except httpx.TransportError:
        return bytes(received)
    raise AssertionError("the download was not dropped")


def completed_job(client: httpx.Client, content: bytes) -> dict[str, Any]:
    job = create_job(client)
    assert upload(job, content).status_code == 200
    return wait_for_status(client, job["id"], "complete")


def test_simple_upload_moves_the_job_to_in_progress_then_complete(
    client: httpx.Client, emulator: EmulatorHandle
) -> None:
    job = create_job(client)

    response = upload(job, id_file(1000))

    assert response.status_code == 200
    assert wait_for_status(client, job["id"], "complete")["status"] == "complete"
    state = emulator.job_state(job["id"])
    assert (state["uploaded_ids"], state["uploads_completed"]) == (1000, 1)


def test_upload_needs_exactly_text_plain(client: httpx.Client) -> None:
    job = create_job(client)

    response = httpx.put(
        job["upload_url"], content=b"1\n", headers={"Content-Type": "text/plain; charset=utf-8"}
    )

    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert response.headers["content-type"].startswith("application/xml")


def test_a_tampered_signature_is_refused(client: httpx.Client) -> None:
    job = create_job(client)
    url = job["upload_url"][:-4] + ("0000" if not job["upload_url"].endswith("0000") else "1111")

    assert httpx.put(url, content=b"1\n", headers=TEXT).status_code == 403


def test_a_signature_does_not_work_for_another_job(client: httpx.Client) -> None:
    tweets, users = create_job(client, "tweets"), create_job(client, "users")
    forged = tweets["upload_url"].split("?")[0] + "?" + users["upload_url"].split("?")[1]

    assert httpx.put(forged, content=b"1\n", headers=TEXT).status_code == 403


def test_unsigned_requests_are_denied(client: httpx.Client) -> None:
    job = create_job(client)

    response = httpx.put(job["upload_url"].split("?")[0], content=b"1\n", headers=TEXT)

    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text


def test_the_api_token_must_not_be_sent_to_storage(client: httpx.Client) -> None:
    job = create_job(client)

    response = httpx.put(
        job["upload_url"], content=b"1\n", headers={**TEXT, "Authorization": "Bearer test-token"}
    )

    assert response.status_code == 400


def test_path_tricks_never_reach_the_disk(emulator: EmulatorHandle, client: httpx.Client) -> None:
    job = create_job(client)
    query = job["upload_url"].split("?")[1]
    with socket.create_connection(urlsplit(emulator.base_url)[1].split(":")) as raw:  # type: ignore[arg-type]
        path = f"/storage/twttr-tweet-compliance/..%2F..%2F..%2Fetc/submission/passwd?{query}"
        headers = "Host: x\r\nContent-Type: text/plain\r\nContent-Length: 2"
        raw.sendall(f"PUT {path} HTTP/1.1\r\n{headers}\r\n\r\n1\n".encode())
        status_line = raw.recv(200).split(b"\r\n")[0]

    assert status_line.split()[1] in (b"403", b"404")


def test_an_expired_upload_url_answers_expired_token(clock: FakeClock) -> None:
    with run_emulator(config(clock=clock, upload_window_seconds=60)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = create_job(http)
        clock.advance(61)
        response = upload(job, b"1\n")
        status = http.get(f"/2/compliance/jobs/{job['id']}").json()["data"]["status"]

    assert response.status_code == 400
    assert "<Code>ExpiredToken</Code>" in response.text
    assert status == "expired"


def test_an_expired_download_url_answers_expired_token(clock: FakeClock) -> None:
    with run_emulator(config(clock=clock, download_window_seconds=120)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = completed_job(http, id_file(100))
        clock.advance(121)
        response = httpx.get(job["download_url"])

    assert response.status_code == 400
    assert "<Code>ExpiredToken</Code>" in response.text


def test_download_before_completion_is_no_such_key(client: httpx.Client) -> None:
    job = create_job(client)

    response = httpx.get(job["download_url"])

    assert response.status_code == 404
    assert "<Code>NoSuchKey</Code>" in response.text


def test_download_returns_the_results_file(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = completed_job(client, id_file(5000))

    response = httpx.get(job["download_url"])

    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines
    assert len(lines) == len(emulator.ground_truth(job["id"]))
    assert emulator.state()["bytes_down"] == len(response.content)


def test_download_honours_range_requests(client: httpx.Client) -> None:
    job = completed_job(client, id_file(5000))
    whole = httpx.get(job["download_url"]).content

    middle = httpx.get(job["download_url"], headers={"Range": "bytes=100-199"})
    tail = httpx.get(job["download_url"], headers={"Range": f"bytes={len(whole) - 10}-"})
    suffix = httpx.get(job["download_url"], headers={"Range": "bytes=-5"})

    assert (middle.status_code, middle.content) == (206, whole[100:200])
    assert middle.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert tail.content == whole[-10:]
    assert suffix.content == whole[-5:]


def test_a_range_past_the_end_is_416(client: httpx.Client) -> None:
    job = completed_job(client, id_file(100))
    size = len(httpx.get(job["download_url"]).content)

    response = httpx.get(job["download_url"], headers={"Range": f"bytes={size}-"})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"


def test_dropped_download_can_be_resumed_with_a_range() -> None:
    with run_emulator(config(drop_download_after_bytes=1000)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = completed_job(http, id_file(5000))
        received = read_until_dropped(job["download_url"])
        rest = httpx.get(job["download_url"], headers={"Range": f"bytes={len(received)}-"})
        whole = httpx.get(job["download_url"]).content

    assert len(received) == 1000
    assert rest.status_code == 206
    assert bytes(received) + rest.content == whole


def test_resumable_upload_in_chunks_reports_progress_with_308(
    client: httpx.Client, emulator: EmulatorHandle
) -> None:
    job = create_job(client, resumable=True)
    content = id_file(30_000)  # about 600 KB: two full 256 KiB chunks and a tail
    session = start_session(job)

    first = put_range(session, content[:KIB_256], 0, "*")
    second = put_range(session, content[KIB_256 : 2 * KIB_256], KIB_256, "*")
    last = put_range(session, content[2 * KIB_256 :], 2 * KIB_256, len(content))

    assert session.startswith(job["upload_url"] + "&upload_id=")
    assert (first.status_code, first.headers["Range"]) == (308, f"bytes=0-{KIB_256 - 1}")
    assert (second.status_code, second.headers["Range"]) == (308, f"bytes=0-{2 * KIB_256 - 1}")
    assert last.status_code in (200, 201)
    assert wait_for_status(client, job["id"], "complete")["status"] == "complete"
    assert emulator.job_state(job["id"])["uploaded_ids"] == 30_000


def test_status_query_reports_what_is_stored(client: httpx.Client) -> None:
    job = create_job(client, resumable=True)
    session = start_session(job)

    empty = status_query(session, 1000)
    put_range(session, b"1\n" * 200, 0, 1000)
    partial = status_query(session, 1000)

    assert empty.status_code == 308
    assert "Range" not in empty.headers
    assert (partial.status_code, partial.headers["Range"]) == (308, "bytes=0-399")


def test_resumable_upload_resumes_after_a_dropped_connection(emulator_config: Any) -> None:
    content = id_file(20_000)
    with run_emulator(config(drop_upload_after_bytes=100_000)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = create_job(http, resumable=True)
        session = start_session(job)
        with pytest.raises(httpx.TransportError):
            put_range(session, content, 0, len(content))
        stored = status_query(session, len(content))
        resume_at = int(stored.headers["Range"].split("-")[1]) + 1
        finished = put_range(session, content[resume_at:], resume_at, len(content))
        wait_for_status(http, job["id"], "complete")
        state = emu.job_state(job["id"])

    assert resume_at == 100_000
    assert finished.status_code in (200, 201)
    assert (state["uploaded_ids"], state["upload_attempts"], state["uploads_completed"]) == (20_000, 2, 1)


def test_a_dropped_simple_upload_stores_nothing_and_can_be_retried() -> None:
    with run_emulator(config(drop_upload_after_bytes=1000)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = create_job(http)
        with pytest.raises(httpx.TransportError):
            upload(job, id_file(5000))
        dropped = http.get(f"/2/compliance/jobs/{job['id']}").json()["data"]["status"]
        retried = upload(job, id_file(5000))

    assert dropped == "created"
    assert retried.status_code == 200


def test_resumable_jobs_refuse_a_simple_put_and_simple_jobs_a_session(client: httpx.Client) -> None:
    resumable, simple = create_job(client, "tweets", resumable=True), create_job(client, "users")

    assert upload(resumable, b"1\n").status_code == 403
    start = httpx.post(simple["upload_url"], headers={**TEXT, "x-goog-resumable": "start"})
    assert start.status_code == 403


def test_chunked_transfer_encoding_is_accepted(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = create_job(client)

    def body() -> Any:
        yield b"1\n2\n"
        yield b"3\n"

    response = httpx.put(job["upload_url"], content=body(), headers=TEXT)

    assert response.status_code == 200
    wait_for_status(client, job["id"], "complete")
    assert emulator.job_state(job["id"])["uploaded_ids"] == 3


def test_uploads_over_the_size_cap_get_413() -> None:
    with run_emulator(config(max_upload_bytes=1000)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer test-token"})
        job = create_job(http)
        declared = upload(job, b"1\n" * 600)

        def undeclared() -> Any:
            yield b"1\n" * 600

        streamed = httpx.put(job["upload_url"], content=undeclared(), headers=TEXT)

    assert declared.status_code == 413
    assert streamed.status_code == 413


def test_a_repeated_upload_is_counted_and_ignored(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = create_job(client)
    upload(job, id_file(10))

    again = upload(job, id_file(20))

    assert again.status_code == 200
    wait_for_status(client, job["id"], "complete")
    state = emulator.job_state(job["id"])
    assert (state["uploads_completed"], state["uploaded_ids"]) == (2, 10)

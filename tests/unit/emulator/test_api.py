"""The /2/compliance/jobs endpoints: shapes, auth, validation, conflicts, limits and faults."""

from __future__ import annotations

import re

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorConfig, EmulatorHandle, run_emulator

from .support import TOKEN, FakeClock, config, create_job, upload, wait_for_status

JOBS = "/2/compliance/jobs"


def test_create_answers_200_with_a_created_job_of_19_digits(client: httpx.Client) -> None:
    response = client.post(JOBS, json={"type": "tweets"})

    assert response.status_code == 200
    job = response.json()["data"]
    assert re.fullmatch(r"[0-9]{19}", job["id"])
    assert job["status"] == "created"
    assert job["resumable"] is False
    assert "name" not in job


def test_job_timestamps_use_the_api_format_and_windows(client: httpx.Client) -> None:
    job = create_job(client, "users", name="nightly", resumable=True)

    assert job["name"] == "nightly"
    assert job["resumable"] is True
    for field in ("created_at", "upload_expires_at", "download_expires_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", job[field])
    assert job["upload_url"].split("?")[0].endswith(f"/submission/1202726487847104512_{job['id']}")
    assert "X-Goog-Expires=900&" in job["upload_url"]
    assert "X-Goog-Expires=604800&" in job["download_url"]


def test_get_returns_the_urls_creation_signed(client: httpx.Client) -> None:
    created = create_job(client)

    fetched = client.get(f"{JOBS}/{created['id']}").json()["data"]

    assert fetched == created


def test_list_returns_jobs_of_the_type_newest_first_with_a_count(client: httpx.Client) -> None:
    first = create_job(client, "tweets")
    client.delete(f"{JOBS}/{first['id']}")
    second = create_job(client, "tweets")
    create_job(client, "users")

    body = client.get(JOBS, params={"type": "tweets"}).json()

    assert [job["id"] for job in body["data"]] == [second["id"], first["id"]]
    assert body["meta"] == {"result_count": 2}


def test_list_filters_by_status(client: httpx.Client) -> None:
    cancelled = create_job(client)
    client.delete(f"{JOBS}/{cancelled['id']}")
    create_job(client)

    body = client.get(JOBS, params={"type": "tweets", "status": "failed"}).json()

    assert [job["id"] for job in body["data"]] == [cancelled["id"]]


def test_list_without_jobs_answers_an_empty_object_as_x_does(client: httpx.Client) -> None:
    assert client.get(JOBS, params={"type": "users"}).json() == {}


def test_list_without_jobs_can_answer_empty_data() -> None:
    with run_emulator(config(empty_list_style="data")) as emu:
        response = httpx.get(f"{emu.base_url}{JOBS}?type=users", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.json() == {"data": [], "meta": {"result_count": 0}}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "type"),
        ({"type": "posts"}, "type"),
        ({"type": "tweets", "status": "expired"}, "status"),
        ({"type": "tweets", "colour": "red"}, "colour"),
        ({"type": "tweets", "compliance_job.fields": "id,secret"}, "compliance_job.fields"),
    ],
)
def test_list_rejects_bad_query_parameters_naming_them(
    client: httpx.Client, params: dict[str, str], parameter: str
) -> None:
    response = client.get(JOBS, params=params)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert body["title"] == "Invalid Request"
    assert body["detail"] == "One or more parameters to your request was invalid."
    assert [parameter] == [name for error in body["errors"] for name in error["parameters"]]


def test_job_fields_parameter_is_accepted(client: httpx.Client) -> None:
    response = client.get(JOBS, params={"type": "tweets", "compliance_job.fields": "id,status,download_url"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({}, "type"),
        ({"type": "spaces"}, "type"),
        ({"type": "tweets", "name": "x" * 65}, "name"),
        ({"type": "tweets", "resumable": "yes"}, "resumable"),
        ({"type": "tweets", "priority": 1}, "priority"),
    ],
)
def test_create_rejects_bad_bodies_per_parameter(
    client: httpx.Client, body: dict[str, object], parameter: str
) -> None:
    response = client.post(JOBS, json=body)

    assert response.status_code == 400
    assert [parameter] == [name for error in response.json()["errors"] for name in error["parameters"]]


def test_create_accepts_a_name_of_64_characters(client: httpx.Client) -> None:
    assert create_job(client, name="x" * 64)["name"] == "x" * 64


def test_create_rejects_a_body_that_is_not_json(client: httpx.Client) -> None:
    response = client.post(JOBS, content=b"type=tweets", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["type"].endswith("/2/problems/invalid-request")


def test_create_rejects_an_oversized_body(client: httpx.Client) -> None:
    response = client.post(JOBS, content=b"{" + b" " * 70_000 + b"}")

    assert response.status_code == 413


def test_second_unfinished_job_of_a_type_is_a_409_conflict(client: httpx.Client) -> None:
    create_job(client, "tweets")

    response = client.post(JOBS, json={"type": "tweets"})

    assert response.status_code == 409
    body = response.json()
    assert body["type"] == "https://api.twitter.com/2/problems/conflict"
    assert body["detail"] == "You cannot create a new job if one is already in progress"


def test_tweets_and_users_jobs_run_side_by_side(client: httpx.Client) -> None:
    create_job(client, "tweets")

    assert client.post(JOBS, json={"type": "users"}).status_code == 200


def test_conflict_status_and_problem_host_are_configurable() -> None:
    with run_emulator(config(conflict_status=400, problem_host="https://api.x.com")) as emu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        httpx.post(f"{emu.base_url}{JOBS}", json={"type": "users"}, headers=headers)
        response = httpx.post(f"{emu.base_url}{JOBS}", json={"type": "users"}, headers=headers)

    assert response.status_code == 400
    assert response.json()["type"] == "https://api.x.com/2/problems/conflict"


def test_load_tests_can_allow_more_unfinished_jobs_per_type() -> None:
    with run_emulator(config(unfinished_jobs_per_type=2)) as emu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        statuses = [
            httpx.post(f"{emu.base_url}{JOBS}", json={"type": "tweets"}, headers=headers).status_code
            for _ in range(3)
        ]

    assert statuses == [200, 200, 409]


def test_cancel_fails_the_job_and_frees_the_slot(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = create_job(client)

    response = client.delete(f"{JOBS}/{job['id']}")

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "failed"
    assert client.post(JOBS, json={"type": "tweets"}).status_code == 200
    assert emulator.job_state(job["id"])["status"] == "failed"


def test_cancel_leaves_a_finished_job_unchanged(client: httpx.Client) -> None:
    job = create_job(client)
    upload(job, b"1\n")
    wait_for_status(client, job["id"], "complete")

    assert client.delete(f"{JOBS}/{job['id']}").json()["data"]["status"] == "complete"


def test_unknown_job_is_a_404_resource_not_found(client: httpx.Client) -> None:
    response = client.get(f"{JOBS}/1234567890123456789")

    assert response.status_code == 404
    assert response.json()["type"] == "https://api.twitter.com/2/problems/resource-not-found"


@pytest.mark.parametrize("job_id", ["abc", "12345678901234567890", "..%2F..%2Fetc"])
def test_malformed_job_ids_are_rejected(client: httpx.Client, job_id: str) -> None:
    response = client.get(f"{JOBS}/{job_id}")

    assert response.status_code in (400, 404)
    assert response.status_code == 400 or "resource-not-found" not in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"bearer{TOKEN}"])
def test_requests_without_the_bearer_token_get_401(
    emulator: EmulatorHandle, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = httpx.get(f"{emulator.base_url}{JOBS}?type=tweets", headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }


def test_user_context_auth_gets_403_unsupported_authentication(emulator: EmulatorHandle) -> None:
    response = httpx.get(
        f"{emulator.base_url}{JOBS}?type=tweets", headers={"Authorization": 'OAuth oauth_nonce="1"'}
    )

    assert response.status_code == 403
    assert response.json()["type"].endswith("/2/problems/unsupported-authentication")


def test_every_api_response_carries_rate_limit_headers(client: httpx.Client) -> None:
    responses = [client.post(JOBS, json={"type": "tweets"}), client.post(JOBS, json={"type": "tweets"})]

    assert [r.headers["x-rate-limit-remaining"] for r in responses] == ["149", "148"]
    assert {r.headers["x-rate-limit-limit"] for r in responses} == {"150"}


def test_rate_limit_windows_are_per_endpoint_and_reset(clock: FakeClock) -> None:
    with run_emulator(config(rate_limit_count=2, rate_limit_window_seconds=60, clock=clock)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        statuses = [http.get(JOBS, params={"type": "tweets"}).status_code for _ in range(3)]
        refused = http.get(JOBS, params={"type": "tweets"})
        other_endpoint = http.get(f"{JOBS}/1")
        clock.advance(60)
        after_reset = http.get(JOBS, params={"type": "tweets"})

    assert statuses == [200, 200, 429]
    assert refused.json() == {
        "title": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
        "detail": "Too Many Requests",
    }
    assert refused.headers["x-rate-limit-remaining"] == "0"
    assert refused.headers["x-rate-limit-reset"] == str(int(clock.now))
    assert other_endpoint.status_code == 404
    assert after_reset.status_code == 200


def test_usage_cap_answers_429_usage_capped() -> None:
    with run_emulator(config(usage_capped=True)) as emu:
        response = httpx.post(
            f"{emu.base_url}{JOBS}", json={"type": "tweets"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    assert response.status_code == 429
    assert response.json()["type"] == "https://api.twitter.com/2/problems/usage-capped"


def test_every_nth_request_fails_with_503_and_no_side_effect() -> None:
    with run_emulator(config(fail_every_nth_request=2)) as emu:
        http = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        statuses = [http.post(JOBS, json={"type": t}).status_code for t in ("tweets", "users", "users")]
        jobs = emu.state()["jobs"]

    assert statuses == [200, 503, 200]
    assert [job["type"] for job in jobs] == ["tweets", "users"]


def test_slow_responses_are_delayed() -> None:
    with run_emulator(config(slow_response_seconds=0.3)) as emu:
        response = httpx.get(
            f"{emu.base_url}{JOBS}?type=tweets", headers={"Authorization": f"Bearer {TOKEN}"}
        )

    assert response.elapsed.total_seconds() >= 0.3


def test_state_counts_requests_per_endpoint(client: httpx.Client, emulator: EmulatorHandle) -> None:
    job = create_job(client)
    client.get(f"{JOBS}/{job['id']}")
    client.get(f"{JOBS}/{job['id']}")

    requests = emulator.state()["requests"]

    assert requests["POST /2/compliance/jobs"] == 1
    assert requests["GET /2/compliance/jobs/:id"] == 2


def test_state_needs_no_token_and_shows_no_signed_urls(
    client: httpx.Client, emulator: EmulatorHandle
) -> None:
    create_job(client)

    response = httpx.get(f"{emulator.base_url}/_emulator/state")

    assert response.status_code == 200
    assert "X-Goog-Signature" not in response.text


def test_default_config_has_a_random_token() -> None:
    assert EmulatorConfig().token != EmulatorConfig().token

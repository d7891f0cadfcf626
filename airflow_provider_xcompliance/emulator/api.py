"""The ``/2/compliance/jobs`` endpoints, with the real API's auth, validation, limits and problem bodies."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_xcompliance.emulator.jobs import JobRecord, foreign_jobs
from airflow_provider_xcompliance.emulator.state import ConflictError, EmulatorState

CREATE_JOB = "POST /2/compliance/jobs"
GET_JOB = "GET /2/compliance/jobs/:id"
LIST_JOBS = "GET /2/compliance/jobs"
CANCEL_JOB = "DELETE /2/compliance/jobs/:id"

JOB_TYPES = ("tweets", "users")
LIST_STATUSES = ("created", "in_progress", "failed", "complete")  # "expired" is not a valid filter
JOB_FIELDS = (
    "created_at",
    "download_expires_at",
    "download_url",
    "id",
    "name",
    "resumable",
    "status",
    "type",
    "upload_expires_at",
    "upload_url",
)
BODY_FIELDS = ("type", "name", "resumable")
FIELDS_PARAM = "compliance_job.fields"
MAX_NAME_LENGTH = 64
_SHOWN_VALUE_CHARS = 80  # a rejected value is echoed, shortened: the body may be anything
_JOB_ID = re.compile(r"[0-9]{1,19}")
_JSON = "application/json; charset=utf-8"
_PROBLEM = "application/problem+json"

Handler = Callable[[Request, EmulatorState], Awaitable[Response]]


class ParameterErrors:
    """Collects per-parameter messages for one 400 ``invalid-request`` problem."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def add(self, parameter: str, values: list[Any], message: str) -> None:
        self.errors.append({"parameters": {parameter: values}, "message": message})

    def check_query(self, request: Request, allowed: tuple[str, ...]) -> None:
        for name in request.query_params:
            if name not in allowed:
                self.add(
                    name,
                    request.query_params.getlist(name),
                    f"The query parameter [{name}] is not one of [{','.join(allowed)}]",
                )
        for value in request.query_params.getlist(FIELDS_PARAM):
            for field in value.split(","):
                if field not in JOB_FIELDS:
                    self.add(FIELDS_PARAM, [field], _not_one_of(FIELDS_PARAM, field, JOB_FIELDS))


def _not_one_of(parameter: str, value: object, choices: tuple[str, ...]) -> str:
    return f"The `{parameter}` query parameter value [{value}] is not one of [{','.join(choices)}]"


def problem(state: EmulatorState, status: int, body: dict[str, Any]) -> JSONResponse:
    """An RFC 7807 body; ``type`` values that are paths get the configured host."""
    if str(body.get("type", "")).startswith("/"):
        body = {**body, "type": state.config.problem_host + body["type"]}
    return JSONResponse(body, status_code=status, media_type=_PROBLEM)


def invalid_request(state: EmulatorState, errors: ParameterErrors) -> JSONResponse:
    return problem(
        state,
        400,
        {
            "errors": errors.errors,
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "/2/problems/invalid-request",
        },
    )


def _about_blank(state: EmulatorState, status: int, title: str) -> JSONResponse:
    return problem(state, status, {"title": title, "type": "about:blank", "status": status, "detail": title})


def _auth_problem(request: Request, state: EmulatorState) -> JSONResponse | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "oauth":  # an OAuth 1.0a user-context request
        return problem(
            state,
            403,
            {
                "title": "Unsupported Authentication",
                "detail": "Authenticating with OAuth 1.0a User Context is forbidden for this endpoint.  "
                "Supported authentication types are [OAuth 2.0 Application-Only].",
                "type": "/2/problems/unsupported-authentication",
                "status": 403,
            },
        )
    expected = state.config.token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), expected):
        return _about_blank(state, 401, "Unauthorized")
    return None


async def _guarded(request: Request, endpoint: str, handler: Handler) -> Response:
    """What every API call goes through, in the real service's order: auth, limits, faults, then work."""
    state: EmulatorState = request.app.state.emulator
    config = state.config
    seen = state.count_request(endpoint)
    if config.slow_response_seconds:
        await asyncio.sleep(config.slow_response_seconds)
    refused = _auth_problem(request, state)
    if refused is not None:
        return refused  # no app identified, so no rate-limit budget to report
    limit = state.take_rate_limit(endpoint)
    response: Response
    if config.usage_capped:
        response = problem(
            state,
            429,
            {
                "title": "UsageCapExceeded",
                "detail": "Usage cap exceeded: Monthly product cap",
                "type": "/2/problems/usage-capped",
                "period": "Monthly",
                "scope": "Product",
                "status": 429,
            },
        )
    elif not limit.allowed:
        response = _about_blank(state, 429, "Too Many Requests")
    elif config.fail_every_nth_request and seen % config.fail_every_nth_request == 0:
        response = _about_blank(state, 503, "Service Unavailable")
    else:
        response = await handler(request, state)
    response.headers.update(limit.headers())
    return response


def _job_response(state: EmulatorState, job: JobRecord) -> JSONResponse:
    return JSONResponse({"data": job.to_api(state.view)}, media_type=_JSON)


async def _read_json_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than that).

    Raises ``ClientDisconnect`` when the client left, or stalled (see ``app.BodyTimeout``).
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _strict_json(raw: bytes) -> Any:
    """RFC 8259 JSON only: ``NaN`` and ``Infinity`` are refused, like any other non-JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(raw, parse_constant=refuse)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[:_SHOWN_VALUE_CHARS] + "..."


def _validate_create_body(raw: bytes, errors: ParameterErrors) -> dict[str, Any]:
    """The create body (spec 2.167: an object of ``type``, ``name``, ``resumable``, nothing else)."""
    try:
        body = _strict_json(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        errors.add("body", [], "The request body is not valid JSON")
        return {}
    if not isinstance(body, dict):
        errors.add("body", [], "The request body must be a JSON object")
        return {}
    for field in body:
        if field not in BODY_FIELDS:
            allowed = ",".join(BODY_FIELDS)
            errors.add(
                _shown(field), [_shown(body[field])], f"The field [{_shown(field)}] is not one of [{allowed}]"
            )
    kind = body.get("type")
    if kind is None:
        errors.add("type", [], "The `type` field can not be empty")
    elif not isinstance(kind, str) or kind not in JOB_TYPES:
        errors.add(
            "type", [_shown(kind)], f"The `type` field value [{_shown(kind)}] is not one of [tweets,users]"
        )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
        errors.add(
            "name",
            [_shown(name)],
            f"The `name` field must be a string of at most {MAX_NAME_LENGTH} characters",
        )
    if not isinstance(body.get("resumable", False), bool):
        errors.add("resumable", [_shown(body["resumable"])], "The `resumable` field must be a boolean")
    return body


async def _create(request: Request, state: EmulatorState) -> Response:
    errors = ParameterErrors()
    errors.check_query(request, (FIELDS_PARAM,))
    try:
        raw = await _read_json_body(request, state.config.max_json_body_bytes)
    except ClientDisconnect:
        return _about_blank(state, 408, "Request Timeout")
    if raw is None:
        return _about_blank(state, 413, "Payload Too Large")
    body = _validate_create_body(raw, errors)
    if errors.errors:
        return invalid_request(state, errors)
    try:
        job = state.create_job(
            body["type"], body.get("name"), body.get("resumable", False), str(request.base_url)
        )
    except ConflictError:
        detail = "You cannot create a new job if one is already in progress"
        return problem(
            state,
            state.config.conflict_status,
            {
                "title": "Conflict",
                "detail": detail,
                "type": "/2/problems/conflict",
                "status": state.config.conflict_status,
            },
        )
    return _job_response(state, job)


async def _list(request: Request, state: EmulatorState) -> Response:
    errors = ParameterErrors()
    errors.check_query(request, ("type", "status", FIELDS_PARAM))
    job_type, status = request.query_params.get("type"), request.query_params.get("status")
    if job_type is None:
        errors.add("type", [], "The `type` query parameter can not be empty")
    elif job_type not in JOB_TYPES:
        errors.add("type", [job_type], _not_one_of("type", job_type, JOB_TYPES))
    if status is not None and status not in LIST_STATUSES:
        errors.add("status", [status], _not_one_of("status", status, LIST_STATUSES))
    if errors.errors or job_type is None:
        return invalid_request(state, errors)
    entries = [job.to_api(state.view) for job in state.list_jobs(job_type, status)]
    if state.config.foreign_jobs:
        foreign = foreign_jobs(job_type, state.now())
        entries += [entry for entry in foreign if status is None or entry["status"] == status]
    if not entries and state.config.empty_list_style == "empty":
        return JSONResponse({}, media_type=_JSON)
    return JSONResponse({"data": entries, "meta": {"result_count": len(entries)}}, media_type=_JSON)


def _job_or_problem(
    request: Request, state: EmulatorState, find: Callable[[str], JobRecord | None]
) -> Response:
    errors = ParameterErrors()
    errors.check_query(request, (FIELDS_PARAM,))
    job_id = request.path_params["job_id"]
    if not _JOB_ID.fullmatch(job_id):
        errors.add(
            "id", [job_id], f"The `id` query parameter value [{job_id}] does not match ^[0-9]{{1,19}}$"
        )
    if errors.errors:
        return invalid_request(state, errors)
    job = find(job_id)
    if job is None:
        return problem(
            state,
            404,
            {
                "title": "Not Found Error",
                "detail": f"Could not find compliance job with id: [{job_id}].",
                "type": "/2/problems/resource-not-found",
                "resource_type": "compliance_job",
                "resource_id": job_id,
                "parameter": "id",
                "value": job_id,
                "status": 404,
            },
        )
    return _job_response(state, job)


async def _get(request: Request, state: EmulatorState) -> Response:
    return _job_or_problem(request, state, state.get_job)


async def _cancel(request: Request, state: EmulatorState) -> Response:
    if state.config.no_cancel_route:  # what a route the API does not have answers
        return _about_blank(state, 404, "Not Found")
    return _job_or_problem(request, state, state.cancel_job)


async def create_job(request: Request) -> Response:
    return await _guarded(request, CREATE_JOB, _create)


async def list_jobs(request: Request) -> Response:
    return await _guarded(request, LIST_JOBS, _list)


async def get_job(request: Request) -> Response:
    return await _guarded(request, GET_JOB, _get)


async def cancel_job(request: Request) -> Response:
    return await _guarded(request, CANCEL_JOB, _cancel)


routes = [
    Route("/2/compliance/jobs", create_job, methods=["POST"]),
    Route("/2/compliance/jobs", list_jobs, methods=["GET"]),
    Route("/2/compliance/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/2/compliance/jobs/{job_id}", cancel_job, methods=["DELETE"]),
]

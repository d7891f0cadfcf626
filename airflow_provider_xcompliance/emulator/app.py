"""The emulator's ASGI application: API routes, storage routes and the introspection endpoints."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_xcompliance.emulator import api, storage
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.state import GROUND_TRUTH_FILE, EmulatorState


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """A fresh emulator; its state is ``app.state.emulator`` and is closed when the app shuts down."""
    config = config or EmulatorConfig()
    if config.data_dir is None:
        data_dir, owned = Path(tempfile.mkdtemp(prefix="xcompliance-emulator-")), True
    else:
        data_dir, owned = Path(config.data_dir), False
        data_dir.mkdir(parents=True, exist_ok=True)
    state = EmulatorState(config, data_dir, owns_data_dir=owned)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = Starlette(
        routes=[
            *api.routes,
            *storage.routes,
            Route("/_emulator/state", _state, methods=["GET"]),
            Route("/_emulator/jobs/{job_id}/ground-truth", _ground_truth, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.emulator = state
    app.add_middleware(BodyTimeout, seconds=config.body_timeout_seconds)
    return app


class BodyTimeout:
    """Ends a request whose body stalls for ``seconds``: its handler sees the client gone (and answers
    408) and the connection closes, so a half-sent request never holds the server open."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = stalled = False

        async def receive_in_time() -> Message:
            nonlocal body_done, stalled
            if body_done:  # later calls wait for a disconnect while a response streams: no limit
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                stalled = body_done = True
                return {"type": "http.disconnect"}
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_closing(message: Message) -> None:
            if stalled and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        # The raw receive stays reachable: fault injection closes its connection (storage._drop_connection).
        await self.app({**scope, storage.RAW_RECEIVE: receive}, receive_in_time, send_closing)


async def _state(request: Request) -> JSONResponse:
    """Jobs, request counts per endpoint and bytes moved: unauthenticated, for tests and demos."""
    return JSONResponse(request.app.state.emulator.snapshot())


async def _ground_truth(request: Request) -> Response:
    """The result records a job produced (JSONL, never truncated by fault injection)."""
    state: EmulatorState = request.app.state.emulator
    job = state.get_job(request.path_params["job_id"])  # only ids the emulator issued reach the file system
    path = state.job_dir(job.id) / GROUND_TRUTH_FILE if job else None
    if path is None or not path.is_file():
        return Response(status_code=404 if job is None else 200, media_type="application/x-ndjson")
    return FileResponse(path, media_type="application/x-ndjson")

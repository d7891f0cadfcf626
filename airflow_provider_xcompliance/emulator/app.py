"""The emulator's ASGI application: API routes, storage routes and the introspection endpoints."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from airflow_provider_xcompliance.emulator import api, storage
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.state import GROUND_TRUTH_FILE, EmulatorState


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """A fresh emulator; its state is ``app.state.emulator`` and is closed when the app shuts down."""
    config = config or EmulatorConfig()
    if config.data_dir is None:
        data_dir, owned = Path(tempfile.mkdtemp(prefix="xcompliance-emulator-")), True
    else:
        data_dir, owned = Path(config.data_dir), False
        data_dir.mkdir(parents=True, exist_ok=True)
    state = EmulatorState(config, data_dir, owns_data_dir=owned)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    # No generated docs: the surface is the real API's, nothing more.
    app = FastAPI(
        title="X compliance emulator", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.emulator = state
    app.include_router(api.router)
    app.include_router(storage.router)
    app.add_api_route("/_emulator/state", _state, methods=["GET"])
    app.add_api_route("/_emulator/jobs/{job_id}/ground-truth", _ground_truth, methods=["GET"])
    return app


async def _state(request: Request) -> JSONResponse:
    """Jobs, request counts per endpoint and bytes moved: unauthenticated, for tests and demos."""
    return JSONResponse(request.app.state.emulator.snapshot())


async def _ground_truth(request: Request, job_id: str) -> Response:
    """The result records a job produced (JSONL, never truncated by fault injection)."""
    state: EmulatorState = request.app.state.emulator
    job = state.get_job(job_id)  # only ids the emulator issued reach the file system
    path = state.job_dir(job.id) / GROUND_TRUTH_FILE if job else None
    if path is None or not path.is_file():
        return Response(status_code=404 if job is None else 200, media_type="application/x-ndjson")
    return FileResponse(path, media_type="application/x-ndjson")

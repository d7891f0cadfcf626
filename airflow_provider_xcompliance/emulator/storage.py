"""The storage side: signed upload and download URLs that behave like Google Cloud Storage.

Uploads stream from the socket to disk and downloads from disk to the socket, a chunk at a time, so an
upload of many gigabytes never sits in memory. Both simple uploads (one ``PUT``) and the GCS resumable
protocol (``POST`` start, ``Content-Range`` ``PUT`` chunks, ``bytes */TOTAL`` status queries) are served.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from xml.sax.saxutils import escape

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from airflow_provider_xcompliance.emulator.jobs import Status
from airflow_provider_xcompliance.emulator.signing import Verdict
from airflow_provider_xcompliance.emulator.state import (
    RESULTS_FILE,
    EmulatorState,
    JobRecord,
    UploadSession,
)

STORAGE_PATH = "/storage/{bucket}/{job_id}/{kind}/{object_name}"
UPLOAD_CONTENT_TYPE = "text/plain"
_CHUNK = 1024 * 1024
RAW_RECEIVE = "xcompliance.raw_receive"  # scope key of the server's own receive (app.BodyTimeout wraps it)
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def gcs_error(status: int, code: str, message: str, details: str | None = None) -> Response:
    """An error body the way Google Cloud Storage writes them (XML, not problem+json)."""
    extra = f"<Details>{escape(details)}</Details>" if details else ""
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}</Error>"
    )
    return Response(body, status_code=status, media_type="application/xml; charset=UTF-8")


def _signature_mismatch() -> Response:
    return gcs_error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your Google secret key and signing method.",
    )


def _no_such_key() -> Response:
    return gcs_error(404, "NoSuchKey", "The specified key does not exist.")


@dataclasses.dataclass(frozen=True)
class Authorized:
    job: JobRecord
    expired: bool


def _authorize(request: Request, state: EmulatorState, kind: str) -> Authorized | Response:
    """Check the signature over the request path; the job named in the path then exists (we signed it)."""
    if "authorization" in request.headers:  # a client leaking its API token to the storage host
        return gcs_error(
            400, "InvalidArgument", "Invalid argument.", "Multiple authentication mechanisms are not allowed."
        )
    verification = state.signer.verify(request.url.path, request.query_params, state.now())
    if verification.verdict is Verdict.MISSING:
        return gcs_error(403, "AccessDenied", "Anonymous caller does not have storage.objects access.")
    if verification.verdict is Verdict.BAD_SIGNATURE or request.path_params["kind"] != kind:
        return _signature_mismatch()
    job = state.get_job(request.path_params["job_id"])
    if job is None:
        return _no_such_key()
    return Authorized(job, verification.verdict is Verdict.EXPIRED)


def _expired_token() -> Response:
    return gcs_error(400, "ExpiredToken", "The provided token has expired.", "Request signature expired.")


async def _drop_connection(request: Request) -> None:
    """Cut the TCP connection under the request, as a flaky network would.

    uvicorn's ``receive`` is a method of its per-request cycle, which holds the transport; closing it and
    waiting for the disconnect makes the server's later writes no-ops instead of protocol errors.
    """
    cycle = getattr(request.scope.get(RAW_RECEIVE, request.receive), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection to drop it (not running under uvicorn?)")
    transport.close()
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


@dataclasses.dataclass(frozen=True)
class Received:
    written: int
    dropped: bool = False  # the connection ended (by fault injection or by the client) before the body did
    too_large: bool = False


async def _receive(
    request: Request,
    state: EmulatorState,
    target: Path,
    *,
    append: bool,
    skip: int = 0,
    room: int | None = None,
    drop_after: int | None = None,
) -> Received:
    """Stream the body into ``target``: skip bytes already stored; stop at ``room`` or ``drop_after``."""
    written = 0
    with target.open("ab" if append else "wb") as out:
        try:
            async for chunk in request.stream():
                state.add_bytes(up=len(chunk))
                if skip:
                    overlap = min(skip, len(chunk))
                    chunk, skip = chunk[overlap:], skip - overlap
                if drop_after is not None and written + len(chunk) >= drop_after:
                    out.write(chunk[: drop_after - written])
                    out.flush()
                    await _drop_connection(request)
                    return Received(drop_after, dropped=True)
                if room is not None and written + len(chunk) > room:
                    return Received(written, too_large=True)
                out.write(chunk)
                written += len(chunk)
        except ClientDisconnect:
            return Received(written, dropped=True)
    return Received(written)


def _too_large() -> Response:
    return gcs_error(
        413, "EntityTooLarge", "Your proposed upload is larger than the maximum object size specified."
    )


def _declared_too_large(request: Request, state: EmulatorState, already: int = 0) -> bool:
    limit = state.config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    return limit is not None and declared.isdigit() and already + int(declared) > limit


def _room(state: EmulatorState, already: int = 0) -> int | None:
    limit = state.config.max_upload_bytes
    return None if limit is None else max(limit - already, 0)


def _take_drop_fault(job: JobRecord, limit: int | None, attribute: str) -> int | None:
    """The byte count after which to cut this transfer: only the job's first attempt is cut."""
    if limit is None or getattr(job, attribute):
        return None
    setattr(job, attribute, True)
    return limit


async def upload(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    state.count_request(f"{request.method} upload")
    authorized = _authorize(request, state, "submission")
    if isinstance(authorized, Response):
        return authorized
    job = authorized.job
    upload_id = request.query_params.get("upload_id")
    if upload_id is not None:
        session = job.sessions.get(upload_id)
        if session is None:
            return gcs_error(404, "NoSuchUpload", "The requested upload was not found.")
        # A GCS session outlives the signed URL that opened it.
        return (
            await _session_put(request, state, job, session)
            if request.method == "PUT"
            else _signature_mismatch()
        )
    if authorized.expired:
        return _expired_token()
    # The URL is signed for one kind of upload: a resumable start (POST) or a simple PUT.
    wants_resumable = request.method == "POST" and request.headers.get("x-goog-resumable") == "start"
    if wants_resumable != job.resumable or (request.method == "POST" and not wants_resumable):
        return _signature_mismatch()
    if request.headers.get("content-type") != UPLOAD_CONTENT_TYPE:
        return _signature_mismatch()
    if wants_resumable:
        session = state.open_session(job)
        return Response(
            status_code=201, headers={"Location": f"{job.upload_url}&upload_id={session.upload_id}"}
        )
    return await _simple_put(request, state, job)


async def _simple_put(request: Request, state: EmulatorState, job: JobRecord) -> Response:
    if _declared_too_large(request, state):
        return _too_large()
    job.upload_attempts += 1
    target = state.temp_upload_path(job.id)
    drop_after = _take_drop_fault(job, state.config.drop_upload_after_bytes, "upload_dropped")
    received = await _receive(request, state, target, append=False, room=_room(state), drop_after=drop_after)
    job.upload_bytes += received.written
    if received.dropped or received.too_large:
        target.unlink(missing_ok=True)
        return _too_large() if received.too_large else Response(status_code=499)
    state.complete_upload(job, target)
    return Response(status_code=200)


def _incomplete(session: UploadSession) -> Response:
    """308 "Resume Incomplete", with ``Range`` only when some bytes are stored (as GCS does)."""
    headers = {"Range": f"bytes=0-{session.size - 1}"} if session.size else {}
    return Response(status_code=308, headers=headers)


def _finished(state: EmulatorState, job: JobRecord, session: UploadSession) -> Response:
    if not session.complete:
        session.complete = True
        state.complete_upload(job, session.path)
    return JSONResponse({"kind": "storage#object", "name": f"{job.id}/submission", "size": str(session.size)})


async def _session_put(
    request: Request, state: EmulatorState, job: JobRecord, session: UploadSession
) -> Response:
    if session.complete:
        return _finished(state, job, session)
    header = request.headers.get("content-range")
    match = _CONTENT_RANGE.fullmatch(header.strip()) if header else None
    if header is not None and match is None:
        return gcs_error(400, "InvalidArgument", "Invalid Content-Range header.")
    first, _last, total_text = match.groups() if match else ("0", None, None)
    total = int(total_text) if total_text and total_text != "*" else None
    if first is None:  # "bytes */TOTAL": a status query
        return _finished(state, job, session) if session.size == total else _incomplete(session)
    start = int(first)
    if start > session.size:  # a gap: tell the client what we really hold
        return _incomplete(session)
    if header is None:  # no Content-Range: the whole object in one request
        session.path.write_bytes(b"")
        session.size = start = 0
    if _declared_too_large(request, state, already=start):
        return _too_large()
    job.upload_attempts += 1
    drop_after = _take_drop_fault(job, state.config.drop_upload_after_bytes, "upload_dropped")
    received = await _receive(
        request,
        state,
        session.path,
        append=True,
        skip=session.size - start,
        room=_room(state, session.size),
        drop_after=drop_after,
    )
    session.size += received.written
    job.upload_bytes += received.written
    if received.too_large:
        return _too_large()
    if (header is None and not received.dropped) or (total is not None and session.size >= total):
        return _finished(state, job, session)
    return _incomplete(session)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | Response | None:
    """(first, last) byte of a single ``Range``; None means the whole file; 416 when unsatisfiable."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None  # absent, multi-range or malformed: serve everything, as RFC 9110 allows
    first_text, last_text = match.groups()
    if first_text:
        first, last = int(first_text), min(int(last_text) if last_text else size - 1, size - 1)
    else:
        first, last = max(size - int(last_text), 0), size - 1
    if first >= size or first > last:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return first, last


async def _stream_file(
    request: Request, state: EmulatorState, path: Path, first: int, last: int, drop_after: int | None
) -> AsyncIterator[bytes]:
    sent = 0
    with path.open("rb") as source:
        source.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                return
            if drop_after is not None and sent + len(chunk) >= drop_after:
                chunk = chunk[: drop_after - sent]
                state.add_bytes(down=len(chunk))
                yield chunk
                await _drop_connection(request)
                return
            remaining -= len(chunk)
            sent += len(chunk)
            state.add_bytes(down=len(chunk))
            yield chunk


async def download(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    state.count_request(f"{request.method} download")
    authorized = _authorize(request, state, "delivery")
    if isinstance(authorized, Response):
        return authorized
    if authorized.expired:
        return _expired_token()
    job = authorized.job
    path = state.job_dir(job.id) / RESULTS_FILE
    if job.status is not Status.COMPLETE or not path.is_file():
        return _no_such_key()
    size = path.stat().st_size
    wanted = _parse_range(request.headers.get("range"), size)
    if isinstance(wanted, Response):
        return wanted
    first, last = wanted if wanted is not None else (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1)}
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 206 if wanted is not None else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    job.download_attempts += 1
    drop_after = _take_drop_fault(job, state.config.drop_download_after_bytes, "download_dropped")
    return StreamingResponse(
        _stream_file(request, state, path, first, last, drop_after),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


routes = [
    Route(STORAGE_PATH, upload, methods=["PUT", "POST"]),
    Route(STORAGE_PATH, download, methods=["GET", "HEAD"]),
]

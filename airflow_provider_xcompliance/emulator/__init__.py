"""A faithful local X API batch-compliance service, for demos, tests and users' own DAG tests.

Start it with ``xcompliance-emulator`` (or ``python -m airflow_provider_xcompliance.emulator``), or from
Python with :func:`run_emulator`. It shares nothing with the client code but the documented wire format: its
model of jobs and statuses is its own (:mod:`.jobs`), so a client bug cannot be mirrored by the oracle.

Defaults, each with its source:
- create answers 200 (not 201) with ``{"data": job}``, status ``created`` (X docs, specs 2.159-2.168);
- a job object carries ``id``, ``type``, ``name`` (only when given), ``resumable``, ``status``,
  ``created_at``, ``upload_url``/``upload_expires_at`` (created_at + 15 minutes),
  ``download_url``/``download_expires_at`` (created_at + 7 days), ``error`` only on a failed job (X docs'
  job object; spec 2.167);
- ``created -> in_progress`` when the upload completes, ``created -> expired`` with no upload in 15 minutes,
  ``in_progress -> complete`` after ``processing_seconds`` (X docs' lifecycle);
- one unfinished job per type and app, the conflict problem type ``/2/problems/conflict`` with "You cannot
  create a new job if one is already in progress" (X docs); a ``created`` job holds the slot (assumed);
- an empty listing answers ``{}`` (X's behaviour, checked by twarc); ``status=expired`` is no filter (spec);
- the create body is strict: an object of ``type``, ``name`` (at most 64 characters), ``resumable``, nothing
  else (spec 2.167, ``additionalProperties: false``); any other body is a 400 ``invalid-request``, never 500;
- problems are RFC 7807 bodies with ``https://api.twitter.com`` types (X docs), 429 with ``x-rate-limit-*``
  headers, 150 requests per endpoint per 15 minutes (X docs' Pro limits);
- signed URLs are GCS V4 style: ``text/plain`` is part of the upload signature, a resumable URL signs
  ``x-goog-resumable`` (X docs, GCS docs); the ``DELETE`` cancel route exists (one split of spec 2.168).

Where the real API's behaviour is undocumented, the emulator chooses (and clients should tolerate others):
- the conflict problem answers 409 (see ``conflict_status``);
- unknown job: 404 ``resource-not-found``; malformed id or unknown query parameter: 400 ``invalid-request``;
- DELETE of a finished job returns it unchanged (200); a cancelled job has no ``error``;
- a resumable URL is signed for ``POST`` + ``x-goog-resumable: start`` only, a simple one for ``PUT`` only
  (the other method gets 403 ``SignatureDoesNotMatch``); an open resumable session outlives the signed URL
  and keeps its job from expiring; a storage request carrying an ``Authorization`` header gets 400;
- a second completed upload to a job is answered 200, counted, and ignored;
- upload lines: blank ones are skipped, lines that are not 1-19 ASCII digits are ignored, both counted;
  duplicate IDs give one result line; ``max_upload_ids`` fails the job with a size error (the upload itself
  succeeds), while ``max_upload_bytes`` refuses the upload with 413;
- 401 responses carry no ``x-rate-limit-*`` headers (no app is identified); refused requests spend no budget;
- a request body that stalls for ``body_timeout_seconds`` is answered 408 and its connection closed.

Result files follow X's documentation: geo scrubs carry ``"action": "delete", "reason": "scrub_geo"`` (the
compliance quickstart's example; ``geo_scrub_action="scrub_geo"`` writes the other form), and every line has
``created_at`` in one of the forms real files show. Alternatives, one flag each: ``result_timestamps``
(``missing``/``odd``: one line in four without ``created_at`` or with an odd one), ``truncate_results``
(the file cut mid-line), ``crlf``.

The API alternatives X's specs and docs show, one flag each (``EmulatorConfig`` field / command-line option):
- ``no_cancel_route`` / ``--no-cancel-route``: ``DELETE`` answers 404 as an absent route (specs 2.159, 2.167);
- ``omit_resumable`` / ``--omit-resumable``: job objects without ``resumable`` (spec 2.159's job schema);
- ``omit_expires_at`` / ``--omit-expires-at``: job objects without ``*_expires_at`` (the docs' quickstart);
- ``in_progress_status`` / ``--in-progress-status processing``: a status name clients do not know, reported
  while a job is in progress (spec 2.167 types ``status`` as a string; a public client's README shows it);
- ``foreign_jobs`` / ``--foreign-jobs``: listings also show other apps' jobs, with an unknown status or type;
- ``conflict_status`` / ``--conflict-status 400``: the conflict's undocumented HTTP status;
- ``empty_list_style`` / ``--empty-list-style data``: an empty listing as ``{"data": [], "meta": ...}``;
- ``problem_host`` / ``--problem-host https://api.x.com``: problem types under the newer host.
Faults (errors, drops, slowness, failed jobs, truncated results, caps) are further flags: see ``--help``.
"""

from airflow_provider_xcompliance.emulator.config import EmulatorConfig

# The server stack is an extra: workers that only run the operators never install it.
_SERVER_STACK = frozenset({"starlette", "uvicorn"})

try:
    from airflow_provider_xcompliance.emulator.app import create_app
    from airflow_provider_xcompliance.emulator.testing import EmulatorHandle, run_emulator
except ModuleNotFoundError as error:
    if (error.name or "").split(".")[0] not in _SERVER_STACK:
        raise
    raise ModuleNotFoundError(
        f"The X API emulator needs {error.name}, which is not installed: "
        "pip install 'airflow-provider-xcompliance[emulator]'",
        name=error.name,
    ) from error

__all__ = ["EmulatorConfig", "EmulatorHandle", "create_app", "run_emulator"]

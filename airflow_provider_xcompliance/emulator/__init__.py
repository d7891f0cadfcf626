"""A faithful local X API batch-compliance service, for demos, tests and users' own DAG tests.

Start it with ``xcompliance-emulator`` (or ``python -m airflow_provider_xcompliance.emulator``), or from
Python with :func:`run_emulator`. It shares nothing with the client code but the documented wire format.

Where the real API's behaviour is undocumented, the emulator chooses (and clients should tolerate others):
- a ``created`` job holds its type's slot; the conflict problem answers 409 (see ``conflict_status``);
- unknown job: 404 ``resource-not-found``; malformed id or unknown query parameter: 400 ``invalid-request``;
- DELETE of a finished job returns it unchanged (200); a cancelled job has no ``error``;
- a resumable URL is signed for ``POST`` + ``x-goog-resumable: start`` only, a simple one for ``PUT`` only
  (the other method gets 403 ``SignatureDoesNotMatch``); an open resumable session outlives the signed URL
  and keeps its job from expiring; a storage request carrying an ``Authorization`` header gets 400;
- a second completed upload to a job is answered 200, counted, and ignored;
- upload lines: blank ones are skipped, lines that are not 1-19 ASCII digits are ignored, both counted;
  duplicate IDs give one result line; ``max_upload_ids`` fails the job with a size error (the upload itself
  succeeds), while ``max_upload_bytes`` refuses the upload with 413;
- 401 responses carry no ``x-rate-limit-*`` headers (no app is identified); refused requests spend no budget.

Result files follow X's documentation: geo scrubs carry ``"action": "delete", "reason": "scrub_geo"`` (the
compliance quickstart's example; ``geo_scrub_action="scrub_geo"`` writes the other form), and every line has
``created_at`` in one of the forms real files show. Alternatives, one flag each: ``result_timestamps``
(``missing``/``odd``: one line in four without ``created_at`` or with an odd one), ``truncate_results``
(the file cut mid-line), ``crlf``.
"""

from airflow_provider_xcompliance.emulator.app import create_app
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.testing import EmulatorHandle, run_emulator

__all__ = ["EmulatorConfig", "EmulatorHandle", "create_app", "run_emulator"]

"""Deterministic compliance job names: the key that lets a retried task find the job it already started.

The API keeps no idempotency key, only an optional ``name`` of at most 64 characters, so the name carries
it: a readable prefix (the label, or DAG and task ids) for people browsing the job list, and a short hash
of the full identity (DAG, task, run, map index, chunk) so that two runs never share a name however long
their ids are. Pure Python, no Airflow import.
"""

from __future__ import annotations

import hashlib
import json
import re

MAX_JOB_NAME_LENGTH = 64  # the API's limit on ``name``
_HASH_LENGTH = 12  # 48 bits: collisions need ~16 million names of one type in the API's job list
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def job_name(
    dag_id: str,
    task_id: str,
    run_id: str,
    *,
    map_index: int = -1,
    chunk: int | None = None,
    label: str | None = None,
) -> str:
    """Name the job of one task run (and one chunk of it) within the API's 64-character limit.

    :param label: readable prefix replacing ``dag_id.task_id`` (for example the operator's ``name``); the
        identity hash is appended all the same, so reusing a label across runs never reattaches an old job.
    """
    identity = json.dumps([dag_id, task_id, run_id, map_index, chunk])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_LENGTH]
    suffix = (f".c{chunk}" if chunk is not None else "") + f"-{digest}"
    readable = _UNSAFE.sub("_", label if label else f"{dag_id}.{task_id}")
    return readable[: MAX_JOB_NAME_LENGTH - len(suffix)] + suffix

"""Result tables as the reporting step writes them, built from chosen IDs (for the warehouse tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_provider_xcompliance.results import results_to_parquet
from airflow_provider_xcompliance.results.schema import IdType

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def created_at(post_id: int) -> datetime:
    """The creation time the synthetic warehouse and the results agree on: one minute per ID."""
    return EPOCH + timedelta(minutes=post_id % 10_000_000)


def write_tables(
    folder: Path,
    rows: Mapping[tuple[str, str | None], Iterable[int]],
    *,
    job_id: str = "1500000000000000001",
    id_type: IdType = "int64",
) -> Path:
    """JSONL results for ``{(action, reason): ids}`` converted into ``folder/tables``; returns that folder."""
    source = folder / f"results-{job_id}.jsonl"
    with source.open("w") as out:
        for (action, reason), ids in rows.items():
            for post_id in ids:
                when = created_at(post_id).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                record = {"id": str(post_id), "action": action, "created_at": when, "reason": reason}
                out.write(json.dumps(record) + "\n")
    destination = folder / "tables"
    results_to_parquet(source, destination, job_type="tweets", id_type=id_type)
    return destination

"""Turn downloaded compliance results into Parquet tables a warehouse applies (thin glue over ``results``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

from airflow_provider_xcompliance.actions import GeoScrubPolicy, check_policy
from airflow_provider_xcompliance.exceptions import ResultsRejectedError
from airflow_provider_xcompliance.models import JobType
from airflow_provider_xcompliance.results import format_summary, results_to_parquet

if TYPE_CHECKING:
    from airflow.sdk import Context

ResultsInput = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


def result_sources(results: ResultsInput) -> dict[str, str | None]:
    """Map each results file to its job id, from URIs or from the run operator's XCom dict(s).

    The run operator returns ``{"results_uris": [...], "job_ids": [...], ...}``; the download operator returns
    ``{"results_uri": ..., "job_id": ...}``. Plain URIs get their job id from the file name later.
    """
    items: Iterable[str | Mapping[str, Any]] = (
        [results] if isinstance(results, (str, os.PathLike, Mapping)) else results
    )
    sources: dict[str, str | None] = {}
    for item in items:
        if isinstance(item, Mapping):
            uris = item.get("results_uris", [item.get("results_uri")])
            job_ids = item.get("job_ids", [item.get("job_id")])
            if len(uris) != len(job_ids) or None in uris:
                raise ValueError(f"Cannot read results files and job ids from {sorted(item)}")
            sources.update(zip(uris, job_ids, strict=True))
        else:
            sources[os.fspath(item)] = None
    if not sources:
        raise ValueError("No results files given: nothing to convert")
    return sources


class XComplianceResultsToParquetOperator(BaseOperator):
    """Convert compliance results (JSON Lines) into one Parquet table per action under ``destination``.

    Layout (see :mod:`airflow_provider_xcompliance.results`): ``destination/delete/``,
    ``destination/scrub_geo/`` and a folder per any other action, each a complete table with ``id``,
    ``action``, ``reason``, ``created_at``, ``redacted_at``, ``job_id``, ``job_type``; ``_rejects.jsonl``
    holds the lines from which no row could be read, with their file, line number and any ID they name;
    ``_summary.json`` holds the counts. The output is replaced atomically, so a rerun of the task replaces
    its own output and a reader never sees half a table.

    Fail closed: by default (``max_rejects=0``) the task fails when any line was rejected, after writing
    the tables, the rejects and the summary; the error says how many and where the rejects are. A rejected
    line may name an ID that needs action, and it is in no table.

    Give ``outlets=[Asset(...)]`` to schedule a warehouse DAG on the tables: each asset event carries the row
    counts per action in its ``extra``.

    :param results: a results URI, a list of them, or the XCom of ``XComplianceRunJobOperator`` /
        ``XComplianceDownloadResultsOperator`` (templated).
    :param destination: folder (local path or object-storage URI) that receives the tables (templated).
    :param job_type: ``tweets`` or ``users``: written into every row so tables of both types can be merged.
    :param id_type: ``int64`` (default) or ``string`` for the ``id`` column.
    :param max_rejects: fail the task when more lines are rejected than this count (``int``, default 0) or
        fraction of lines read (``float``); everything is still written. ``None`` never fails on rejects.
    :param geo_scrub: ``"scrub"`` (default) puts geo scrubs (reason or action ``scrub_geo``) in
        ``scrub_geo/``; ``"delete"`` puts them in ``delete/``.
    """

    template_fields: Sequence[str] = ("results", "destination", "job_type")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        results: ResultsInput,
        destination: str,
        job_type: JobType | str,
        id_type: str = "int64",
        max_rejects: int | float | None = 0,
        geo_scrub: GeoScrubPolicy = "scrub",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.geo_scrub = check_policy(geo_scrub)
        self.results = results
        self.destination = destination
        self.job_type = job_type
        self.id_type = id_type
        self.max_rejects = max_rejects

    def execute(self, context: Context) -> dict[str, Any]:
        sources = result_sources(self.results)
        try:
            summary = results_to_parquet(
                sources,
                self.destination,
                job_type=self.job_type,
                id_type="string" if self.id_type == "string" else "int64",
                max_rejects=self.max_rejects,
                geo_scrub=self.geo_scrub,
            )
        except ResultsRejectedError as exc:
            if exc.summary is not None:
                self.log.info("%s", format_summary(exc.summary))
            raise
        self.log.info("%s", format_summary(summary))
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {
                    "destination": self.destination,
                    "rows_by_action": dict(summary.rows_by_action),
                }
        return summary.to_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the results files in, one table folder per action out (from the task's XCom)."""
        from airflow_provider_xcompliance import lineage

        summary = task_instance.xcom_pull(task_ids=self.task_id) or {}
        tables = sorted((summary.get("tables") or {}).values())
        return lineage.operator_lineage(list(result_sources(self.results)), tables)

"""OpenLineage dataset names follow the naming spec, and never carry a signed URL's query."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_xcompliance.lineage import file_dataset, table_dataset, uris


def test_local_files_are_namespace_file_and_their_absolute_path(tmp_path: Path) -> None:
    dataset = file_dataset(f"file://{tmp_path}/tables/delete")
    assert (dataset.namespace, dataset.name) == ("file", f"{tmp_path}/tables/delete")


def test_object_storage_uris_are_namespace_bucket_and_key_without_query() -> None:
    dataset = file_dataset("s3://lake/compliance/tables/delete?X-Goog-Signature=secret")
    assert (dataset.namespace, dataset.name) == ("s3://lake", "compliance/tables/delete")


def test_warehouse_tables_are_named_by_connection_type_host_and_database() -> None:
    dataset = table_dataset("postgres", "db.internal", "analytics.posts", "warehouse")
    assert (dataset.namespace, dataset.name) == ("postgres://db.internal", "warehouse.analytics.posts")


def test_sources_may_be_one_or_many() -> None:
    assert uris("a.txt") == ["a.txt"]
    assert uris([Path("a.txt"), "b.txt"]) == ["a.txt", "b.txt"]
    assert uris(None) == []

"""Specification of the chunk plan: stored beside the results, checked against the source and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_xcompliance import ids, storage
from airflow_provider_xcompliance.exceptions import SourceChangedError
from airflow_provider_xcompliance.ids import IdCounts, PreparedIds, SourceFile
from airflow_provider_xcompliance.plan import (
    ChunkPlan,
    PlannedChunk,
    StoredPlan,
    option_changes,
    source_changes,
)

OPTIONS = {"max_ids_per_job": 4}


class Reader:
    """The operator's read of the source into a local folder, counting its calls."""

    def __init__(self, source: Path) -> None:
        self.source, self.calls = source, 0

    def __call__(self, folder: Path) -> PreparedIds:
        self.calls += 1
        return ids.prepare_ids(str(self.source), folder, max_ids_per_job=OPTIONS["max_ids_per_job"])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{n}\n" for n in range(100, 110)))
    return path


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the results go: a local folder (which keeps the only copy of the chunks) or an S3 bucket."""
    if request.param == "local":
        return str(tmp_path / "out")
    return str(request.getfixturevalue("s3_bucket"))


def stored(source: Path, lake: str, tmp_path: Path, worker: str = "worker-1", **options: int) -> StoredPlan:
    return StoredPlan(f"{lake}/_dag.task-0123", str(source), {**OPTIONS, **options}, tmp_path / worker)


@pytest.fixture
def first_try(source: Path, lake: str, tmp_path: Path) -> PreparedIds:
    """What a first try leaves at the destination: the plan and the staged chunks."""
    plan = stored(source, lake, tmp_path)
    fingerprint = plan.fingerprint()
    return plan.save(Reader(source)(plan.staging), fingerprint)


def texts(prepared: PreparedIds) -> list[str]:
    return [chunk.path.read_text() for chunk in prepared.chunks]


def test_plan_survives_json() -> None:
    counts = IdCounts(read=10, blank=0, valid=10, invalid=0, duplicates=0, written=10)
    chunk = PlannedChunk("ids-00000.txt", 4, 20, "f0")
    plan = ChunkPlan((SourceFile("/ids.txt", 40, "modified 1"),), OPTIONS, counts, (chunk,))
    assert ChunkPlan.from_json(plan.to_json()) == plan


def test_unknown_plan_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        ChunkPlan.from_json('{"version": 99}')


def test_each_changed_file_is_named_with_what_changed() -> None:
    s3 = SourceFile("s3://aws@lake/ids.txt", 40, 'ETag "abc"')
    before = (s3, SourceFile("/ids/b.txt", 8, "modified 1"), SourceFile("/ids/c.txt", 8, "modified 1"))
    after = (
        SourceFile(s3.uri, 44, 'ETag "def"'),
        SourceFile("/ids/b.txt", 8, "modified 2"),
        SourceFile("/ids/d.txt", 8, "modified 1"),
    )
    assert source_changes(before, after) == [
        "/ids/b.txt was rewritten (modified 1 -> modified 2)",
        "/ids/c.txt is gone",
        "/ids/d.txt is new",
        "s3://aws@lake/ids.txt changed size (40 -> 44 bytes)",
    ]
    assert source_changes(before, before) == []


def test_changed_settings_are_named() -> None:
    assert option_changes(OPTIONS, {"max_ids_per_job": 5}) == ["max_ids_per_job changed (4 -> 5)"]


def test_no_plan_before_the_first_read(source: Path, tmp_path: Path) -> None:
    assert stored(source, str(tmp_path / "out"), tmp_path).load(Reader(source)) is None


def test_a_local_destination_keeps_the_only_copy_of_the_chunks(source: Path, tmp_path: Path) -> None:
    plan = stored(source, str(tmp_path / "out"), tmp_path)
    placed = plan.save(Reader(source)(plan.staging), plan.fingerprint())
    assert [chunk.path for chunk in placed.chunks] == [Path(plan.staged(chunk)) for chunk in placed.chunks]
    assert not list(plan.staging.glob("*.txt"))
    assert texts(placed) == ["100\n101\n102\n103\n", "104\n105\n106\n107\n", "108\n109\n"]


def test_another_worker_loads_the_plan_without_reading_the_source(source, lake, tmp_path, first_try) -> None:
    read = Reader(source)
    loaded = stored(source, lake, tmp_path, "worker-2").load(read)
    assert read.calls == 0
    assert loaded is not None
    assert [(c.ids, c.size) for c in loaded.chunks] == [(c.ids, c.size) for c in first_try.chunks]
    assert loaded.counts == first_try.counts


def test_changed_settings_fail_before_anything_is_read(source, lake, tmp_path, first_try) -> None:
    with pytest.raises(SourceChangedError, match=r"max_ids_per_job changed \(4 -> 5\).*restore the settings"):
        stored(source, lake, tmp_path, max_ids_per_job=5).load(Reader(source))


def test_a_source_rewritten_with_the_same_ids_is_compared_once_then_trusted(
    source, lake, tmp_path, first_try
):
    os.utime(source, ns=(1, 1))  # same bytes, another modification time
    read = Reader(source)
    assert stored(source, lake, tmp_path, "worker-2").load(read) is not None
    assert stored(source, lake, tmp_path, "worker-3").load(read) is not None
    assert read.calls == 1  # the plan now holds the new fingerprint


def test_a_source_with_other_ids_fails_naming_the_file_and_the_chunk(source, lake, tmp_path, first_try):
    source.write_text(source.read_text().replace("105", "999"))  # same size, other IDs
    os.utime(source, ns=(1, 1))
    with pytest.raises(SourceChangedError, match=rf"{source} was rewritten .*chunk 2 now holds other IDs"):
        stored(source, lake, tmp_path, "worker-2").load(Reader(source))


def test_a_gone_source_fails_clearly(source, lake, tmp_path, first_try) -> None:
    source.unlink()
    with pytest.raises(SourceChangedError, match="restore the source"):
        stored(source, lake, tmp_path, "worker-2").load(Reader(source))


def test_a_chunk_is_fetched_from_its_copy_in_object_storage_and_checked(source, s3_bucket, tmp_path):
    plan = stored(source, s3_bucket, tmp_path)
    planned = plan.save(Reader(source)(plan.staging), plan.fingerprint())
    elsewhere = stored(source, s3_bucket, tmp_path, "worker-2")
    chunk = elsewhere.load(Reader(source)).chunks[1]  # type: ignore[union-attr]
    read = Reader(source)
    elsewhere.restage(chunk, read)
    assert (chunk.path.read_text(), read.calls) == (texts(planned)[1], 0)
    storage.write_text(plan.staged(chunk), "1\n2\n3\n4\n")
    with pytest.raises(SourceChangedError, match="not the ones planned"):
        elsewhere.restage(chunk, read)


def test_a_chunk_without_its_copy_is_read_again_and_checked(source, lake, tmp_path, first_try) -> None:
    plan = stored(source, lake, tmp_path, "worker-2")
    chunk = plan.load(Reader(source)).chunks[2]  # type: ignore[union-attr]
    storage.remove(plan.staged(chunk))
    chunk.path.unlink(missing_ok=True)
    plan.restage(chunk, Reader(source))
    assert chunk.path.read_text() == "108\n109\n"
    chunk.path.unlink()
    source.write_text(source.read_text().replace("109", "999"))
    with pytest.raises(SourceChangedError, match="chunk 3 now holds other IDs"):
        plan.restage(chunk, Reader(source))


def test_finish_removes_the_staged_chunks_and_keeps_the_plan(source, lake, tmp_path, first_try) -> None:
    plan = stored(source, lake, tmp_path)
    plan.finish(first_try)
    assert [storage.exists(plan.staged(chunk)) for chunk in first_try.chunks] == [False] * 3
    assert storage.exists(plan.uri)

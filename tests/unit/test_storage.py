"""Specification of the local / object-storage helpers: sources, destinations, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_xcompliance.storage import (
    atomic_writer,
    copy,
    exists,
    open_source,
    read_text,
    remove,
    resolve_destination,
    source_size,
    write_text,
)


def write_then_break(destination: str, data: bytes) -> None:
    with atomic_writer(destination) as writer:
        writer.file.write(data)
        raise RuntimeError("stream broke")


def test_local_source_opens_seekable_and_reports_its_size(tmp_path: Path) -> None:
    source = tmp_path / "ids.txt"
    source.write_bytes(b"1\n2\n")
    assert source_size(f"file://{source}") == 4
    with open_source(source) as handle:
        handle.seek(2)
        assert handle.read() == b"2\n"


def test_object_storage_source(memory_fs: None) -> None:
    from airflow.sdk import ObjectStoragePath

    ObjectStoragePath("memory://bucket/ids.txt").write_bytes(b"10\n20\n")
    assert source_size("memory://bucket/ids.txt") == 6
    with open_source("memory://bucket/ids.txt") as handle:
        assert handle.read() == b"10\n20\n"


def test_folder_destination_receives_the_default_name(tmp_path: Path) -> None:
    assert resolve_destination(tmp_path, "7.jsonl") == str(tmp_path / "7.jsonl")
    assert resolve_destination("s3://bucket/results/", "7.jsonl") == "s3://bucket/results/7.jsonl"


def test_file_destination_is_kept(tmp_path: Path) -> None:
    assert resolve_destination(tmp_path / "out.jsonl", "7.jsonl") == str(tmp_path / "out.jsonl")


def test_atomic_local_write_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.jsonl"
    with atomic_writer(str(target)) as writer:
        writer.file.write(b"a\n")
        assert not target.exists()
    assert target.read_bytes() == b"a\n"
    assert list(target.parent.iterdir()) == [target]


def test_failed_local_write_leaves_no_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="stream broke"):
        write_then_break(str(target), b"partial")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_an_earlier_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old complete\n")
    with pytest.raises(RuntimeError, match="stream broke"):
        write_then_break(str(target), b"new partial")
    assert target.read_bytes() == b"old complete\n"


def test_restart_drops_what_was_written(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with atomic_writer(str(target)) as writer:
        writer.file.write(b"garbage")
        writer.restart()
        assert writer.size == 0
        writer.file.write(b"good\n")
    assert target.read_bytes() == b"good\n"


def test_atomic_object_storage_write(memory_fs: None) -> None:
    from airflow.sdk import ObjectStoragePath

    with atomic_writer("memory://bucket/results/out.jsonl") as writer:
        writer.file.write(b"x\n")
        assert not ObjectStoragePath("memory://bucket/results/out.jsonl").exists()
    assert ObjectStoragePath("memory://bucket/results/out.jsonl").read_bytes() == b"x\n"


def test_failed_object_storage_write_leaves_no_object(memory_fs: None) -> None:
    from airflow.sdk import ObjectStoragePath

    with pytest.raises(RuntimeError, match="stream broke"):
        write_then_break("memory://bucket/results/out.jsonl", b"partial")
    assert not ObjectStoragePath("memory://bucket/results/out.jsonl").exists()


def test_small_files_are_read_copied_and_removed_on_either_side(tmp_path: Path, memory_fs: None) -> None:
    write_text("memory://bucket/plan.json", "{}")
    assert read_text("memory://bucket/plan.json") == "{}"
    assert read_text(str(tmp_path / "missing.json")) is None
    copy("memory://bucket/plan.json", str(tmp_path / "sub" / "plan.json"))
    assert (tmp_path / "sub" / "plan.json").read_text() == "{}"
    remove("memory://bucket/plan.json")
    remove(str(tmp_path / "sub" / "plan.json"))
    remove(str(tmp_path / "never-there.json"))
    assert not exists("memory://bucket/plan.json")
    assert not exists(str(tmp_path / "sub" / "plan.json"))

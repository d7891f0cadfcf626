from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from airflow_provider_xcompliance.paths import as_path, is_local


@pytest.mark.parametrize(
    ("location", "local"),
    [
        ("/tmp/a", True),
        ("relative/a.txt", True),
        ("C:\\ids\\a.txt", True),
        ("file:///tmp/a", True),
        ("local:///tmp/a", True),
        ("s3://b/a", False),
        ("memory://b/a", False),
        (Path("/tmp/a"), True),
        (UPath("memory://b/a"), False),
    ],
)
def test_one_decision_says_which_locations_take_the_local_route(location: str | Path, local: bool) -> None:
    assert is_local(location) is local


def test_a_local_location_is_its_filesystem_path() -> None:
    assert as_path("file:///tmp/a%20b.txt") == Path("/tmp/a b.txt")
    assert as_path("local:///tmp/a") == Path("/tmp/a")
    assert as_path("/tmp/a.txt") == Path("/tmp/a.txt")
    assert as_path(UPath("file:///tmp/a")) == Path("/tmp/a")
    assert type(as_path(Path("/tmp/a"))) is type(Path("/tmp/a"))


def test_an_object_storage_uri_is_an_airflow_path_with_its_connection() -> None:
    from airflow.sdk import ObjectStoragePath

    path = as_path("s3://aws_lake@bucket/ids/*.txt")
    assert isinstance(path, ObjectStoragePath)
    assert str(path) == "s3://aws_lake@bucket/ids/*.txt"  # the connection stays with the path
    assert not is_local(path)


def test_path_objects_are_kept_as_they_are() -> None:
    memory = UPath("memory://b/a")
    assert as_path(memory) is memory
    with pytest.raises(TypeError, match="Not a path"):
        as_path(42)  # type: ignore[arg-type]

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from airflow_provider_xcompliance.paths import as_path, is_local, local_path


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


def test_a_local_uri_is_its_filesystem_path() -> None:
    assert local_path("file:///tmp/a%20b.txt") == Path("/tmp/a b.txt")
    assert local_path("/tmp/a.txt") == Path("/tmp/a.txt")


def test_paths_follow_the_same_decision() -> None:
    assert isinstance(as_path("file:///tmp/a"), Path)
    assert isinstance(as_path("memory://b/a"), UPath)
    assert as_path(UPath("file:///tmp/a")) == Path("/tmp/a")

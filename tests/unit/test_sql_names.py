"""Names from user input become SQL text only when they cannot carry SQL."""

from __future__ import annotations

import pytest

from airflow_provider_xcompliance.sql_names import Quoting, column_name, sql_name

DOUBLE, BACKTICK, BRACKETS = Quoting(), Quoting.from_format("`{}`"), Quoting.from_format("[{}]")


@pytest.mark.parametrize(
    ("text", "quoting", "sql"),
    [
        ("posts", DOUBLE, "posts"),
        ("analytics.posts", DOUBLE, "analytics.posts"),
        ('"x-data"."Posts Table"', DOUBLE, '"x-data"."Posts Table"'),
        ('warehouse."x-data".posts', DOUBLE, 'warehouse."x-data".posts'),
        ("`x-data`.`Posts Table`", BACKTICK, "`x-data`.`Posts Table`"),
        ("[dbo].[Posts Table]", BRACKETS, "[dbo].[Posts Table]"),
        ("_tmp$1", DOUBLE, "_tmp$1"),
    ],
)
def test_plain_and_quoted_parts_are_kept_as_written(text: str, quoting: Quoting, sql: str) -> None:
    assert sql_name(text, quoting) == sql


@pytest.mark.parametrize(
    "text",
    [
        "posts; DROP TABLE posts",
        'posts"; DROP TABLE posts; --',
        '"posts""; DROP TABLE x; --"',
        "posts WHERE 1=1",
        "posts--",
        "1posts",
        "a..b",
        "posts.",
        '"unbalanced',
        '"a"b',
        '"line\nbreak"',
        "a.b.c.d",
        "",
    ],
)
def test_anything_that_could_carry_sql_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid table name"):
        sql_name(text, DOUBLE)


def test_a_column_name_is_one_part() -> None:
    assert column_name('"Post ID"', DOUBLE) == '"Post ID"'
    with pytest.raises(ValueError, match="Invalid column name"):
        column_name("t.id", DOUBLE)


def test_quote_characters_come_from_the_dialect_format() -> None:
    assert Quoting.from_format('"{}"') == DOUBLE
    with pytest.raises(ValueError, match="Unsupported identifier quoting"):
        Quoting.from_format("{}")

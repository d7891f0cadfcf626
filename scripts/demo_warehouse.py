"""A synthetic warehouse for the demo and the example DAG's tests: posts and users in an embedded DuckDB file.

IDs look like real snowflakes (19-digit post IDs, 10-digit user IDs) so the emulator's rules and the
provider's validation see realistic input. A third of the posts carry geo columns, which the example DAG
nulls for posts whose compliance action is ``scrub_geo``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

POST_ID_BASE = 1_500_000_000_000_000_000
USER_ID_BASE = 1_000_000_000


def seed_warehouse(path: Path, *, posts: int, users: int) -> None:
    """Create (or replace) the ``posts`` and ``users`` tables with deterministic synthetic rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(
            """
            CREATE OR REPLACE TABLE users AS
            SELECT ($user_base + i * 7919)::BIGINT AS id,
                   'user_' || i AS username,
                   TIMESTAMP '2012-01-01' + to_seconds(i * 3600) AS created_at
            FROM range($users) t(i)
            """,
            {"user_base": USER_ID_BASE, "users": users},
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE posts AS
            SELECT ($post_base + i * 1000003)::BIGINT AS id,
                   ($user_base + (i % $users) * 7919)::BIGINT AS author_id,
                   'post number ' || i AS text,
                   CASE WHEN i % 3 = 0 THEN 40.0 + (i % 1000) / 1000.0 END AS geo_lat,
                   CASE WHEN i % 3 = 0 THEN -70.0 - (i % 1000) / 1000.0 END AS geo_lon,
                   TIMESTAMP '2020-01-01' + to_seconds(i * 60) AS created_at
            FROM range($posts) t(i)
            """,
            {"post_base": POST_ID_BASE, "user_base": USER_ID_BASE, "users": max(users, 1), "posts": posts},
        )


def warehouse_counts(path: Path) -> dict[str, int]:
    """Row counts a person checks before and after the compliance run."""
    with duckdb.connect(str(path), read_only=True) as con:
        posts, geo = con.execute("SELECT count(*), count(geo_lat) FROM posts").fetchone() or (0, 0)
        (users,) = con.execute("SELECT count(*) FROM users").fetchone() or (0,)
    return {"posts": int(posts), "posts_with_geo": int(geo), "users": int(users)}

"""The example DAG runs green against the emulator and leaves the warehouse exactly compliant."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from airflow_provider_xcompliance.actions import effective_action
from airflow_provider_xcompliance.emulator import EmulatorHandle
from scripts.demo_warehouse import seed_warehouse, warehouse_counts

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "x_compliance_example.py"
POSTS, USERS = 3000, 600

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("x_compliance_example", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_actions(emulator: EmulatorHandle, job_type: str) -> dict[str, set[int]]:
    """IDs per action that the emulator decided for every job of ``job_type``."""
    actions: dict[str, set[int]] = {}
    for job in emulator.state()["jobs"]:
        if job["type"] == job_type:
            for record in emulator.ground_truth(job["id"]):
                action = effective_action(record["action"], record.get("reason"))
                actions.setdefault(action, set()).add(int(record["id"]))
    return actions


def test_example_dag_parses_without_import_errors() -> None:
    from tests.version_compat import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    dag = bag.get_dag("x_compliance_example")
    assert dag is not None
    assert {"check_posts", "check_users", "posts_to_parquet", "apply_posts", "apply_users", "report"} <= set(
        dag.task_ids
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    seed_warehouse(path, posts=POSTS, users=USERS)
    return path


def read_ids(warehouse: Path, sql: str) -> set[int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {row[0] for row in con.execute(sql).fetchall()}


def test_example_dag_makes_the_warehouse_match_the_emulator_ground_truth(
    x_conn_env: EmulatorHandle, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XCOMPLIANCE_EXAMPLE_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(warehouse)}))
    posts_before = read_ids(warehouse, "SELECT id FROM posts")
    geo_before = read_ids(warehouse, "SELECT id FROM posts WHERE geo_lat IS NOT NULL")
    users_before = read_ids(warehouse, "SELECT id FROM users")
    workdir = tmp_path / "run"

    run = load_example().dag.test(run_conf={"workdir": str(workdir)})

    assert run.state == "success"
    posts, users = expected_actions(x_conn_env, "tweets"), expected_actions(x_conn_env, "users")
    assert posts.get("delete")
    assert posts.get("scrub_geo")
    assert users.get("delete")
    assert read_ids(warehouse, "SELECT id FROM posts") == posts_before - posts["delete"]
    assert read_ids(warehouse, "SELECT id FROM posts WHERE geo_lat IS NOT NULL") == (
        geo_before - posts["delete"] - posts["scrub_geo"]
    )
    assert read_ids(warehouse, "SELECT id FROM users") == users_before - users["delete"]

    report: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    assert report["after"] == warehouse_counts(warehouse)
    assert sum(report["changes"]["posts_deleted"].values()) == len(posts["delete"])
    assert sum(report["changes"]["users_deleted"].values()) == len(users["delete"])
    audit = json.loads((workdir / "tables" / "tweets" / "_applied-warehouse-posts.json").read_text())
    assert audit["rows_deleted"] == len(posts["delete"])
    assert audit["rows_scrubbed"] == len((posts["scrub_geo"] & geo_before) - posts["delete"])

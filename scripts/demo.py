"""``make demo``: the example DAG end to end against the bundled X API emulator, with no credentials.

Starts the emulator on a free port, seeds a DuckDB warehouse with synthetic posts and users, runs
``airflow dags test x_compliance_example`` in an isolated Airflow home, then prints what changed in the
warehouse and where the Parquet tables are, checks the warehouse against the emulator's ground truth, and
stops the emulator. Exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from airflow_provider_xcompliance.actions import effective_action
from airflow_provider_xcompliance.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from scripts.demo_warehouse import seed_warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "x_compliance_example"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    demo_dir = args.demo_dir.resolve()
    shutil.rmtree(demo_dir, ignore_errors=True)
    (demo_dir / "logs").mkdir(parents=True)
    warehouse, workdir = demo_dir / "warehouse.duckdb", demo_dir / "run"
    started = time.monotonic()

    _step(f"Seeding the DuckDB warehouse: {args.posts:,} posts, {args.users:,} users -> {warehouse}")
    seed_warehouse(warehouse, posts=args.posts, users=args.users)
    before = _warehouse_ids(warehouse)

    config = EmulatorConfig(processing_seconds=args.processing_seconds, token="demo-token")
    emulator_log = (demo_dir / "logs" / "emulator.log").open("w")
    with emulator_log, run_emulator(config, subprocess=True, log=emulator_log) as emulator:
        _step(f"X API emulator listening on {emulator.base_url}  (log: {emulator_log.name})")
        env = _airflow_env(demo_dir, emulator, warehouse)
        _airflow(["db", "migrate"], env, demo_dir / "logs" / "db_migrate.log")
        _step(f"airflow dags test {DAG_ID}  (log: {demo_dir / 'logs' / 'dags_test.log'})")
        conf = json.dumps({"workdir": str(workdir)})
        _airflow(["dags", "test", DAG_ID, "-c", conf], env, demo_dir / "logs" / "dags_test.log")
        state = _last_run_state(env, demo_dir / "logs" / "reserialize.log")
        if state != "success":
            return _fail(f"the DAG run ended {state!r}: see {demo_dir / 'logs' / 'dags_test.log'}")
        report = json.loads((workdir / "report.json").read_text())
        _print_report(report, workdir)
        problems = _check_against_ground_truth(emulator, warehouse, before)

    if problems:
        return _fail("the warehouse does not match the emulator's ground truth:\n  " + "\n  ".join(problems))
    _step(f"Warehouse matches the emulator's ground truth. Done in {time.monotonic() - started:.0f} s.")
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000, help="posts in the warehouse (default 100k)")
    parser.add_argument("--users", type=int, default=20_000, help="users in the warehouse (default 20k)")
    parser.add_argument(
        "--processing-seconds", type=float, default=3.0, help="how long the emulator takes per job"
    )
    parser.add_argument("--demo-dir", type=Path, default=REPO_ROOT / ".demo", help="where everything goes")
    return parser.parse_args(argv)


def _airflow_env(demo_dir: Path, emulator: EmulatorHandle, warehouse: Path) -> dict[str, str]:
    """An isolated Airflow home: ``x_default`` points at the emulator, ``warehouse`` at the DuckDB file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(emulator.conn_env())
    env.update(
        {
            "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(warehouse)}),
            "AIRFLOW_HOME": str(demo_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "XCOMPLIANCE_EXAMPLE_POLL_INTERVAL": "1",
            # The venv's bin first: Airflow starts helpers by name.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path) -> None:
    command = [sys.executable, "-m", "airflow", *args]
    with log.open("w") as out:
        completed = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(_fail(f"`airflow {' '.join(args[:2])}` exited {completed.returncode}: see {log}"))


def _last_run_state(env: dict[str, str], log: Path) -> str | None:
    # `list-runs` looks the DAG up in the metadata database, where Airflow 3.0's `dags test` does not put it.
    _airflow(["dags", "reserialize"], env, log)
    command = [sys.executable, "-m", "airflow", "dags", "list-runs", DAG_ID, "--output", "json"]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    # Airflow prints warnings before the JSON: the runs are the line that is a JSON list.
    runs = next(json.loads(line) for line in output.splitlines() if line.startswith("["))
    return runs[0]["state"] if runs else None


def _print_report(report: dict[str, Any], workdir: Path) -> None:
    before, after = report["before"], report["after"]
    print("\n  warehouse          before       after")
    for key in ("posts", "posts_with_geo", "users"):
        print(f"  {key:<16}{before[key]:>10,}  {after[key]:>10,}")
    print("\n  change               reason          rows")
    for change, reasons in report["changes"].items():
        for reason, rows in sorted(reasons.items()):
            print(f"  {change:<20} {reason:<12}{rows:>8,}")
    print("\n  Parquet tables (one folder per action; load them with read_parquet('<folder>/*.parquet')):")
    for table in sorted((workdir / "tables").glob("*/*/")):
        print(f"    {table}")
    print(f"  Report: {workdir / 'report.json'}\n")


def _warehouse_ids(warehouse: Path) -> dict[str, set[int]]:
    queries = {
        "posts": "SELECT id FROM posts",
        "geo": "SELECT id FROM posts WHERE geo_lat IS NOT NULL",
        "users": "SELECT id FROM users",
    }
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {name: {row[0] for row in con.execute(sql).fetchall()} for name, sql in queries.items()}


def _check_against_ground_truth(
    emulator: EmulatorHandle, warehouse: Path, before: dict[str, set[int]]
) -> list[str]:
    """Every ID the emulator flagged was applied, and nothing else changed."""
    flagged: dict[tuple[str, str], set[int]] = {}
    for job in emulator.state()["jobs"]:
        for record in emulator.ground_truth(job["id"]):
            action = effective_action(record["action"], record.get("reason"))
            flagged.setdefault((job["type"], action), set()).add(int(record["id"]))
    posts_deleted = flagged.get(("tweets", "delete"), set())
    expected = {
        "posts": before["posts"] - posts_deleted,
        "geo": before["geo"] - posts_deleted - flagged.get(("tweets", "scrub_geo"), set()),
        "users": before["users"] - flagged.get(("users", "delete"), set()),
    }
    after = _warehouse_ids(warehouse)
    return [
        f"{name}: {len(after[name] - ids):,} unexpected rows, {len(ids - after[name]):,} missing"
        for name, ids in expected.items()
        if after[name] != ids
    ]


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _fail(message: str) -> int:
    print(f"demo FAILED: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The README's main-job command: ``airflow dags test`` of the example DAG against a subprocess emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import demo


@pytest.mark.slow
def test_demo_runs_the_example_dag_with_airflow_dags_test_and_matches_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = demo.main(
        ["--posts", "3000", "--users", "600", "--processing-seconds", "0.5", "--demo-dir", str(tmp_path)]
    )

    out = capsys.readouterr().out
    assert status == 0, out
    assert "Warehouse matches the emulator's ground truth" in out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["before"]["posts"] == 3000
    assert report["after"]["posts"] == 3000 - sum(report["changes"]["posts_deleted"].values())
    assert sorted(p.name for p in (tmp_path / "run" / "tables" / "tweets").iterdir() if p.is_dir()) == [
        "delete",
        "scrub_geo",
    ]

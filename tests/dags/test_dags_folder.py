"""The dags folder as each ``dag.test()`` parses it, from an interpreter that has imported no test module yet.

``dag.test()`` parses the whole folder in the test process. A DAG file that imports another DAG file parses
cleanly there only when pytest happened to import that file first (its DAGs are then not registered a second
time, under the importing file): run alone, the test would log errors its run did not cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PARSE = """
import json, sys
from tests.version_compat import DagBag
bag = DagBag(dag_folder=sys.argv[1])
with open(sys.argv[2], "w") as out:
    json.dump({"errors": bag.import_errors, "dags": sorted(bag.dag_ids)}, out)
"""


@pytest.mark.slow
def test_the_dags_folder_parses_without_errors_in_a_fresh_interpreter(tmp_path: Path) -> None:
    report = tmp_path / "dagbag.json"
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    command = [sys.executable, "-c", PARSE, folder, str(report)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(report.read_text())
    assert parsed["errors"] == {}
    assert {"x_compliance_example", "xc_lifecycle_chunks", "xc_s3_pipeline", "xc_api_reattach"} <= set(
        parsed["dags"]
    )

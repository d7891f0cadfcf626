"""Test-wide setup: an isolated Airflow home, configured before the first ``import airflow``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Airflow reads these at import time: they must be set before any test module imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="xcompliance-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
# dag.test() only runs DAGs found under the dags folder: the repo root covers dags/ and tests/dags/
# (.airflowignore keeps the package, the venv and the benchmarks out of parsing).
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("AIRFLOW_CONN_X_DEFAULT", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A fresh metadata database in the session's Airflow home (created once, on first use)."""
    from airflow.utils import db

    db.resetdb()
    return Path(_AIRFLOW_HOME)

"""The package registers itself as an Airflow provider with an ``x_api`` connection type."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import airflow_provider_xcompliance
from airflow_provider_xcompliance import get_provider_info
from airflow_provider_xcompliance.version_compat import AIRFLOW_V_3_2_PLUS


def test_entry_point_resolves_to_get_provider_info() -> None:
    (entry_point,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_xcompliance")
    ]
    assert entry_point.load() is get_provider_info


def test_provider_info_declares_the_x_api_connection_type() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-xcompliance"
    assert info["versions"] == [airflow_provider_xcompliance.__version__]
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "x_api"
    assert conn["hook-class-name"] == "airflow_provider_xcompliance.hooks.compliance.XComplianceHook"


PROVIDER_MODULES = [
    module
    for kind in ("hooks", "operators", "sensors", "triggers")
    for entry in get_provider_info()[kind]
    for module in entry["python-modules"]
]


def test_every_module_listed_in_provider_info_imports() -> None:
    for name in PROVIDER_MODULES:
        importlib.import_module(name)
    hook_module, _, hook_class = get_provider_info()["connection-types"][0]["hook-class-name"].rpartition(".")
    assert hasattr(importlib.import_module(hook_module), hook_class)


def test_no_provider_module_imports_airflow_through_a_deprecation_shim() -> None:
    """On every supported release the names come from where that release keeps them (``version_compat``)."""
    code = (
        "import warnings, airflow\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.simplefilter('error', FutureWarning)\n"  # Airflow's DeprecatedImportWarning is one
        + "".join(f"import {module}\n" for module in PROVIDER_MODULES)
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_airflow_providers_list_shows_the_provider() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    # Airflow 3.0 logs to stdout too: the listing is the line that is a JSON list.
    (listed,) = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith(("[{", "[]"))]
    assert any(p["package_name"] == "airflow-provider-xcompliance" for p in listed)


@pytest.mark.skipif(
    not AIRFLOW_V_3_2_PLUS, reason="before 3.2 the form comes from the hook, with the FAB provider installed"
)
def test_connection_form_is_declared_for_the_ui_without_importing_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["x_api"]
    assert behaviour["relabeling"] == {"password": "Bearer token", "host": "API base URL"}
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}
    widgets = manager.connection_form_widgets
    assert widgets["extra__x_api__timeout"].field["schema"]["title"] == "Request timeout (seconds)"
    assert "extra__x_api__max_retries" in widgets

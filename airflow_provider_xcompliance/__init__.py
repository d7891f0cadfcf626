"""Apache Airflow provider for the X API v2 batch compliance endpoints."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

HOOK_CLASS = "airflow_provider_xcompliance.hooks.compliance.XComplianceHook"

# The connection form, declared the Airflow 3.2+ way (read without importing the hook or wtforms).
# XComplianceHook.get_ui_field_behaviour() serves the same values to Airflow 3.0 and 3.1.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "schema", "port"],
    "relabeling": {"password": "Bearer token", "host": "API base URL"},
    "placeholders": {
        "host": "https://api.x.com",
        "password": "App-only bearer token (OAuth 2.0)",
        "extra": '{"timeout": 30, "max_retries": 5}',
    },
}
CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 30},
    },
    "max_retries": {
        "label": "Retries of transient errors",
        "schema": {"type": ["integer", "null"], "minimum": 0, "default": 5},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-xcompliance",
        "name": "X Compliance",
        "description": "Run X (Twitter) API v2 batch compliance jobs; turn the results into Parquet tables.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "x_api",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "X API",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "hooks": [
            {
                "integration-name": "X Compliance",
                "python-modules": ["airflow_provider_xcompliance.hooks.compliance"],
            }
        ],
        "operators": [
            {
                "integration-name": "X Compliance",
                "python-modules": [
                    "airflow_provider_xcompliance.operators.compliance",
                    "airflow_provider_xcompliance.operators.report",
                    "airflow_provider_xcompliance.operators.apply",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "X Compliance",
                "python-modules": ["airflow_provider_xcompliance.sensors.compliance"],
            }
        ],
        "triggers": [
            {
                "integration-name": "X Compliance",
                "python-modules": ["airflow_provider_xcompliance.triggers.compliance"],
            }
        ],
        "integrations": [
            {
                "integration-name": "X Compliance",
                "external-doc-url": "https://docs.x.com/x-api/compliance/batch-compliance/introduction",
                "tags": ["service"],
            }
        ],
    }

"""Apache Airflow provider for the X API v2 batch compliance endpoints."""

from __future__ import annotations

__version__ = "0.1.0"

HOOK_CLASS = "airflow_provider_xcompliance.hooks.compliance.XComplianceHook"


def get_provider_info() -> dict:
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

"""A faithful local X API batch-compliance service, for demos, tests and users' own DAG tests.

Start it with ``xcompliance-emulator`` (or ``python -m airflow_provider_xcompliance.emulator``), or from
Python with :func:`run_emulator`. It shares nothing with the client code but the documented wire format.
"""

from airflow_provider_xcompliance.emulator.app import create_app
from airflow_provider_xcompliance.emulator.config import EmulatorConfig
from airflow_provider_xcompliance.emulator.testing import EmulatorHandle, run_emulator

__all__ = ["EmulatorConfig", "EmulatorHandle", "create_app", "run_emulator"]

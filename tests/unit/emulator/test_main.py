"""The ``xcompliance-emulator`` command and ``run_emulator``'s subprocess mode."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from airflow_provider_xcompliance.emulator import EmulatorConfig, run_emulator
from airflow_provider_xcompliance.emulator.cli import args_from_config, config_from_args
from airflow_provider_xcompliance.emulator.server import is_loopback


def test_command_prints_base_url_and_connection_export_then_serves() -> None:
    command = [sys.executable, "-m", "airflow_provider_xcompliance.emulator", "--port", "0", "--token", "abc"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(3))
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert match is not None, banner
        base_url = match.group(1)
        response = httpx.get(
            f"{base_url}/2/compliance/jobs?type=tweets", headers={"Authorization": "Bearer abc"}
        )
        data_dir = Path(httpx.get(f"{base_url}/_emulator/state").json()["data_dir"])
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)

    connection = json.dumps(
        {"conn_type": "x_api", "host": base_url, "password": "abc"}, separators=(",", ":")
    )
    assert f"export AIRFLOW_CONN_X_DEFAULT='{connection}'" in banner
    assert response.status_code == 200
    assert "abc" not in stderr  # printed once for the user, never logged
    assert "Traceback" not in stderr
    assert process.returncode == 0
    assert not data_dir.exists()


def test_subprocess_mode_runs_the_same_config(tmp_path: Path) -> None:
    settings = EmulatorConfig(
        token="sub-token", processing_seconds=0, empty_list_style="empty", data_dir=tmp_path
    )
    with run_emulator(settings, subprocess=True) as emu:
        response = httpx.get(
            f"{emu.base_url}/2/compliance/jobs?type=users", headers={"Authorization": "Bearer sub-token"}
        )
        requests = emu.state()["requests"]

    assert response.json() == {}
    assert requests == {"GET /2/compliance/jobs": 1}


def test_subprocess_mode_refuses_a_custom_clock() -> None:
    with (
        pytest.raises(ValueError, match="wall time"),
        run_emulator(EmulatorConfig(clock=lambda: 0.0), subprocess=True),
    ):
        pass


def test_config_survives_the_command_line() -> None:
    settings = EmulatorConfig(
        token="t",
        processing_seconds=1.5,
        data_dir=Path("/tmp/somewhere"),
        problem_host="https://api.x.com",
        crlf=True,
        max_upload_ids=10,
        drop_download_after_bytes=5,
        fail_jobs_error="it broke",
    )

    assert config_from_args(args_from_config(settings)) == settings


def test_conn_env_points_the_default_connection_at_the_emulator(emulator_config: EmulatorConfig) -> None:
    with run_emulator(emulator_config) as emu:
        env = emu.conn_env()

    assert json.loads(env["AIRFLOW_CONN_X_DEFAULT"]) == {
        "conn_type": "x_api",
        "host": emu.base_url,
        "password": emulator_config.token,
    }


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)]
)
def test_only_loopback_hosts_count_as_safe(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback

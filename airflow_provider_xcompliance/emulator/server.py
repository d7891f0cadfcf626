"""Serving the emulator with uvicorn on a socket we bind ourselves, so port 0 yields a known free port."""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
import threading
from collections.abc import Callable

import uvicorn

from airflow_provider_xcompliance.emulator.app import create_app
from airflow_provider_xcompliance.emulator.config import EmulatorConfig

_UNSPECIFIED = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_json(base_url: str, token: str) -> str:
    """The ``AIRFLOW_CONN_X_DEFAULT`` value that points the provider at an emulator."""
    return json.dumps({"conn_type": "x_api", "host": base_url, "password": token}, separators=(",", ":"))


def startup_message(base_url: str, token: str) -> str:
    return (
        f"X compliance emulator listening on {base_url}\n"
        "Point Airflow at it with:\n"
        f"  export AIRFLOW_CONN_X_DEFAULT={shlex.quote(connection_json(base_url, token))}"
    )


class EmulatorServer(uvicorn.Server):
    """uvicorn with the emulator app, a pre-bound socket and a ``ready`` event set once it accepts."""

    def __init__(self, config: EmulatorConfig, on_ready: Callable[[], None] | None = None) -> None:
        self.on_ready = on_ready
        self.app = create_app(config)
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((config.host, config.port))
        self.ready = threading.Event()
        # No access log: request lines would carry the storage URLs' signatures.
        super().__init__(
            uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
        )
        host = "127.0.0.1" if config.host in _UNSPECIFIED else config.host
        host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{host}:{self.socket.getsockname()[1]}"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:  # startup failed (uvicorn reports why)
            self.ready.set()
            if self.on_ready is not None:
                self.on_ready()

    def serve_forever(self) -> None:
        """Serve until ``should_exit`` is set (or a signal, in the main thread)."""
        self.run(sockets=[self.socket])

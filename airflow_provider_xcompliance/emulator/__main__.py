"""``xcompliance-emulator`` / ``python -m airflow_provider_xcompliance.emulator``: serve until interrupted."""

from __future__ import annotations

import contextlib
import logging
import sys

from airflow_provider_xcompliance.emulator.cli import config_from_args
from airflow_provider_xcompliance.emulator.server import EmulatorServer, is_loopback, startup_message


def main(argv: list[str] | None = None) -> None:
    config = config_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not is_loopback(config.host):
        print(
            f"WARNING: listening on {config.host}, not loopback: anyone who reaches it can use it.",
            file=sys.stderr,
        )
    server = EmulatorServer(
        config, on_ready=lambda: print(startup_message(server.base_url, config.token), flush=True)
    )
    # uvicorn re-raises Ctrl-C after its clean shutdown: there is nothing left to report.
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

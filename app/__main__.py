"""`python -m app`: serve the HTTP API with granian."""

from __future__ import annotations

import os
import sys
import tempfile

from granian.constants import Interfaces
from granian.server import Server

from app import config, logs
from app.telemetry import MULTIPROCESS_ENV, prepare_multiprocess_metrics


def main() -> int:
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"orders-api: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if settings.http.workers > 1:
        # Each worker is a process: their metrics meet in files, merged by /metrics.
        metrics_dir = os.environ.get(MULTIPROCESS_ENV) or tempfile.mkdtemp(prefix="orders-metrics-")
        prepare_multiprocess_metrics(metrics_dir)
    server = Server(
        "app.http.app:serve_app",
        address=settings.http.host,
        port=settings.http.port,
        interface=Interfaces.ASGI,
        workers=settings.http.workers,
        factory=True,
        log_enabled=False,
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

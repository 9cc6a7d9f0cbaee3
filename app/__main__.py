"""`python -m app`: serve the HTTP API with granian."""

from __future__ import annotations

import os
import sys
import tempfile

from granian.constants import Interfaces, Loops
from granian.server import Server

from app.process import settings_or_exit
from app.telemetry import MULTIPROCESS_ENV, prepare_multiprocess_metrics


def main() -> int:
    settings = settings_or_exit("orders-api")
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
        loop=Loops.uvloop,
        # Requests beyond this per worker wait in the listen backlog, not in memory.
        backpressure=settings.http.max_concurrency,
        factory=True,
        log_enabled=False,
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

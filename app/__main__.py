"""`python -m app`: serve the HTTP API with granian, and its /metrics on a port of its own."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server import Server

from app import telemetry
from app.auth.tokens import verifier_for
from app.config import Settings, require_auth
from app.process import settings_or_exit

log = logging.getLogger("app")


def check_auth(settings: Settings) -> None:
    """Refuse to start without a way to check tokens (one line), and read the key now."""
    require_auth(settings.auth)
    if not settings.auth.disabled:
        verifier_for(settings.auth)


def main() -> int:
    settings = settings_or_exit("orders-api", check_auth)
    if settings.auth.disabled:
        log.warning("authentication is disabled (AUTH_DISABLED=true): every caller is staff")
    # Workers are processes: their metrics meet in files, merged by this process's
    # /metrics, served apart from the API (METRICS_HOST, loopback by default).
    metrics_dir = os.environ.get(telemetry.MULTIPROCESS_ENV) or tempfile.mkdtemp(
        prefix="orders-metrics-"
    )
    telemetry.prepare_multiprocess_metrics(metrics_dir)
    telemetry.serve_metrics(settings.metrics_host, settings.auth.metrics_port, multiprocess=True)
    server = Server(
        "app.http.app:serve_app",
        address=settings.http.host,
        port=settings.http.port,
        interface=Interfaces.ASGI,
        workers=settings.http.workers,
        loop=Loops.uvloop,
        # Connections beyond this per worker wait in the listen backlog, not in memory. It
        # counts connections still sending their headers too, so it must be far above what
        # slow clients can hold (HTTP_HEADER_TIMEOUT bounds how long each holds one).
        backpressure=settings.http.max_concurrency,
        # A client gets HTTP_HEADER_TIMEOUT to send its headers (HTTP_BODY_TIMEOUT for the
        # body: app.http.limits); trickling ones are cut off instead of holding a slot.
        http1_settings=HTTP1Settings(
            header_read_timeout=round(settings.edge.header_timeout * 1000)
        ),
        factory=True,
        log_enabled=False,
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Starting one of our processes: settings or a one-line exit, logging, telemetry, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from app import config, logs, telemetry

BAD_CONFIG = 2  # the only non-zero exit besides a fatal Kafka error


def settings_or_exit(
    name: str, check: Callable[[config.Settings], object] | None = None
) -> config.Settings:
    """Read the settings (and `check` them) and configure logging; a bad setting ends the
    process in one line."""
    try:
        settings = config.load()
        if check is not None:
            check(settings)
    except config.ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(BAD_CONFIG) from None
    logs.configure(settings.log_level, settings.log_format)
    return settings


def run_worker(
    name: str,
    serve: Callable[[config.Settings, asyncio.Event], Coroutine[Any, Any, int]],
    *,
    metrics_port: Callable[[config.Settings], int],
) -> int:
    """Run a background worker (relay, consumer) until SIGTERM/SIGINT sets its stop event."""
    settings = settings_or_exit(name)
    telemetry.setup_tracing(name, settings.otel_endpoint)
    telemetry.serve_metrics(settings.metrics_host, metrics_port(settings))

    async def until_stopped() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await serve(settings, stop)

    try:
        return uvloop.run(until_stopped())
    finally:
        telemetry.shutdown_tracing()

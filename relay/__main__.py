"""`python -m relay`: publish the outbox to Kafka until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from app import config, logs, telemetry
from app.db.engine import create_engine, libpq_url
from relay.loop import Relay
from relay.publisher import FatalPublishError, KafkaPublisher, producer_config
from relay.wakeup import Wakeup

log = logging.getLogger("relay")


async def serve(settings: config.Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client_id = f"orders-relay-{socket.gethostname()}-{os.getpid()}"
    publisher = KafkaPublisher(producer_config(settings.kafka.brokers, client_id))
    engine = create_engine(settings.database, application_name="orders-relay")
    relay = Relay(engine, publisher, Wakeup(libpq_url(settings.database.url)), settings.relay, stop)
    try:
        await relay.run()
    except FatalPublishError as exc:
        log.critical("fatal Kafka producer error; exiting", extra={"error": str(exc)})
        return 1
    finally:
        publisher.close(timeout=10)
        await engine.dispose()
    log.info("relay stopped")
    return 0


def main() -> int:
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"orders-relay: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    telemetry.setup_tracing("orders-relay", settings.otel_endpoint)
    telemetry.serve_metrics(settings.metrics_host, settings.relay.metrics_port)
    try:
        return asyncio.run(serve(settings))
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    sys.exit(main())

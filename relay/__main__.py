"""`python -m relay`: publish the outbox to Kafka until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid

from app import config
from app.db.engine import create_engine
from app.db.wakeup import Wakeup
from app.process import run_worker
from relay.loop import Relay
from relay.publisher import FatalPublishError, KafkaPublisher, Publisher, producer_config
from relay.transactional import TransactionalPublisher

log = logging.getLogger("relay")


async def serve(settings: config.Settings, stop: asyncio.Event) -> int:
    client_id = f"orders-relay-{socket.gethostname()}-{os.getpid()}"
    client = config.kafka_client_config(settings.kafka)
    producer = producer_config(client, client_id)
    relay_id = uuid.uuid4()  # its leases' owner and its transactional producer's name
    publisher: Publisher = (
        TransactionalPublisher(
            producer,
            settings.relay.transactional_id_prefix,
            relay_id,
            timeout=settings.relay.kafka_timeout,
        )
        if settings.relay.fencing
        else KafkaPublisher(producer)
    )
    engine = create_engine(settings.database, application_name="orders-relay")
    relay = Relay(engine, publisher, Wakeup(settings.database), settings.relay, stop, relay_id)
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
    return run_worker("orders-relay", serve, metrics_port=lambda s: s.relay.metrics_port)


if __name__ == "__main__":
    sys.exit(main())

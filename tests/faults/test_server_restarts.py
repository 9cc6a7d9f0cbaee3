"""The broker and the database go away while orders keep coming, and come back."""

from __future__ import annotations

import pytest

from scripts.stack.waiting import wait_for
from tests.faults.conftest import Scenario

ORDERS = 300
RATE = 30.0


def _accepted(scenario: Scenario) -> int:
    assert scenario.load is not None
    return len(scenario.load.accepted)


def test_kafka_restart_while_orders_keep_coming(scenario: Scenario) -> None:
    broker = scenario.kafka.local
    if broker is None:
        pytest.skip("KAFKA_BROKERS points at a broker this test may not restart")
    scenario.send(ORDERS, RATE)
    wait_for(lambda: _accepted(scenario) >= 60, timeout=60, what="orders before the outage")
    broker.stop()
    during = _accepted(scenario)
    # The outbox is the buffer: the API keeps taking orders while Kafka is away.
    wait_for(
        lambda: _accepted(scenario) >= during + 60, timeout=60, what="orders during the outage"
    )
    broker.start()
    scenario.restarts += 1
    result = scenario.finish()
    assert result.clean, result
    assert result.orders == ORDERS


def test_postgres_restart_while_orders_keep_coming(scenario: Scenario) -> None:
    database = scenario.postgres.local
    if database is None:
        pytest.skip("DATABASE_URL points at a server this test may not restart")
    load = scenario.send(ORDERS, RATE)
    wait_for(lambda: _accepted(scenario) >= 60, timeout=60, what="orders before the outage")
    database.kill()  # a crash, not a polite shutdown: recovery runs on the next start
    scenario.kills += 1
    wait_for(lambda: load.statuses[503] >= 3, timeout=30, what="the API to answer 503 meanwhile")
    database.start()
    scenario.restarts += 1
    result = scenario.finish()
    assert load.retry_after_seen, "503 answers carry Retry-After"
    assert not [status for status in load.statuses if status >= 500 and status != 503], (
        load.statuses
    )
    assert result.clean, result
    assert result.orders == ORDERS

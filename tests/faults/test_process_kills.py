"""Processes killed with SIGKILL in the middle of their work, several times, and restarted."""

from __future__ import annotations

from scripts.stack.waiting import wait_for
from tests.faults.conftest import Scenario

ORDERS = 400
RATE = 40.0


def _progress(scenario: Scenario, at_least: int) -> None:
    assert scenario.load is not None
    wait_for(
        lambda: scenario.load is not None and scenario.load.sent >= at_least,
        timeout=60,
        what=f"{at_least} orders sent",
    )


def test_relay_killed_mid_batch_loses_nothing(scenario: Scenario) -> None:
    scenario.send(ORDERS, RATE)
    for kill in range(1, 5):
        _progress(scenario, kill * ORDERS // 5)
        scenario.restart("relay")
    result = scenario.finish()
    assert result.clean, result
    assert result.orders == ORDERS


def test_consumer_killed_mid_batch_applies_each_event_once(scenario: Scenario) -> None:
    scenario.send(ORDERS, RATE)
    for kill in range(1, 5):
        _progress(scenario, kill * ORDERS // 5)
        scenario.restart("consumer")
    result = scenario.finish()
    assert result.clean, result
    assert result.orders == ORDERS


def test_two_relays_and_two_consumers_keep_order_and_apply_once(scenario: Scenario) -> None:
    scenario.pipeline.start("relay")
    scenario.pipeline.start("consumer")
    scenario.send(ORDERS, RATE)
    _progress(scenario, ORDERS // 2)
    # Hand-overs under load: one relay dies, its shards move to the other, a new one joins.
    scenario.restart("relay", index=0)
    _progress(scenario, 3 * ORDERS // 4)
    scenario.restart("consumer", index=0)
    result = scenario.finish()
    assert result.clean, result
    assert len(scenario.pipeline.running("relay")) == 0  # all stopped by finish()
    assert result.orders == ORDERS

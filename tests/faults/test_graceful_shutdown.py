"""SIGTERM drains: in-flight work finishes (or is cleanly abandoned), exit code 0, nothing lost."""

from __future__ import annotations

import signal
import threading

import httpx
import psycopg
import pytest

from scripts.stack.waiting import wait_for
from tests.faults.conftest import Scenario
from tests.support.pipeline import SEED_ORDER

ORDERS = 200
RATE = 40.0


def test_api_finishes_in_flight_requests(scenario: Scenario) -> None:
    pipeline = scenario.pipeline
    with pipeline.client() as client:
        order_id = client.post("/api/v1/orders", json=SEED_ORDER).json()["order"]["id"]
    pipeline.wait_for_status(order_id, "confirmed")
    outcome: dict[str, httpx.Response | Exception] = {}

    def cancel() -> None:
        try:
            with pipeline.client(timeout=30) as client:
                outcome["response"] = client.post(f"/api/v1/orders/{order_id}/cancel")
        except httpx.HTTPError as exc:
            outcome["response"] = exc

    with psycopg.connect(scenario.database_url) as locker:
        # Hold the order's row: the cancel request will wait on it, in flight.
        locker.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (order_id,))
        request = threading.Thread(target=cancel)
        request.start()
        wait_for(
            lambda: _waiting_on_lock(scenario.database_url), timeout=10, what="the request to block"
        )
        api = pipeline.processes["api"][0]
        api.signal(signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):  # no new connections are taken
            httpx.get(f"{pipeline.api_url}/health/live", timeout=2)
        assert api.returncode is None  # still draining
        locker.rollback()
    request.join(30)
    response = outcome["response"]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200
    assert response.json()["order"]["status"] == "cancelled"
    assert api.wait(30) == 0


def test_relay_and_consumer_drain_on_sigterm_and_lose_nothing(scenario: Scenario) -> None:
    scenario.send(ORDERS, RATE)
    for round_ in range(1, 3):
        wait_for(
            lambda r=round_: scenario.load is not None and scenario.load.sent >= r * ORDERS // 3,
            timeout=60,
            what="orders flowing",
        )
        for name in ("relay", "consumer"):
            process = scenario.pipeline.running(name)[0]
            assert process.stop(timeout=30) == 0, f"{name} exits 0 on SIGTERM"
            scenario.pipeline.start(name)
            scenario.restarts += 1
    result = scenario.finish()
    assert result.clean, result
    assert result.orders == ORDERS


def _waiting_on_lock(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
    return row is not None and row[0] > 0

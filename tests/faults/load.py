"""A steady stream of orders, as a careful client sends them: each with its own
Idempotency-Key, retried with that key on 503, 409 and connection errors, so a
retry never creates a second order."""

from __future__ import annotations

import collections
import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.pipeline import SEED_ORDER, SIGNING_KEY, bearer

RETRYABLE = {409, 503}


@dataclass
class OrderLoad:
    api_url: str
    total: int
    rate: float  # orders per second, all workers together
    customers: int = 12  # few keys, so each key carries many events to keep in order
    workers: int = 2
    give_up_after: float = 120.0
    token: str = ""  # a staff token the API accepts; empty: one from the test session's key
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> order id
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    retry_after_seen: bool = False
    failures: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OrderLoad:
        customer_ids = [str(uuid.uuid4()) for _ in range(self.customers)]
        for worker in range(self.workers):
            share = range(worker, self.total, self.workers)
            thread = threading.Thread(target=self._send, args=(share, customer_ids), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def sent(self) -> int:
        with self._lock:
            return len(self.accepted) + len(self.failures)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        assert not alive, f"the load did not finish in {timeout}s ({self.sent}/{self.total} sent)"

    def _send(self, numbers: range, customer_ids: list[str]) -> None:
        interval = self.workers / self.rate
        headers = bearer(self.token or SIGNING_KEY.admin())
        with httpx.Client(base_url=self.api_url, timeout=10, headers=headers) as client:
            next_at = time.monotonic()
            for number in numbers:
                body = copy.deepcopy(SEED_ORDER)
                body["customer_id"] = customer_ids[number % len(customer_ids)]
                body["metadata"] = {"n": number}
                self._create(client, body, str(uuid.uuid4()))
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))  # pacing, not synchronisation

    def _create(self, client: httpx.Client, body: dict[str, Any], key: str) -> None:
        deadline = time.monotonic() + self.give_up_after
        pause = 0.05
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    "/api/v1/orders", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
                if response.status_code == 503 and response.headers.get("retry-after"):
                    self.retry_after_seen = True
            if response.status_code == 201:
                with self._lock:
                    self.accepted[key] = response.json()["order"]["id"]
                return
            if response.status_code not in RETRYABLE:
                with self._lock:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                return
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        with self._lock:
            self.failures.append(f"gave up on {key} after {self.give_up_after}s")

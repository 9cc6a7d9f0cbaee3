"""Test doubles for the consumer: an in-memory record source and dead-letter queue.

Production never imports this module; tests use it in place of Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from consumer.kafka_io import Record


class InMemorySource:
    """Records handed out in order; `done` remembers what would be committed."""

    def __init__(self, records: Sequence[Record]) -> None:
        self._pending = list(records)
        self.committed: list[Record] = []
        self.closed = False

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        batch, self._pending = self._pending[:max_records], self._pending[max_records:]
        if not batch:
            await asyncio.sleep(0)
        return batch

    def done(self, record: Record) -> None:
        self.committed.append(record)

    def close(self) -> None:
        self.closed = True


class InMemoryDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[Record, str, BaseException | None]] = []

    async def send(self, record: Record, reason: str, error: BaseException | None) -> None:
        self.letters.append((record, reason, error))

    def close(self) -> None:
        return None

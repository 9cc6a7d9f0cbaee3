"""LISTEN/NOTIFY: the outbox trigger notifies at commit, so the relay wakes at once.

Polling stays as the fallback: a notification can be missed while the
listening connection is down, and `wait` always returns by its timeout.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

log = logging.getLogger("relay.wakeup")

CHANNEL = "outbox"


class Wakeup:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[object] | None = None

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notification; True if one came."""
        try:
            conn = self._conn or await self._listen()
            async for _ in conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            log.warning(
                "LISTEN connection lost; polling until it is back", extra={"error": str(exc)}
            )
            await self.close()
            await asyncio.sleep(timeout)  # poll at the usual pace meanwhile
            return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _listen(self) -> psycopg.AsyncConnection[object]:
        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=5)
        await conn.execute(f"LISTEN {CHANNEL}")
        self._conn = conn
        return conn

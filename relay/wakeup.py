"""LISTEN/NOTIFY: writers ring after commit (app.db.bell), so the relay wakes at once.

Polling stays as the fallback: a notification can be missed while the listening
connection is down, and `wait` always returns by its timeout. The listening runs in a
task of its own, so a listening connection that goes quiet never stalls the relay's
loop; and a quiet connection is indistinguishable from a dead one, so the task asks
it a question every `check_every` seconds, under the deadlines of app.db.guard: one
that does not answer is abandoned and a new one opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from app.config import DatabaseSettings
from app.db.bell import CHANNEL
from app.db.engine import connect
from app.db.guard import GuardedConnection

log = logging.getLogger("relay.wakeup")

RETRY_AFTER = 1.0  # seconds before reconnecting after a failure
CHECK_EVERY = 5.0  # seconds between liveness checks of the listening connection


class Wakeup:
    def __init__(
        self,
        settings: DatabaseSettings,
        application_name: str = "orders-relay",
        check_every: float = CHECK_EVERY,
    ) -> None:
        self._settings = settings
        self._application = f"{application_name}-listen"
        self._check_every = check_every
        self._rung = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notification; True if one came."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        try:
            await asyncio.wait_for(self._rung.wait(), timeout)
        except TimeoutError:
            return False
        self._rung.clear()
        return True

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen_forever(self) -> None:
        while True:
            try:
                conn = await connect(self._settings, self._application, autocommit=True)
                try:
                    await self._listen(conn)
                finally:
                    await conn.close()
            except psycopg.Error as exc:
                log.warning(
                    "LISTEN connection lost; polling until it is back", extra={"error": str(exc)}
                )
                await asyncio.sleep(RETRY_AFTER)

    async def _listen(self, conn: GuardedConnection[object]) -> None:
        conn.activity = f"LISTEN {CHANNEL}"
        await conn.execute(f"LISTEN {CHANNEL}")
        self._rung.set()  # rings were missed while we were away: look now
        while True:
            async for _ in conn.notifies(timeout=self._check_every):
                self._rung.set()
            conn.activity = "SELECT 1 (is the LISTEN connection alive?)"
            await conn.execute("SELECT 1")

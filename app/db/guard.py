"""Deadlines on every wait for PostgreSQL, so a dead or half-open connection is noticed.

A connection can go quiet without closing: a NAT or firewall drops its state, a proxy
holds it, the server's host freezes. TCP then says nothing for minutes (keepalives
only probe an idle socket; `tcp_user_timeout` only fires on unacknowledged data, and
a middlebox that still acknowledges defeats both). So besides the libpq settings
(`libpq_parameters`), every wait on a connection made here has a deadline of its own:

- after `slow_after` seconds the wait is logged (what it waits on) and counted;
- after `give_up_after` seconds the connection is abandoned: its socket is shut down,
  so the waiting call fails at once with `OperationalError`, the connection reads as
  broken, and SQLAlchemy's pool replaces it (and every connection it held as old).

Invariant: the deadline only ever ends a connection, never a statement on a
connection that stays in use, so no caller sees a connection in an unknown state.
A wait that brings its own timeout (LISTEN's `notifies`) is left to that timeout.
The server side is bounded by the session settings in `libpq_parameters`
(`statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`), so
a transaction whose client vanished releases its locks within `give_up_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg.abc import PQGen
from psycopg.rows import Row

log = logging.getLogger("app.db")

SLOW_WAITS = Counter(
    "orders_db_slow_waits_total",
    "Waits on a PostgreSQL connection that ran longer than DB_SLOW_WAIT",
    ["application"],
)
ABANDONED = Counter(
    "orders_db_connections_abandoned_total",
    "PostgreSQL connections given up after DB_GIVE_UP_AFTER seconds without an answer",
    ["application"],
)


class Deadlines:
    """How long a wait may take before it is reported, and before its connection is dropped."""

    __slots__ = ("application", "give_up_after", "slow_after")

    def __init__(self, application: str, slow_after: float, give_up_after: float) -> None:
        self.application = application
        self.slow_after = min(slow_after, give_up_after)
        self.give_up_after = give_up_after


def libpq_parameters(
    deadlines: Deadlines,
    *,
    connect_timeout: float,
    statement_timeout: float,
    lock_timeout: float,
) -> dict[str, Any]:
    """Connection parameters that bound every wait the kernel or the server can bound.

    Keepalives find a peer that vanished while the connection is idle within about
    `give_up_after`; `tcp_user_timeout` ends a connection whose sent data stays
    unacknowledged that long; the server cancels long statements and lock waits and
    ends sessions left idle inside a transaction (their locks would block everyone).
    """
    give_up = deadlines.give_up_after
    idle = max(1, int(give_up / 3))
    interval = max(1, int(give_up / 6))
    server = {
        "statement_timeout": _ms(statement_timeout),
        "lock_timeout": _ms(lock_timeout),
        "idle_in_transaction_session_timeout": _ms(give_up),
    }
    return {
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": deadlines.application,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": 3,
        "tcp_user_timeout": _ms(give_up),
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
    }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class GuardedConnection(psycopg.AsyncConnection[Row]):
    """A psycopg connection whose every wait has a deadline (see the module's docstring).

    `activity` names what the connection is doing, for the log line of a slow wait;
    the engine's event hooks keep it current (the statement being run, or COMMIT).
    """

    deadlines = Deadlines("orders", slow_after=2.0, give_up_after=12.0)
    activity = "connecting"
    _abandoned_after: float | None = None
    _timer: asyncio.TimerHandle | None = None

    async def wait(
        self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None
    ) -> Any:
        if timeout is not None or self.closed:  # bounded by the caller (e.g. notifies)
            return await super().wait(gen, interval=interval, timeout=timeout)
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.deadlines.slow_after, self._slow, loop, started)
        try:
            return await super().wait(gen, interval=interval, timeout=timeout)
        except psycopg.OperationalError as exc:
            if self._abandoned_after is None:
                raise
            raise psycopg.OperationalError(
                f"no answer from PostgreSQL in {self._abandoned_after:.1f}s"
                f" while waiting on {self._describe()}: connection abandoned"
            ) from exc
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _slow(self, loop: asyncio.AbstractEventLoop, started: float) -> None:
        SLOW_WAITS.labels(self.deadlines.application).inc()
        log.warning(
            "database wait running long",
            extra={
                "application": self.deadlines.application,
                "waiting_on": self._describe(),
                "seconds": round(time.monotonic() - started, 1),
                "give_up_after": self.deadlines.give_up_after,
            },
        )
        remaining = max(0.0, self.deadlines.give_up_after - (time.monotonic() - started))
        self._timer = loop.call_later(remaining, self._give_up, started)

    def _give_up(self, started: float) -> None:
        self._abandoned_after = time.monotonic() - started
        ABANDONED.labels(self.deadlines.application).inc()
        log.error(
            "database connection abandoned: no answer",
            extra={
                "application": self.deadlines.application,
                "waiting_on": self._describe(),
                "seconds": round(self._abandoned_after, 1),
            },
        )
        shut_down(self.pgconn.socket)

    def _describe(self) -> str:
        return " ".join(self.activity.split())[:120]


def shut_down(fd: int) -> None:
    """Shut the socket down under libpq's feet: the pending read returns EOF at once.

    Done on a duplicate descriptor, so libpq still owns (and later closes) its own.
    """
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


async def connect(
    deadlines: Deadlines, conninfo: str = "", **parameters: Any
) -> GuardedConnection[Any]:
    """A guarded connection; `parameters` are libpq's (see `libpq_parameters`) and psycopg's."""
    conn: GuardedConnection[Any] = await GuardedConnection.connect(conninfo, **parameters)
    conn.deadlines = deadlines
    conn.activity = "idle"
    return conn

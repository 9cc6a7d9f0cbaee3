"""The least an HTTP create can be in the stack DESIGN.md names, for `bench.floor`.

Litestar served by granian as `python -m app` serves the API (ASGI, uvloop, one worker per
core, the same backpressure), with one route, `POST /api/v1/orders`: it decodes the body
with msgspec, writes the order with pgbench's statement (`bench/create_order.sql`, the API's
own create) through one of a fixed set of psycopg connections (`FLOOR_DATABASE_URL`),
prepared, in autocommit, and answers 201 with the order's id (400 for a body that is not
JSON, nothing written). No authentication, validation, idempotency, limits, telemetry or
SQLAlchemy: what is left is the framework, the server and the driver, which no code of ours
can make cheaper.

`python -m bench.floor_app PORT` serves it on loopback until SIGTERM: a bench tool, never a
service, with the database login it is given (`bench.floor` gives it the API's own).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import psycopg
from granian.constants import Interfaces, Loops
from granian.server import Server
from litestar import Litestar, Request, post
from litestar.exceptions import ValidationException

from bench.baselines import CREATE_ORDER_SQL

CONNECTIONS = 10  # per worker, as the API's pool (DB_POOL_SIZE's default)
BACKPRESSURE = 64  # HTTP_MAX_CONCURRENCY's default


class Created(msgspec.Struct):
    id: str
    status: str


def create_statement() -> str:
    """pgbench's script as one psycopg statement: its `:customer` variable a parameter."""
    lines = CREATE_ORDER_SQL.read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("--", "\\"))]
    return "\n".join(kept).replace(":customer::text", "%(customer)s::text")


class Connections:
    """A fixed set of autocommit connections, each lent to one request at a time."""

    def __init__(self) -> None:
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._statement = create_statement()

    async def open(self, url: str, count: int) -> None:
        for _ in range(count):
            self._idle.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    async def create(self) -> str:
        conn = await self._idle.get()
        try:
            params = {"customer": random.randint(1, 1_000_000)}
            cursor = await conn.execute(self._statement, params, prepare=True)
            row = await cursor.fetchone()
            return str(row[0]) if row else ""
        finally:
            self._idle.put_nowait(conn)


def serve_app() -> Litestar:
    url = os.environ["FLOOR_DATABASE_URL"]
    connections = Connections()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await connections.open(url, CONNECTIONS)
        try:
            yield
        finally:
            await connections.close()

    @post("/api/v1/orders", status_code=201)
    async def create(request: Request[Any, Any, Any]) -> Created:
        try:
            msgspec.json.decode(await request.body())
        except (msgspec.DecodeError, RecursionError):  # malformed, or nested past the decoder
            raise ValidationException("the body is not JSON") from None  # 400, nothing written
        return Created(id=await connections.create(), status="pending")

    return Litestar(route_handlers=[create], lifespan=[lifespan], openapi_config=None)


def main(argv: list[str]) -> int:
    Server(
        "bench.floor_app:serve_app",
        address="127.0.0.1",
        port=int(argv[0]),
        interface=Interfaces.ASGI,
        workers=int(os.environ.get("HTTP_WORKERS", str(os.cpu_count() or 1))),
        loop=Loops.uvloop,
        backpressure=BACKPRESSURE,
        factory=True,
        log_enabled=False,
    ).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

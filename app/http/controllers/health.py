"""Liveness and readiness. Kafka is not a readiness dependency: the outbox exists so
the API keeps taking orders while Kafka is away."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.health import ping
from app.http.openapi import problems

READY_TIMEOUT = 2.0


class Health(msgspec.Struct, frozen=True):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012

    @get("/live", summary="The process is up")
    async def live(self) -> Health:
        return Health("ok")

    @get(
        "/ready",
        summary="The process can serve: the database answers",
        responses=problems("unavailable"),
    )
    async def ready(self, engine: NamedDependency[AsyncEngine]) -> Health:
        await ping(engine, timeout=READY_TIMEOUT)
        return Health("ready")

"""/api/v1/orders"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import HttpSettings
from app.db import orders as order_rows
from app.db.engine import transaction
from app.domain.errors import OrderNotFound
from app.domain.order import NewOrder, Order, check_new_order
from app.domain.origin import Origin
from app.http.body import NewOrderBody
from app.http.problems import Problem
from app.http.wire import encode
from app.services.orders import Emitter, create_order

JSON = "application/json"


class OrderEnvelope(msgspec.Struct, frozen=True, omit_defaults=True):
    order: Order
    message: str | None = None


def origin_of(request: Request[Any, Any, Any]) -> Origin:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return Origin(
        cause="api",
        cause_id=request_id,
        correlation_id=request_id,
        traceparent=request.headers.get("traceparent"),
        tracestate=request.headers.get("tracestate"),
    )


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]  # noqa: RUF012 - litestar reads a class attribute

    @post(
        "/",
        dto=NewOrderBody,
        return_dto=None,
        status_code=201,
        summary="Create an order",
        responses={
            201: ResponseSpec(OrderEnvelope, description="The order, status pending"),
            400: ResponseSpec(
                Problem, description="Malformed JSON", media_type="application/problem+json"
            ),
            422: ResponseSpec(
                Problem, description="Invalid order", media_type="application/problem+json"
            ),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: NewOrder,
        engine: AsyncEngine,
        http_settings: HttpSettings,
        emitter: Emitter,
    ) -> Response[bytes]:
        check_new_order(data, max_items=http_settings.max_items)
        async with transaction(engine) as conn:
            order = await create_order(conn, data, emitter=emitter, origin=origin_of(request))
        body = encode(OrderEnvelope(order, "Order created successfully"))
        return Response(body, status_code=201, media_type=JSON)

    @get(
        "/{order_id:uuid}",
        summary="Get an order",
        responses={
            200: ResponseSpec(OrderEnvelope, description="The order"),
            404: ResponseSpec(
                Problem, description="No such order", media_type="application/problem+json"
            ),
        },
    )
    async def read(self, order_id: UUID, engine: AsyncEngine) -> Response[bytes]:
        async with transaction(engine) as conn:
            order = await order_rows.get_order(conn, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return Response(encode(OrderEnvelope(order)), media_type=JSON)

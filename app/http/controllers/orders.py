"""/api/v1/orders: create (idempotently), read, list, cancel, history.

Handlers take typed parameters (app.http.parameters), call one use case (a read in
app.services.access, a write at the order desk, app.services.desk) and return a typed
value; the app's response class encodes it. A write handler takes one dependency, its
`Write`: Litestar would resolve several in a task group, a task each, on every request.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.order import OrderRequest
from app.domain.principal import Principal, Scope
from app.http.openapi import REPLAYED, problems, success
from app.http.parameters import Listing, Write
from app.http.security import secured
from app.http.wire import (
    CANCELLED,
    CREATED,
    CancelRequest,
    JsonResponse,
    MalformedJson,
    OrderEnvelope,
    OrderHistory,
    OrderPage,
    StrictBody,
    UnsupportedMediaType,
    is_json,
)
from app.services import access

# The problems an operation can answer, by what it does: any call with a token, a call
# with a body, a call naming one order.
_ANY = "invalid-token", "insufficient-scope", "rate-limited", "unavailable"
_BODY = "malformed-json", "payload-too-large", "unsupported-media-type", "validation-error"
_ONE = "order-not-found", "not-found"


async def require_json(request: Request[Any, Any, Any]) -> None:
    """A body, if sent, is JSON: anything else is refused before it is decoded (415)."""
    content_types = request.headers.getall("content-type", [])
    if await request.body() and (len(content_types) != 1 or not is_json(content_types[0])):
        raise UnsupportedMediaType("send the body as JSON, with one Content-Type: application/json")


async def require_order(request: Request[Any, Any, Any]) -> None:
    """An order is a body: none at all is no JSON at all (400), not a missing field."""
    if not await request.body():
        raise MalformedJson("the body is empty: send the order as JSON")
    await require_json(request)


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]  # noqa: RUF012 - litestar reads a class attribute

    @post(
        "/",
        dto=StrictBody[OrderRequest],
        return_dto=None,
        before_request=require_order,
        status_code=201,
        **secured(Scope.WRITE),
        summary="Create an order",
        description=(
            "Writes the order and its `order.created` event in one transaction. Money is exact: "
            "prices are JSON numbers with at most 2 decimals. Send `Idempotency-Key` to retry "
            "safely: the same key with the same body replays the stored response "
            f"(with `{REPLAYED}: true`) and creates nothing new; keys are per caller. "
            "`customer_id` may be left out: the order is the caller's own."
        ),
        responses={
            201: success(OrderEnvelope, "The order, status pending", "created"),
            **problems(
                *_ANY, *_BODY, "forbidden", "idempotency-key-in-flight", "idempotency-key-reused"
            ),
        },
    )
    async def create(
        self, data: JSONBody[OrderRequest], keyed_write: NamedDependency[Write]
    ) -> JsonResponse[OrderEnvelope]:
        write = keyed_write  # a write with its Idempotency-Key, if one was sent
        placed = await write.desk.place(
            write.principal, data, origin=write.origin, key=write.idempotency_key
        )
        return JsonResponse(
            OrderEnvelope(placed.outcome, CREATED),
            status_code=201,
            headers={REPLAYED: "true"} if placed.replayed else {},
        )

    @get(
        "/",
        summary="List orders",
        description=(
            "Oldest first, by `created_at` then `id`. A customer sees only its own orders; "
            "staff see every customer's. Pass `next_cursor` back as `cursor` for the next "
            "page; it is null on the last page, and only its caller can use it."
        ),
        responses={
            200: success(OrderPage, "A page of orders", "page"),
            **problems(*_ANY, "invalid-parameter", "forbidden"),
        },
        **secured(Scope.READ),
    )
    async def list_orders(
        self,
        principal: NamedDependency[Principal],
        listing: NamedDependency[Listing],
        engine: NamedDependency[AsyncEngine],
    ) -> OrderPage:
        page = await access.browse(engine, principal, listing.where, listing.after, listing.limit)
        return OrderPage(page.orders, listing.cursor(page.last))

    @get(
        "/{order_id:uuid}",
        summary="Get an order",
        responses={
            200: success(OrderEnvelope, "The order", "order"),
            **problems(*_ANY, *_ONE),
        },
        **secured(Scope.READ),
    )
    async def read(
        self,
        order_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        engine: NamedDependency[AsyncEngine],
    ) -> OrderEnvelope:
        return OrderEnvelope(await access.read(engine, principal, order_id))

    @post(
        "/{order_id:uuid}/cancel",
        dto=StrictBody[CancelRequest],
        return_dto=None,
        before_request=require_json,
        status_code=200,
        summary="Cancel an order",
        **secured(Scope.WRITE),
        description=(
            "Allowed while the order is `pending` or `confirmed`; otherwise 409. The status "
            "change, its history row and `order.cancelled` are written in one transaction. "
            "The body is optional."
        ),
        responses={
            200: success(OrderEnvelope, "The cancelled order", "cancelled"),
            **problems(*_ANY, *_BODY, *_ONE, "illegal-transition"),
        },
    )
    async def cancel(
        self,
        order_id: FromPath[UUID],
        write: NamedDependency[Write],
        data: JSONBody[CancelRequest | None] = None,
    ) -> OrderEnvelope:
        reason = data.reason if data else None
        order = await write.desk.cancel(
            write.principal, order_id, origin=write.origin, reason=reason
        )
        return OrderEnvelope(order, CANCELLED)

    @get(
        "/{order_id:uuid}/history",
        summary="Status history of an order",
        description=(
            "Every transition with its time, cause (`api` with the request id, or `event` "
            "with the event id) and actor: `customer:<sub>`, `staff:<sub>`, `consumer`, or "
            "the source of another system's event."
        ),
        responses={
            200: success(OrderHistory, "The transitions, oldest first", "history"),
            **problems(*_ANY, *_ONE),
        },
        **secured(Scope.READ),
    )
    async def history(
        self,
        order_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        engine: NamedDependency[AsyncEngine],
    ) -> OrderHistory:
        return OrderHistory(order_id, await access.follow(engine, principal, order_id))

"""/api/v1/orders: create (idempotently), read, list, cancel, history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import HttpSettings
from app.db import history
from app.db import orders as order_rows
from app.db.engine import transaction
from app.db.orders import OrderFilter, Position
from app.domain.errors import FieldError, InvalidInput, OrderNotFound
from app.domain.order import NewOrder, Order, Transition, check_new_order
from app.domain.origin import Origin
from app.domain.status import Status
from app.http.body import NewOrderBody
from app.http.cursor import decode_cursor, encode_cursor
from app.http.openapi import problems, success
from app.http.wire import UnsupportedMediaType, encode, is_json
from app.services import idempotency
from app.services.orders import Emitter, apply_transition, create_order

JSON = "application/json"
REPLAYED = "Idempotent-Replayed"
CREATED_MESSAGE = "Order created successfully"
REQUEST_ID = ResponseHeader(
    name="X-Request-ID", documentation_only=True, description="The request's id (echoed or made up)"
)


class OrderEnvelope(msgspec.Struct, frozen=True, omit_defaults=True):
    order: Order
    message: str | None = None


class OrderPage(msgspec.Struct, frozen=True):
    orders: list[Order]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class OrderHistory(msgspec.Struct, frozen=True):
    order_id: UUID
    history: list[Transition]


class CancelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None


def origin_of(request: Request[Any, Any, Any]) -> Origin:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return Origin(
        cause="api",
        cause_id=request_id,
        correlation_id=request_id,
        traceparent=request.headers.get("traceparent"),
        tracestate=request.headers.get("tracestate"),
    )


def _json(
    value: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(encode(value), status_code=status, media_type=JSON, headers=headers or {})


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    keys = request.headers.getall("idempotency-key", [])
    if len(keys) > 1:
        raise InvalidInput([FieldError("Idempotency-Key", "send the header once")])
    if keys and not (1 <= len(keys[0]) <= 255 and keys[0].isprintable() and keys[0].isascii()):
        raise InvalidInput(
            [FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")]
        )
    return keys[0] if keys else None


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """Bodies are JSON: anything else is refused before it is read as JSON (415)."""
    if (
        request.method == "POST"
        and await request.body()
        and not is_json(request.headers.get("content-type"))
    ):
        raise UnsupportedMediaType("send the body as JSON, with Content-Type: application/json")


class OrderController(Controller):
    path = "/api/v1/orders"
    before_request = staticmethod(require_json_body)
    tags = ["orders"]  # noqa: RUF012 - litestar reads a class attribute
    response_headers = [REQUEST_ID]  # noqa: RUF012

    @post(
        "/",
        dto=NewOrderBody,
        return_dto=None,
        status_code=201,
        summary="Create an order",
        description=(
            "Writes the order and its `order.created` event in one transaction. Money is exact: "
            "prices are JSON numbers with at most 2 decimals. Send `Idempotency-Key` to retry "
            "safely: the same key with the same body replays the stored response "
            f"(with `{REPLAYED}: true`) and creates nothing new."
        ),
        response_headers=[
            ResponseHeader(name=REPLAYED, documentation_only=True, description="`true` on a replay")
        ],
        responses={
            201: success(OrderEnvelope, "The order, status pending", "created"),
            **problems(400, 409, 413, 415, 422, 503),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: NewOrder,
        engine: AsyncEngine,
        http_settings: HttpSettings,
        emitter: Emitter,
        idempotency_key: Annotated[
            str | None,
            Parameter(
                header="Idempotency-Key",
                required=False,
                description="Any unique string (e.g. a UUID), 1-255 characters; kept 24 h",
            ),
        ] = None,
    ) -> Response[bytes]:
        check_new_order(data, max_items=http_settings.max_items)
        key = _idempotency_key(request)
        origin = origin_of(request)

        async def create(conn: AsyncConnection) -> Order:
            return await create_order(conn, data, emitter=emitter, origin=origin)

        async with transaction(engine) as conn:
            if key is None:
                order = await create(conn)
                return _json(OrderEnvelope(order, CREATED_MESSAGE), 201)
            stored = await idempotency.once(
                conn,
                key,
                data,
                ttl=http_settings.idempotency_ttl,
                create=create,
                render=lambda order: encode(OrderEnvelope(order, CREATED_MESSAGE)),
            )
        headers = {REPLAYED: "true"} if stored.replayed else {}
        return Response(stored.body, status_code=stored.status, media_type=JSON, headers=headers)

    @get(
        "/",
        summary="List orders",
        description=(
            "Oldest first, by `created_at` then `id`. Pass `next_cursor` back as `cursor` for "
            "the next page; it is null on the last page."
        ),
        responses={200: success(OrderPage, "A page of orders", "page"), **problems(400, 422, 503)},
    )
    async def list_orders(
        self,
        engine: AsyncEngine,
        http_settings: HttpSettings,
        customer_id: UUID | None = None,
        status: Status | None = None,
        created_from: Annotated[
            datetime | None, Parameter(description="inclusive, RFC 3339 with an offset")
        ] = None,
        created_to: Annotated[
            datetime | None, Parameter(description="exclusive, RFC 3339 with an offset")
        ] = None,
        limit: Annotated[
            int, Parameter(ge=1, description="page size (at most 100 by default)")
        ] = 20,
        cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Response[bytes]:
        where = OrderFilter(customer_id, status, created_from, created_to)
        _check_listing(where, limit, http_settings.max_page_size)
        after = decode_cursor(cursor) if cursor else None
        async with transaction(engine) as conn:
            found = await order_rows.list_orders(conn, where, after, limit + 1)
        page, more = found[:limit], len(found) > limit
        next_cursor = encode_cursor(Position(page[-1].created_at, page[-1].id)) if more else None
        return _json(OrderPage(page, next_cursor))

    @get(
        "/{order_id:uuid}",
        summary="Get an order",
        responses={200: success(OrderEnvelope, "The order", "order"), **problems(400, 404, 503)},
    )
    async def read(self, order_id: UUID, engine: AsyncEngine) -> Response[bytes]:
        async with transaction(engine) as conn:
            order = await order_rows.get_order(conn, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return _json(OrderEnvelope(order))

    @post(
        "/{order_id:uuid}/cancel",
        status_code=200,
        summary="Cancel an order",
        description=(
            "Allowed while the order is `pending` or `confirmed`; otherwise 409. The status "
            "change, its history row and `order.cancelled` are written in one transaction. "
            "The body is optional."
        ),
        responses={
            200: success(OrderEnvelope, "The cancelled order", "cancelled"),
            **problems(400, 404, 409, 415, 422, 503),
        },
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        order_id: UUID,
        engine: AsyncEngine,
        emitter: Emitter,
        data: CancelRequest | None = None,
    ) -> Response[bytes]:
        reason = data.reason if data else None
        async with transaction(engine) as conn:
            await apply_transition(
                conn,
                order_id,
                Status.CANCELLED,
                emitter=emitter,
                origin=origin_of(request),
                reason=reason,
            )
            order = await order_rows.get_order(conn, order_id)
        assert order is not None
        return _json(OrderEnvelope(order, "Order cancelled"))

    @get(
        "/{order_id:uuid}/history",
        summary="Status history of an order",
        description=(
            "Every transition with its time and cause: `api` (with the request id) "
            "or `event` (with the event id)."
        ),
        responses={
            200: success(OrderHistory, "The transitions, oldest first", "history"),
            **problems(400, 404, 503),
        },
    )
    async def history(self, order_id: UUID, engine: AsyncEngine) -> Response[bytes]:
        async with transaction(engine) as conn:
            transitions = await history.list_transitions(conn, order_id)
        if not transitions:
            raise OrderNotFound(order_id)
        return _json(OrderHistory(order_id, transitions))


def _check_listing(where: OrderFilter, limit: int, max_page_size: int) -> None:
    errors = [
        FieldError(name, "must include a UTC offset, e.g. 2026-01-01T00:00:00Z")
        for name, moment in (("created_from", where.created_from), ("created_to", where.created_to))
        if moment is not None and moment.tzinfo is None
    ]
    if limit > max_page_size:
        errors.append(FieldError("limit", f"must be at most {max_page_size}"))
    if (
        where.created_from
        and where.created_to
        and not errors
        and where.created_from > where.created_to
    ):
        errors.append(FieldError("created_to", "must not be before created_from"))
    if errors:
        raise InvalidInput(errors)

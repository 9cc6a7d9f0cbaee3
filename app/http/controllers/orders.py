"""/api/v1/orders: create (idempotently), read, list, cancel, history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import AuthSettings, HttpSettings
from app.db import history
from app.db import orders as order_rows
from app.db.engine import transaction
from app.db.orders import OrderFilter, Position
from app.domain.errors import FieldError, InvalidInput, OrderNotFound
from app.domain.order import Order, OrderRequest, Transition, check_new_order
from app.domain.origin import Origin
from app.domain.principal import Principal, Scope
from app.domain.status import Status
from app.http.body import CancelBody, NewOrderBody
from app.http.cursor import decode_cursor, encode_cursor
from app.http.openapi import problems, success
from app.http.security import principal_of, secured
from app.http.tracecontext import valid_traceparent, valid_tracestate
from app.http.wire import (
    CancelRequest,
    InvalidParameter,
    MalformedJson,
    UnsupportedMediaType,
    encode,
    is_json,
)
from app.services import idempotency
from app.services.orders import Emitter, apply_transition, create_order
from app.telemetry import current_traceparent

T = TypeVar("T")
JSON = "application/json"
REPLAYED = "Idempotent-Replayed"
CREATED_MESSAGE = "Order created successfully"


class OrderEnvelope(msgspec.Struct, frozen=True, omit_defaults=True):
    order: Order
    message: str | None = None


class OrderPage(msgspec.Struct, frozen=True):
    orders: list[Order]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class OrderHistory(msgspec.Struct, frozen=True):
    order_id: UUID
    history: list[Transition]


def origin_of(request: Request[Any, Any, Any], principal: Principal) -> Origin:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    # With tracing on, the event continues the request's span; off, the caller's context,
    # if it is well formed (it is stored and forwarded: never an arbitrary string).
    traceparent, tracestate = current_traceparent()
    if traceparent is None:
        traceparent = valid_traceparent(request.headers.getall("traceparent", []))
        tracestate = valid_tracestate(request.headers.getall("tracestate", []))
    return Origin(
        cause="api",
        cause_id=request_id,
        correlation_id=request_id,
        traceparent=traceparent,
        tracestate=tracestate if traceparent else None,
        actor=principal.actor,
    )


async def reachable(conn: AsyncConnection, principal: Principal, order_id: UUID) -> None:
    """Another customer's order does not exist for this caller: 404, as for a missing one."""
    owner = await order_rows.owner_of(conn, order_id)
    if owner is None or not principal.reaches(owner):
        raise OrderNotFound(order_id)


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
    content_types = request.headers.getall("content-type", [])
    if (
        request.method == "POST"
        and await request.body()
        and (len(content_types) != 1 or not is_json(content_types[0]))
    ):
        raise UnsupportedMediaType("send the body as JSON, with one Content-Type: application/json")


async def require_json_order(request: Request[Any, Any, Any]) -> None:
    """An order is a body: none at all is no JSON at all (400), not a missing field."""
    if not await request.body():
        raise MalformedJson("the body is empty: send the order as JSON")
    await require_json_body(request)


class OrderController(Controller):
    path = "/api/v1/orders"
    before_request = staticmethod(require_json_body)
    tags = ["orders"]  # noqa: RUF012 - litestar reads a class attribute

    @post(
        "/",
        dto=NewOrderBody,
        return_dto=None,
        before_request=require_json_order,
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
                "invalid-token",
                "insufficient-scope",
                "forbidden",
                "malformed-json",
                "idempotency-key-in-flight",
                "payload-too-large",
                "unsupported-media-type",
                "validation-error",
                "idempotency-key-reused",
                "rate-limited",
                "unavailable",
            ),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OrderRequest],
        engine: NamedDependency[AsyncEngine],
        http_settings: NamedDependency[HttpSettings],
        emitter: NamedDependency[Emitter],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(name="Idempotency-Key", required=False),  # see openapi.refine
        ] = None,
    ) -> Response[bytes]:
        principal = principal_of(request)
        new = data.owned_by(principal.owner_of_new_order(data.customer_id))
        check_new_order(new, max_items=http_settings.max_items)
        key = _idempotency_key(request)
        origin = origin_of(request, principal)

        async def create(conn: AsyncConnection) -> Order:
            return await create_order(conn, new, emitter=emitter, origin=origin)

        async with transaction(engine) as conn:
            if key is None:
                order = await create(conn)
                return _json(OrderEnvelope(order, CREATED_MESSAGE), 201)
            stored = await idempotency.once(
                conn,
                principal.key,
                key,
                new,
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
            "Oldest first, by `created_at` then `id`. A customer sees only its own orders; "
            "staff see every customer's. Pass `next_cursor` back as `cursor` for the next "
            "page; it is null on the last page, and only its caller can use it."
        ),
        responses={
            200: success(OrderPage, "A page of orders", "page"),
            **problems("invalid-parameter", "invalid-token", "insufficient-scope", "forbidden"),
            **problems("rate-limited", "unavailable"),
        },
        **secured(Scope.READ),
    )
    async def list_orders(
        self,
        request: Request[Any, Any, Any],
        engine: NamedDependency[AsyncEngine],
        http_settings: NamedDependency[HttpSettings],
        auth_settings: NamedDependency[AuthSettings],
        customer_id: Annotated[
            str | None, QueryParameter(description="only this customer's orders")
        ] = None,
        status: Annotated[
            str | None, QueryParameter(description="only orders in this status")
        ] = None,
        created_from: Annotated[
            str | None,
            QueryParameter(description="inclusive, RFC 3339 with an offset"),
        ] = None,
        created_to: Annotated[
            str | None,
            QueryParameter(description="exclusive, RFC 3339 with an offset"),
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, description="page size, at most HTTP_MAX_PAGE_SIZE (100)")
        ] = 20,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> Response[bytes]:
        errors = _repeated(request)
        where = OrderFilter(
            _parsed("customer_id", customer_id, UUID, "must be a UUID", errors),
            _parsed("status", status, Status, f"must be one of {', '.join(Status)}", errors),
            _moment("created_from", created_from, errors),
            _moment("created_to", created_to, errors),
        )
        _check_listing(where, limit, http_settings.max_page_size, errors)
        principal = principal_of(request)
        where = msgspec.structs.replace(
            where, customer_id=principal.listing_filter(where.customer_id)
        )
        signing = {"secret": auth_settings.cursor_secret or "", "principal": principal.key}
        after = decode_cursor(cursor, **signing) if cursor else None
        async with transaction(engine) as conn:
            found = await order_rows.list_orders(conn, where, after, limit + 1)
        page, more = found[:limit], len(found) > limit
        last = Position(page[-1].created_at, page[-1].id) if more else None
        return _json(OrderPage(page, encode_cursor(last, **signing) if last else None))

    @get(
        "/{order_id:uuid}",
        summary="Get an order",
        responses={
            200: success(OrderEnvelope, "The order", "order"),
            **problems("invalid-token", "insufficient-scope"),
            **problems("order-not-found", "not-found", "rate-limited", "unavailable"),
        },
        **secured(Scope.READ),
    )
    async def read(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        engine: NamedDependency[AsyncEngine],
    ) -> Response[bytes]:
        async with transaction(engine) as conn:
            order = await order_rows.get_order(conn, order_id)
        if order is None or not principal_of(request).reaches(order.customer_id):
            raise OrderNotFound(order_id)
        return _json(OrderEnvelope(order))

    @post(
        "/{order_id:uuid}/cancel",
        dto=CancelBody,
        return_dto=None,
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
            **problems(
                "invalid-token",
                "insufficient-scope",
                "malformed-json",
                "order-not-found",
                "not-found",
                "illegal-transition",
                "payload-too-large",
                "unsupported-media-type",
                "validation-error",
                "rate-limited",
                "unavailable",
            ),
        },
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        engine: NamedDependency[AsyncEngine],
        emitter: NamedDependency[Emitter],
        data: JSONBody[CancelRequest | None] = None,
    ) -> Response[bytes]:
        reason = data.reason if data else None
        principal = principal_of(request)
        async with transaction(engine) as conn:
            await reachable(conn, principal, order_id)
            await apply_transition(
                conn,
                order_id,
                Status.CANCELLED,
                emitter=emitter,
                origin=origin_of(request, principal),
                reason=reason,
            )
            order = await order_rows.get_order(conn, order_id)
        assert order is not None
        return _json(OrderEnvelope(order, "Order cancelled"))

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
            **problems("invalid-token", "insufficient-scope"),
            **problems("order-not-found", "not-found", "rate-limited", "unavailable"),
        },
        **secured(Scope.READ),
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        engine: NamedDependency[AsyncEngine],
    ) -> Response[bytes]:
        async with transaction(engine) as conn:
            await reachable(conn, principal_of(request), order_id)
            transitions = await history.list_transitions(conn, order_id)
        if not transitions:
            raise OrderNotFound(order_id)
        return _json(OrderHistory(order_id, transitions))


def _repeated(request: Request[Any, Any, Any]) -> list[FieldError]:
    """A query parameter given twice is ambiguous: which one would filter?"""
    names = [name for name, _ in request.query_params.multi_items()]
    return [
        FieldError(name, "is given more than once")
        for name in sorted(set(names))
        if names.count(name) > 1
    ]


def _parsed(
    name: str, raw: str | None, type_: type[T], rule: str, errors: list[FieldError]
) -> T | None:
    """The parameter as `type_`, strictly: "null" is not None, "PENDING" is not pending."""
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError:
        errors.append(FieldError(name, rule))
        return None


def _moment(name: str, raw: str | None, errors: list[FieldError]) -> datetime | None:
    """An RFC 3339 date-time with an offset; nothing else (not a bare date, not a timestamp)."""
    rule = "must be an RFC 3339 date-time, e.g. 2026-01-01T00:00:00Z"
    moment = _parsed(name, raw, datetime, rule, errors)
    if moment is None:
        return None
    if moment.tzinfo is None:
        errors.append(FieldError(name, "must include a UTC offset, e.g. 2026-01-01T00:00:00Z"))
        return None
    return moment


def _check_listing(
    where: OrderFilter, limit: int, max_page_size: int, errors: list[FieldError]
) -> None:
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
        raise InvalidParameter(errors)

"""Orders, their items, and the history entry each write of an order makes.

An order's write and its history entry are one statement (data-modifying CTEs): the
API's create and every status change are each one round trip, not three or two."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import (
    RowMapping,
    Text,
    Uuid,
    bindparam,
    cast,
    column,
    func,
    null,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, Insert, Select

from app.db import direct
from app.db import outbox as outbox_rows
from app.db.tables import order_items, orders
from app.db.tables import order_status_history as history
from app.domain.order import Attribution, Item, Order, OrderState
from app.domain.status import Status
from app.events.codec import encode
from app.events.message import OutboxMessage

_STATE_COLUMNS = (
    orders.c.id,
    orders.c.customer_id,
    orders.c.status,
    orders.c.version,
    orders.c.updated_at,
)


class OrderFilter(msgspec.Struct, frozen=True):
    customer_id: UUID | None = None
    status: Status | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class LockedOrder(msgspec.Struct, frozen=True):
    """An order's state and total as stored, read under its row lock (held until commit)."""

    state: OrderState
    total_amount: Decimal


class Position(msgspec.Struct, frozen=True, array_like=True):
    """Where a page ends in the (created_at, id) order: the keyset cursor."""

    created_at: datetime
    id: UUID


_ORDER_COLUMNS = frozenset(orders.c.keys())
# The `orders` row of an order: its fields that are columns (named alike).
_ROW_FIELDS = tuple(name for name in Order.__struct_fields__ if name in _ORDER_COLUMNS)


def _entry_of(
    order: ColumnElement[Any],
    version: ColumnElement[Any],
    to_status: ColumnElement[Any],
    changed_at: ColumnElement[Any],
    from_status: ColumnElement[Any],
) -> Insert:
    """The history entry of a write, from the row it wrote and the attribution's binds."""
    entry: dict[str, ColumnElement[Any]] = {
        "order_id": order,
        "version": version,
        "from_status": from_status,
        "to_status": to_status,
        "cause": bindparam("h_cause", type_=Text),
        "cause_id": bindparam("h_cause_id", type_=Text),
        "reason": bindparam("h_reason", type_=Text),
        "changed_at": changed_at,
        "actor": bindparam("h_actor", type_=Text),
    }
    return history.insert().from_select(list(entry), select(*entry.values()))


# An item's fields are its row's columns (named alike).
_ITEM_FIELDS = Item.__struct_fields__


def _place() -> Select[Any]:
    """A new order in one statement: its row, its items (from one JSON array of them, each
    with its position), its first history entry, and the event announcing it."""
    placed = (
        orders.insert()
        .values({name: bindparam(f"o_{name}", type_=orders.c[name].type) for name in _ROW_FIELDS})
        .returning(orders.c.id, orders.c.version, orders.c.status, orders.c.created_at)
        .cte("placed")
    )
    fields = ("position", *_ITEM_FIELDS)
    item = (
        func.jsonb_to_recordset(cast(bindparam("i_items", type_=Text), JSONB))
        .table_valued(*(column(name, order_items.c[name].type) for name in fields))
        .render_derived(name="item", with_types=True)
    )
    items = order_items.insert().from_select(
        ["order_id", *fields],
        select(bindparam("o_id", type_=Uuid), *(item.c[name] for name in fields)),
    )
    first = _entry_of(placed.c.id, placed.c.version, placed.c.status, placed.c.created_at, null())
    event = outbox_rows.insert_message("e_")
    return select(placed.c.id).add_cte(
        items.cte("placed_items"), first.cte("first_entry"), event.cte("announced")
    )


def _change() -> Select[Any]:
    """A status change in one statement: the order's new state (only if it is still at the
    version it was locked at), its history entry, and the event announcing it."""
    changed = (
        orders.update()
        .where(orders.c.id == bindparam("order_id"))
        .where(orders.c.version == bindparam("locked_version"))
        .values(
            status=bindparam("new_status"),
            version=bindparam("new_version"),
            updated_at=bindparam("new_updated_at"),
        )
        .returning(orders.c.id)
        .cte("changed")
    )
    entry = _entry_of(
        changed.c.id,
        bindparam("new_version", type_=orders.c.version.type),
        bindparam("new_status", type_=Text),
        bindparam("new_updated_at", type_=orders.c.updated_at.type),
        bindparam("h_from", type_=Text),
    )
    event = outbox_rows.insert_message("e_")
    return select(changed.c.id).add_cte(entry.cte("entry"), event.cte("announced"))


# Built once. The two writes every order makes are sent through psycopg itself
# (`app.db.direct`: ~250 µs less CPU a create, in a scratch harness); the rest through
# SQLAlchemy, whose statement cache keeps their compiled forms.
_PLACE = direct.Compiled(_place())
_CHANGE = direct.Compiled(_change())
_GET_ORDER = select(orders).where(orders.c.id == bindparam("order_id"))
LOCK_ORDER = (
    select(*_STATE_COLUMNS, orders.c.total_amount)
    .where(orders.c.id == bindparam("order_id"))
    .with_for_update()
)


async def insert_order(
    conn: direct.Connection, order: Order, by: Attribution, announced: OutboxMessage
) -> None:
    """Write a new order (`app.domain.order.placed`), its items, its first history entry and
    the event `announced`, as one statement."""
    fields = msgspec.structs.asdict(order)
    values = {
        **{f"o_{name}": fields[name] for name in _ROW_FIELDS},
        "i_items": _items_json(order.items),
        **_attributed(by),
        **outbox_rows.bound(announced, "e_"),
    }
    await direct.execute(conn, _PLACE, values)


def _items_json(items: Sequence[Item]) -> str:
    """The items as one JSON array: psycopg dumps one text where four arrays of items cost
    ~100 µs a create (their element types looked up and dumped one by one)."""
    rows = [{"position": n, **msgspec.structs.asdict(item)} for n, item in enumerate(items)]
    return encode(rows).decode()


def _attributed(by: Attribution) -> dict[str, object]:
    return {
        "h_cause": by.cause,
        "h_cause_id": by.cause_id,
        "h_reason": by.reason,
        "h_actor": by.actor,
    }


async def get_order(conn: AsyncConnection, order_id: UUID) -> Order | None:
    row = (await conn.execute(_GET_ORDER, {"order_id": order_id})).one_or_none()
    if row is None:
        return None
    items = await _items_of(conn, [order_id])
    return _order(row._mapping, items[order_id])


async def owner_of(conn: AsyncConnection, order_id: UUID) -> UUID | None:
    """The customer an order belongs to (None: no such order). Owners never change."""
    query = select(orders.c.customer_id).where(orders.c.id == order_id)
    owner: UUID | None = (await conn.execute(query)).scalar_one_or_none()
    return owner


async def list_orders(
    conn: AsyncConnection, where: OrderFilter, after: Position | None, limit: int
) -> list[Order]:
    query = select(orders).order_by(orders.c.created_at, orders.c.id).limit(limit)
    if where.customer_id is not None:
        query = query.where(orders.c.customer_id == where.customer_id)
    if where.status is not None:
        query = query.where(orders.c.status == where.status.value)
    if where.created_from is not None:
        query = query.where(orders.c.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(orders.c.created_at < where.created_to)
    if after is not None:
        query = query.where(tuple_(orders.c.created_at, orders.c.id) > (after.created_at, after.id))
    rows = (await conn.execute(query)).all()
    items = await _items_of(conn, [row.id for row in rows])
    return [_order(row._mapping, items[row.id]) for row in rows]


async def lock_order(conn: AsyncConnection, order_id: UUID) -> OrderState | None:
    """Read an order's state and hold its row until commit: status changes queue up here."""
    row = (await conn.execute(LOCK_ORDER, {"order_id": order_id})).one_or_none()
    return _state(row._mapping) if row else None


def locked_order(row: Mapping[Any, Any]) -> LockedOrder:
    """A row of LOCK_ORDER (the order's state and total, locked until commit)."""
    return LockedOrder(_state(row), row["total_amount"])


async def set_status(
    conn: direct.Connection,
    current: OrderState,
    changed: OrderState,
    by: Attribution,
    announced: OutboxMessage,
) -> None:
    """Store `changed` (`app.domain.order.moved` from `current`, whose row this transaction
    has locked), its history entry and the event `announced`, as one statement."""
    values = {
        "order_id": current.id,
        "locked_version": current.version,
        "new_status": changed.status.value,
        "new_version": changed.version,
        "new_updated_at": changed.updated_at,
        "h_from": current.status.value,
        **_attributed(by),
        **outbox_rows.bound(announced, "e_"),
    }
    if await direct.fetch_one(conn, _CHANGE, values) is None:
        # Under the row lock nothing else can have moved it: a caller that did not lock.
        # Raising rolls back the caller's transaction, the event written with it included.
        raise RuntimeError(f"order {current.id} is not at version {current.version}")


async def _items_of(conn: AsyncConnection, order_ids: Sequence[UUID]) -> dict[UUID, list[Item]]:
    found: defaultdict[UUID, list[Item]] = defaultdict(list)
    if not order_ids:
        return found
    query = (
        select(order_items)
        .where(order_items.c.order_id.in_(order_ids))
        .order_by(order_items.c.order_id, order_items.c.position)
    )
    for row in await conn.execute(query):
        found[row.order_id].append(msgspec.convert(_fields(row._mapping), Item))
    return found


def _order(row: RowMapping, items: list[Item]) -> Order:
    """An order from its row (columns named as the fields) and its items."""
    return msgspec.convert({**_fields(row), "items": items}, Order)


def _state(row: Mapping[Any, Any]) -> OrderState:
    return msgspec.convert(_fields(row), OrderState)


def _fields(row: Mapping[Any, Any]) -> dict[str, object]:
    """Column name -> value, with names as plain str (SQLAlchemy's `quoted_name` is a
    subclass, which msgspec does not take for a field name)."""
    return {str(name): value for name, value in row.items()}

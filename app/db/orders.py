"""Orders and their items."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec
from sqlalchemy import RowMapping, bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import order_items, orders
from app.domain.money import CENT
from app.domain.order import Item, NewOrder, Order, OrderState
from app.domain.status import Status

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

# Built once: a statement object's compiled form and cache key are reused on every call.
_INSERT_ORDER = orders.insert().returning(orders)
_INSERT_ITEMS = order_items.insert()
_GET_ORDER = select(orders).where(orders.c.id == bindparam("order_id"))
_LOCK_ORDER = (
    select(*_STATE_COLUMNS, orders.c.total_amount)
    .where(orders.c.id == bindparam("order_id"))
    .with_for_update()
)
_SET_STATUS = (
    orders.update()
    .where(orders.c.id == bindparam("order_id"))
    .values(status=bindparam("new_status"), version=orders.c.version + 1)
    .returning(*_STATE_COLUMNS)
)


async def insert_order(conn: AsyncConnection, order_id: UUID, new: NewOrder) -> Order:
    row = (await conn.execute(_INSERT_ORDER, _order_row(order_id, new))).one()
    # Stored with two decimals, so 49 and 49.00 read back (and are announced) the same.
    items = [
        Item(**{**msgspec.structs.asdict(item), "price": item.price.quantize(CENT)})
        for item in new.items
    ]
    await conn.execute(
        _INSERT_ITEMS,
        [
            {**msgspec.structs.asdict(item), "order_id": order_id, "position": position}
            for position, item in enumerate(items)
        ],
    )
    return _order(row._mapping, items)


def _order_row(order_id: UUID, new: NewOrder) -> dict[str, object]:
    """The `orders` row of a new order: its fields that are columns (named alike), its id
    and total; status, version and times are the database's defaults."""
    fields = msgspec.structs.asdict(new)
    row = {name: value for name, value in fields.items() if name in _ORDER_COLUMNS}
    return {**row, "id": order_id, "total_amount": new.total_amount}


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
    row = (await conn.execute(_LOCK_ORDER, {"order_id": order_id})).one_or_none()
    return _state(row._mapping) if row else None


async def lock_order_with_total(conn: AsyncConnection, order_id: UUID) -> LockedOrder | None:
    """`lock_order`, with the stored total: what the consumer decides from."""
    row = (await conn.execute(_LOCK_ORDER, {"order_id": order_id})).one_or_none()
    return LockedOrder(_state(row._mapping), row.total_amount) if row else None


async def set_status(conn: AsyncConnection, order_id: UUID, status: Status) -> OrderState:
    """Move the order to `status` and bump its version (the per-order event sequence)."""
    result = await conn.execute(_SET_STATUS, {"order_id": order_id, "new_status": status.value})
    return _state(result.one()._mapping)


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


def _state(row: RowMapping) -> OrderState:
    return msgspec.convert(_fields(row), OrderState)


def _fields(row: RowMapping) -> dict[str, object]:
    """Column name -> value, with names as plain str (SQLAlchemy's `quoted_name` is a
    subclass, which msgspec does not take for a field name)."""
    return {str(name): value for name, value in row.items()}

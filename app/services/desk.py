"""The order desk: the API's writes, with what they need that is fixed when it starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.order import Order, OrderRequest, check_new_order
from app.domain.origin import Origin
from app.domain.principal import Principal
from app.services import access
from app.services.idempotency import Once
from app.services.orders import Emitter


@dataclass(frozen=True)
class OrderDesk:
    """Where the API places and cancels orders: the engine they are written with, the
    emitter of their events, how long an idempotency key is remembered and how many items
    an order may have. Built once by the lifespan; who asks, from where and with which
    key come with each call."""

    engine: AsyncEngine
    emitter: Emitter
    idempotency_ttl: timedelta
    max_items: int

    async def place(
        self, principal: Principal, asked: OrderRequest, *, origin: Origin, key: str | None
    ) -> Once[Order]:
        """Create the order `asked` for (the caller's own unless staff name the customer)
        within the limits; with a key, at most once per (principal, key)."""
        new = asked.owned_by(principal.owner_of_new_order(asked.customer_id))
        check_new_order(new, max_items=self.max_items)
        return await access.place(
            self.engine,
            principal,
            new,
            emitter=self.emitter,
            origin=origin,
            key=key,
            ttl=self.idempotency_ttl,
        )

    async def cancel(
        self, principal: Principal, order_id: UUID, *, origin: Origin, reason: str | None
    ) -> Order:
        return await access.cancel(
            self.engine, principal, order_id, emitter=self.emitter, origin=origin, reason=reason
        )

"""What an event does to an order, applied exactly once.

In one transaction: the event is recorded in `processed_events` (a duplicate
finds its row and changes nothing), the status changes, the history row and
the outbox event are written. The offset is stored only after that commit, so
a crash anywhere either loses nothing (the event is read again and found, or
applied) or doubles nothing (the row is there).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import Meta
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import telemetry
from app.db import inbox
from app.db.engine import transaction
from app.db.inbox import Receipt
from app.domain.errors import IllegalTransition, OrderNotFound
from app.domain.events import STATUS_FOR_EVENT, EventType, OrderCreated
from app.domain.origin import Origin
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent, PoisonMessage
from app.logs import correlation_id
from app.services.orders import Emitter, apply_transition
from app.telemetry import current_traceparent

Result = Literal["applied", "duplicate", "rejected", "ignored"]
T = TypeVar("T")


class StatusChange(msgspec.Struct, frozen=True):
    """What another system sends to move an order: the order (or `subject`) and why."""

    order_id: UUID | None = None
    reason: Annotated[str, Meta(max_length=500)] | None = None


class Plan(msgspec.Struct, frozen=True):
    """A decoded event we act on: which order, and the status it asks for (None: decide)."""

    order_id: UUID
    target: Status | None
    reason: str | None = None
    created: OrderCreated | None = None


class Ignored(msgspec.Struct, frozen=True):
    why: str


class Work(msgspec.Struct, frozen=True):
    """An event to apply, what it asks for, and where it was read."""

    event: IncomingEvent
    plan: Plan
    receipt: Receipt


class EventHandler:
    def __init__(self, engine: AsyncEngine, emitter: Emitter, max_order_total: Decimal) -> None:
        self._engine = engine
        self._emitter = emitter
        self._max_total = max_order_total

    def plan(self, event: IncomingEvent) -> Plan | Ignored:
        """Decide what the event asks for; PoisonMessage if it is ours to read but malformed."""
        ours = event.source == self._emitter.source
        if event.type == EventType.CREATED:
            if not ours:
                return Ignored("order.created from another source")
            created = _convert(event.data, OrderCreated, "order.created data")
            return Plan(order_id=created.order_id, target=None, created=created)
        if ours:
            return Ignored("emitted by this service")  # our own announcements, already applied
        try:
            target = STATUS_FOR_EVENT[EventType(event.type)]
        except ValueError:
            return Ignored(f"event type {event.type!r} is not handled")
        change = (
            _convert(event.data, StatusChange, "status change data")
            if event.data
            else StatusChange()
        )
        return Plan(
            order_id=change.order_id or _uuid(event.subject), target=target, reason=change.reason
        )

    async def apply(
        self, event: IncomingEvent, plan: Plan, receipt: Receipt
    ) -> tuple[Result, str | None]:
        """Apply one event in its own transaction."""
        return (await self.apply_all([Work(event, plan, receipt)]))[0]

    async def apply_all(self, batch: Sequence[Work]) -> list[tuple[Result, str | None]]:
        """Apply events in order, in one transaction (one commit, not one per event).

        If anything fails, nothing of the batch is applied: the caller retries the
        events one at a time to find the failing one.
        """
        async with transaction(self._engine) as conn:
            return [await self._apply_in(conn, work) for work in batch]

    async def _apply_in(self, conn: AsyncConnection, work: Work) -> tuple[Result, str | None]:
        event, plan = work.event, work.plan
        token = correlation_id.set(event.correlation_id)
        try:
            with telemetry.span(
                f"process {event.type}",
                parent={"traceparent": event.traceparent} if event.traceparent else None,
                kind=SpanKind.CONSUMER,
                attributes={"messaging.message.id": event.id, "order.id": str(plan.order_id)},
            ):
                return await self._transition(conn, work)
        finally:
            correlation_id.reset(token)

    async def _transition(self, conn: AsyncConnection, work: Work) -> tuple[Result, str | None]:
        event, plan, receipt = work.event, work.plan, work.receipt
        traceparent, _ = current_traceparent()  # the consumer's span, when tracing is on
        origin = Origin(
            cause="event",
            cause_id=event.id,
            correlation_id=event.correlation_id,
            traceparent=traceparent or event.traceparent,
            actor=event.source,
        )
        if not await inbox.claim(conn, receipt, order_id=plan.order_id):
            return "duplicate", None
        target, reason = self._decide(plan)
        try:
            await apply_transition(
                conn, plan.order_id, target, emitter=self._emitter, origin=origin, reason=reason
            )
        except (IllegalTransition, OrderNotFound) as refused:
            # Nothing was written but the receipt: keep it, so the refusal is recorded once.
            await inbox.settle(conn, receipt, "rejected", str(refused))
            return "rejected", str(refused)
        return "applied", reason

    def _decide(self, plan: Plan) -> tuple[Status, str | None]:
        if plan.target is not None:
            return plan.target, plan.reason
        assert plan.created is not None
        if plan.created.total_amount > self._max_total:
            return (
                Status.FAILED,
                f"total {plan.created.total_amount} exceeds the limit of {self._max_total}",
            )
        return Status.CONFIRMED, None


def _convert(data: object, type_: type[T], what: str) -> T:
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise PoisonMessage(f"invalid {what}: {exc}") from exc


def _uuid(value: str | None) -> UUID:
    try:
        return UUID(value or "")
    except ValueError:
        raise PoisonMessage(
            "no valid order id: set data.order_id or the ce_subject header"
        ) from None

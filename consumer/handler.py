"""What an event does to an order, applied exactly once.

In one transaction: the event is recorded in `processed_events` (a duplicate
finds its row and changes nothing), the status changes, the history row and
the outbox event are written. The offset is stored only after that commit, so
a crash anywhere either loses nothing (the event is read again and found, or
applied) or doubles nothing (the row is there).

What an event may ask for depends on the topic it arrived on (`consumer.trust`);
what is done is decided from the order as stored, read under its row lock — never
from numbers in the event. An event whose topic may not carry it, whose Kafka key
is not its order's customer, or that asks for an illegal transition is recorded
as `rejected` with the reason.
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
from app.db import inbox, orders
from app.db.engine import transaction
from app.db.inbox import Receipt
from app.db.orders import LockedOrder
from app.domain.errors import IllegalTransition
from app.domain.events import STATUS_FOR_EVENT, EventType, OrderCreated
from app.domain.origin import Origin
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent, PoisonMessage
from app.logs import correlation_id
from app.services.orders import Emitter, transition_locked
from app.telemetry import current_traceparent
from consumer.trust import TopicTrust

Result = Literal["applied", "duplicate", "rejected", "ignored"]
T = TypeVar("T")


class StatusChange(msgspec.Struct, frozen=True):
    """What another system sends to move an order: the order (or `subject`) and why."""

    order_id: UUID | None = None
    reason: Annotated[str, Meta(max_length=500)] | None = None


KEY_MAX = 64  # a customer id is 36 characters: a longer key cannot match, only be logged


class Plan(msgspec.Struct, frozen=True):
    """A decoded event we act on: which order, the status it asks for (None: decide from
    the stored order), and the record's Kafka key (it must be the order's customer)."""

    order_id: UUID
    target: Status | None
    key: str | None
    reason: str | None = None


class Rejected(msgspec.Struct, frozen=True):
    """An event its topic may not carry: recorded as rejected, never applied."""

    why: str
    order_id: UUID | None = None


class Ignored(msgspec.Struct, frozen=True):
    why: str


class Work(msgspec.Struct, frozen=True):
    """An event to apply (or record as rejected), what it asks for, and where it was read."""

    event: IncomingEvent
    plan: Plan | Rejected
    receipt: Receipt


class EventHandler:
    def __init__(
        self, engine: AsyncEngine, emitter: Emitter, max_order_total: Decimal, trust: TopicTrust
    ) -> None:
        self._engine = engine
        self._emitter = emitter
        self._max_total = max_order_total
        self._trust = trust

    def plan(
        self, event: IncomingEvent, *, topic: str, key: bytes | None
    ) -> Plan | Ignored | Rejected:
        """Decide what the event asks for, given the topic it arrived on and its Kafka key;
        PoisonMessage if its topic may carry it but it is malformed."""
        refusal = self._trust.refusal(event, topic)
        if refusal is not None:
            return Rejected(refusal, _maybe_uuid(event.subject))
        customer = None if key is None else key[:KEY_MAX].decode(errors="replace")
        if self._trust.is_own(topic):
            if event.type != EventType.CREATED:
                return Ignored("emitted by this service")  # our announcements, already applied
            # Validated as ours; the decision reads the stored order, not these numbers.
            created = _convert(event.data, OrderCreated, "order.created data")
            return Plan(order_id=created.order_id, target=None, key=customer)
        # An inbound topic, and a type it may carry: a status another system decides.
        target = STATUS_FOR_EVENT[EventType(event.type)]
        change = (
            _convert(event.data, StatusChange, "status change data")
            if event.data is not None
            else StatusChange()
        )
        return Plan(
            order_id=change.order_id or _uuid(event.subject),
            target=target,
            key=customer,
            reason=change.reason,
        )

    async def apply(
        self, event: IncomingEvent, plan: Plan | Rejected, receipt: Receipt
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
                attributes={"messaging.message.id": event.id, "order.id": str(plan.order_id or "")},
            ):
                return await self._transition(conn, work)
        finally:
            correlation_id.reset(token)

    async def _transition(self, conn: AsyncConnection, work: Work) -> tuple[Result, str | None]:
        event, plan, receipt = work.event, work.plan, work.receipt
        if isinstance(plan, Rejected):
            rejected = await inbox.claim(
                conn, receipt, order_id=plan.order_id, outcome="rejected", detail=plan.why
            )
            return ("rejected", plan.why) if rejected else ("duplicate", None)
        if not await inbox.claim(conn, receipt, order_id=plan.order_id):
            return "duplicate", None
        traceparent, _ = current_traceparent()  # the consumer's span, when tracing is on
        origin = Origin(
            cause="event",
            cause_id=event.id,
            correlation_id=event.correlation_id,
            traceparent=traceparent or event.traceparent,
            actor=event.source,
        )
        locked = await orders.lock_order_with_total(conn, plan.order_id)
        refusal = _refusal(plan, locked)
        if refusal is None:
            assert locked is not None
            target, reason = self._decide(plan, locked)
            try:
                await transition_locked(
                    conn, locked.state, target, emitter=self._emitter, origin=origin, reason=reason
                )
            except IllegalTransition as refused:
                refusal = str(refused)
            else:
                return "applied", reason
        # Nothing was written but the receipt: keep it, so the refusal is recorded once.
        await inbox.settle(conn, receipt, "rejected", refusal)
        return "rejected", refusal

    def _decide(self, plan: Plan, stored: LockedOrder) -> tuple[Status, str | None]:
        """The status the event asks for; for order.created, our decision on the stored total."""
        if plan.target is not None:
            return plan.target, plan.reason
        if stored.total_amount > self._max_total:
            return (
                Status.FAILED,
                f"total {stored.total_amount} exceeds the limit of {self._max_total}",
            )
        return Status.CONFIRMED, None


def _refusal(plan: Plan, stored: LockedOrder | None) -> str | None:
    """Why the event may not touch the stored order (None: it may)."""
    if stored is None:
        return f"order {plan.order_id} does not exist"
    if plan.key != str(stored.state.customer_id):
        return f"the record's key {plan.key!r} is not the order's customer"
    return None


def _convert(data: object, type_: type[T], what: str) -> T:
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise PoisonMessage(f"invalid {what}: {exc}") from exc


def _maybe_uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value or "")
    except ValueError:
        return None


def _uuid(value: str | None) -> UUID:
    try:
        return UUID(value or "")
    except ValueError:
        raise PoisonMessage(
            "no valid order id: set data.order_id or the ce_subject header"
        ) from None

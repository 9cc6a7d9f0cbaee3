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
from typing import Annotated, TypeVar, assert_never
from uuid import UUID

import msgspec
from msgspec import Meta
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from app import telemetry
from app.db import inbox
from app.db.direct import Checkout
from app.db.engine import direct_transaction
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

T = TypeVar("T")


class StatusChange(msgspec.Struct, frozen=True):
    """What another system sends to move an order: the order (or `subject`) and why."""

    order_id: UUID | None = None
    reason: Annotated[str, Meta(max_length=500)] | None = None


KEY_MAX = 64  # a customer id is 36 characters: a longer key cannot match, only be logged


# What an event asks for: one of these cases (`plan` decides, before any I/O).


class Confirm(msgspec.Struct, frozen=True):
    """Our own order.created: confirm the order, or fail it, as the stored order decides.
    `key` is the record's Kafka key: it must be the order's customer."""

    order_id: UUID
    key: str | None


class Transition(msgspec.Struct, frozen=True):
    """A status another system decides (an inbound topic, a type it may carry)."""

    order_id: UUID
    target: Status
    key: str | None
    reason: str | None = None


class Untrusted(msgspec.Struct, frozen=True):
    """An event its topic may not carry: recorded as rejected, never applied."""

    why: str
    order_id: UUID | None = None


class Ignored(msgspec.Struct, frozen=True):
    """Nothing to do (our own announcements, already applied): marked done, not recorded."""

    why: str


Plan = Confirm | Transition | Untrusted  # what is recorded in processed_events
Decision = Plan | Ignored


# What became of an event that was recorded: one of these cases.


class Applied(msgspec.Struct, frozen=True):
    detail: str | None = None  # the reason recorded with the new status, if any


class Duplicate(msgspec.Struct, frozen=True):
    """Already recorded (applied or rejected) by an earlier delivery: nothing done."""


class Rejected(msgspec.Struct, frozen=True):
    why: str


Outcome = Applied | Duplicate | Rejected


class Work(msgspec.Struct, frozen=True):
    """An event to apply (or record as rejected), what it asks for, and where it was read."""

    event: IncomingEvent
    plan: Plan
    receipt: Receipt


class EventHandler:
    def __init__(
        self, engine: AsyncEngine, emitter: Emitter, max_order_total: Decimal, trust: TopicTrust
    ) -> None:
        self._engine = engine
        self._emitter = emitter
        self._max_total = max_order_total
        self._trust = trust

    def plan(self, event: IncomingEvent, *, topic: str, key: bytes | None) -> Decision:
        """Decide what the event asks for, given the topic it arrived on and its Kafka key;
        PoisonMessage if its topic may carry it but it is malformed."""
        refusal = self._trust.refusal(event, topic)
        if refusal is not None:
            return Untrusted(refusal, _maybe_uuid(event.subject))
        customer = None if key is None else key[:KEY_MAX].decode(errors="replace")
        if not self._trust.is_own(topic):
            return _transition(event, customer)
        if event.type != EventType.CREATED:
            return Ignored("emitted by this service")  # our announcements, already applied
        # Validated as ours; the decision reads the stored order, not these numbers.
        created = _convert(event.data, OrderCreated, "order.created data")
        return Confirm(order_id=created.order_id, key=customer)

    async def apply_all(self, batch: Sequence[Work]) -> list[Outcome]:
        """Apply events in order, in one transaction (one commit, not one per event).

        If anything fails, nothing of the batch is applied: the caller retries the
        events one at a time to find the failing one.
        """
        async with direct_transaction(self._engine) as conn:
            return [await self._apply_in(conn, work) for work in batch]

    async def _apply_in(self, conn: Checkout, work: Work) -> Outcome:
        event, plan = work.event, work.plan
        token = correlation_id.set(event.correlation_id)
        try:
            with telemetry.span(
                f"process {event.type}",
                parent={"traceparent": event.traceparent} if event.traceparent else None,
                kind=SpanKind.CONSUMER,
                attributes={"messaging.message.id": event.id, "order.id": str(plan.order_id or "")},
            ):
                return await self._record(conn, work)
        finally:
            correlation_id.reset(token)

    async def _record(self, conn: Checkout, work: Work) -> Outcome:
        """Claim the event's receipt, then apply it: a receipt already there is a duplicate."""
        plan, receipt = work.plan, work.receipt
        match plan:
            case Untrusted(why=why, order_id=order_id):
                claimed = await inbox.claim(
                    conn, receipt, order_id=order_id, outcome="rejected", detail=why
                )
                return Rejected(why) if claimed else Duplicate()
            case Confirm() | Transition():
                locked = await inbox.claim_and_lock(conn, receipt, plan.order_id)
                if locked is False:
                    return Duplicate()
                return await self._transition(conn, work.event, plan, receipt, locked)
            case _:
                assert_never(plan)

    async def _transition(
        self,
        conn: Checkout,
        event: IncomingEvent,
        plan: Confirm | Transition,
        receipt: Receipt,
        locked: LockedOrder | None,
    ) -> Outcome:
        """Move the stored order (`locked`: as read under its row lock), or record why not
        (the receipt is kept either way, so a refusal is recorded once)."""
        if locked is None:
            return await _reject(conn, receipt, f"order {plan.order_id} does not exist")
        if plan.key != str(locked.state.customer_id):
            why = f"the record's key {plan.key!r} is not the order's customer"
            return await _reject(conn, receipt, why)
        target, reason = self._decide(plan, locked)
        try:
            await transition_locked(
                conn,
                locked.state,
                target,
                emitter=self._emitter,
                origin=_origin(event),
                reason=reason,
            )
        except IllegalTransition as refused:
            return await _reject(conn, receipt, str(refused))
        return Applied(reason)

    def _decide(self, plan: Confirm | Transition, stored: LockedOrder) -> tuple[Status, str | None]:
        """The status the event asks for; for order.created, our decision on the stored total."""
        match plan:
            case Transition(target=target, reason=reason):
                return target, reason
            case Confirm() if stored.total_amount > self._max_total:
                why = f"total {stored.total_amount} exceeds the limit of {self._max_total}"
                return Status.FAILED, why
            case Confirm():
                return Status.CONFIRMED, None
            case _:
                assert_never(plan)


def _transition(event: IncomingEvent, customer: str | None) -> Transition:
    """An inbound event of a type its topic may carry: the status it stands for."""
    change = (
        _convert(event.data, StatusChange, "status change data")
        if event.data is not None
        else StatusChange()
    )
    return Transition(
        order_id=change.order_id or _uuid(event.subject),
        target=STATUS_FOR_EVENT[EventType(event.type)],
        key=customer,
        reason=change.reason,
    )


def _origin(event: IncomingEvent) -> Origin:
    """Where the change comes from: the event, in the consumer's span when tracing is on."""
    traceparent, _ = current_traceparent()
    return Origin(
        cause="event",
        cause_id=event.id,
        correlation_id=event.correlation_id,
        traceparent=traceparent or event.traceparent,
        actor=event.source,
    )


async def _reject(conn: Checkout, receipt: Receipt, why: str) -> Rejected:
    """Nothing was written but the receipt: settle it as rejected, with the reason."""
    await inbox.settle(conn, receipt, "rejected", why)
    return Rejected(why)


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

"""The order lifecycle: which status may follow which."""

from __future__ import annotations

from enum import StrEnum

from app.domain.errors import IllegalTransition


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.CONFIRMED, Status.FAILED, Status.CANCELLED}),
    Status.CONFIRMED: frozenset({Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPED: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.FAILED: frozenset(),
}

TERMINAL = frozenset(status for status, targets in ALLOWED.items() if not targets)


def check_transition(current: Status, target: Status) -> None:
    """Raise IllegalTransition unless `target` may follow `current`."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(current.value, target.value)

"""The order lifecycle: exactly the transitions DESIGN.md lists, and no others."""

from __future__ import annotations

import itertools

import pytest

from app.domain.errors import IllegalTransition
from app.domain.status import ALLOWED, TERMINAL, Status, check_transition

PENDING, CONFIRMED, SHIPPED = Status.PENDING, Status.CONFIRMED, Status.SHIPPED
DELIVERED, CANCELLED, FAILED = Status.DELIVERED, Status.CANCELLED, Status.FAILED

# Written out from the contract, not derived from ALLOWED, so a wrong table fails here.
LIFECYCLE = frozenset(
    {
        (PENDING, CONFIRMED),
        (CONFIRMED, SHIPPED),
        (SHIPPED, DELIVERED),
        (PENDING, FAILED),
        (PENDING, CANCELLED),
        (CONFIRMED, CANCELLED),
    }
)
REFUSED = [pair for pair in itertools.product(Status, repeat=2) if pair not in LIFECYCLE]


def _ids(pair: tuple[Status, Status]) -> str:
    return f"{pair[0]}->{pair[1]}"


@pytest.mark.parametrize("pair", sorted(LIFECYCLE), ids=_ids)
def test_lifecycle_transition_is_allowed(pair: tuple[Status, Status]) -> None:
    current, target = pair
    check_transition(current, target)
    assert target in ALLOWED[current]


@pytest.mark.parametrize("pair", REFUSED, ids=_ids)
def test_any_other_transition_is_refused(pair: tuple[Status, Status]) -> None:
    current, target = pair
    with pytest.raises(IllegalTransition) as refused:
        check_transition(current, target)
    assert (refused.value.current, refused.value.target) == (current.value, target.value)


def test_terminal_statuses_are_delivered_cancelled_and_failed() -> None:
    assert {DELIVERED, CANCELLED, FAILED} == TERMINAL


@pytest.mark.parametrize("status", [DELIVERED, CANCELLED, FAILED])
def test_terminal_status_has_no_exit(status: Status) -> None:
    assert ALLOWED[status] == frozenset()


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(ALLOWED) == set(Status)


def test_refusal_says_what_the_order_is_and_what_it_cannot_become() -> None:
    with pytest.raises(IllegalTransition, match="delivered cannot become pending"):
        check_transition(DELIVERED, PENDING)

"""Who may do what to whose orders (no I/O): the rules the API enforces, in one place."""

from __future__ import annotations

import uuid

import pytest

from app.domain.errors import Forbidden, InvalidInput
from app.domain.principal import Principal, Scope

ALICE, BOB = uuid.uuid4(), uuid.uuid4()
CUSTOMER = Principal(str(ALICE), ALICE, frozenset({Scope.READ, Scope.WRITE}))
READER = Principal(str(ALICE), ALICE, frozenset({Scope.READ}))
STAFF = Principal("ops", None, frozenset({Scope.ADMIN}))


def test_scopes() -> None:
    assert CUSTOMER.may(Scope.WRITE) and not READER.may(Scope.WRITE)
    assert not CUSTOMER.may(Scope.ADMIN)
    assert all(STAFF.may(scope) for scope in Scope)  # staff may do everything


def test_a_customer_reaches_its_own_orders_only() -> None:
    assert CUSTOMER.reaches(ALICE) and not CUSTOMER.reaches(BOB)
    assert STAFF.reaches(ALICE) and STAFF.reaches(BOB)


def test_a_listing_is_limited_to_the_caller() -> None:
    assert CUSTOMER.listing_filter(None) == ALICE
    assert CUSTOMER.listing_filter(ALICE) == ALICE
    with pytest.raises(Forbidden):
        CUSTOMER.listing_filter(BOB)
    assert STAFF.listing_filter(None) is None and STAFF.listing_filter(BOB) == BOB


def test_a_new_order_is_the_callers_own() -> None:
    assert CUSTOMER.owner_of_new_order(None) == ALICE
    assert CUSTOMER.owner_of_new_order(ALICE) == ALICE
    with pytest.raises(Forbidden):
        CUSTOMER.owner_of_new_order(BOB)
    assert STAFF.owner_of_new_order(BOB) == BOB
    with pytest.raises(InvalidInput):
        STAFF.owner_of_new_order(None)


def test_a_customer_without_a_customer_id_cannot_exist() -> None:
    """None means "no filter" to a listing: a customer must never carry it."""
    with pytest.raises(ValueError, match="must name its customer"):
        Principal("alice", None, frozenset({Scope.READ}))


def test_idempotency_and_actor_namespaces() -> None:
    assert CUSTOMER.key == f"sub:{ALICE}" and STAFF.key == "sub:ops"
    assert (CUSTOMER.actor, STAFF.actor) == (f"customer:{ALICE}", "staff:ops")

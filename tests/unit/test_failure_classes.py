"""Which failures are the world being down (wait, retry) and which are the record's own
(poison, to the DLQ): driver errors by SQLSTATE at the one seam, then the loop's verdict."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DBAPIError

from app.db.errors import translate
from app.domain.errors import InvalidInput, Refused, Unavailable
from app.events.cloudevents import PoisonMessage
from consumer.failures import Verdict, classify, reason


def driver_error(sqlstate: str, message: str = "it went wrong") -> DBAPIError:
    original = errors.lookup(sqlstate)(message)
    return DBAPIError("INSERT …", {}, original)


@pytest.mark.parametrize(
    ("sqlstate", "name"),
    [
        ("08006", "connection failure"),
        ("08001", "cannot connect"),
        ("40001", "serialization failure"),
        ("40P01", "deadlock"),
        ("53300", "too many connections"),
        ("53100", "disk full"),
        ("57P01", "admin shutdown"),
        ("57P03", "cannot connect now"),
        ("57014", "statement timeout"),
        ("58030", "I/O error"),
        ("55P03", "lock not available"),
        ("25006", "read-only transaction (a standby after failover)"),
    ],
)
def test_infrastructure_failures_are_outages(sqlstate: str, name: str) -> None:
    translated = translate(driver_error(sqlstate, name))
    assert isinstance(translated, Unavailable)
    assert classify(translated) == "outage"


@pytest.mark.parametrize(
    ("sqlstate", "name"),
    [
        ("54000", "index row requires 8216 bytes, maximum size is 8191"),
        ("54001", "stack depth limit exceeded"),
        ("22001", "value too long"),
        ("22P02", "invalid text representation"),
        ("22003", "numeric value out of range"),
        ("23505", "duplicate key"),
        ("23514", "check constraint"),
        ("23503", "foreign key"),
        ("P0001", "raised by a trigger"),
        ("42703", "undefined column"),
    ],
)
def test_data_and_limit_errors_are_poison(sqlstate: str, name: str) -> None:
    translated = translate(driver_error(sqlstate, name))
    assert isinstance(translated, Refused)
    assert translated.sqlstate == sqlstate
    assert classify(translated) == "poison"
    assert reason(translated) == f"the database refused it (SQLSTATE {sqlstate}): {name}"


def test_a_program_limit_is_not_an_outage_although_psycopg_calls_it_operational() -> None:
    error = driver_error("54000")
    assert isinstance(error.orig, psycopg.OperationalError)
    assert not isinstance(translate(error), Unavailable)


def test_untranslatable_nul_is_invalid_input_and_poison() -> None:
    translated = translate(driver_error("22P05", "unsupported Unicode escape sequence"))
    assert isinstance(translated, InvalidInput)
    assert classify(translated) == "poison"


def test_a_lost_connection_without_sqlstate_is_an_outage() -> None:
    error = DBAPIError("SELECT 1", {}, psycopg.OperationalError("server closed the connection"))
    assert isinstance(translate(error), Unavailable)


def test_a_driver_error_without_sqlstate_is_unforeseen() -> None:
    error = DBAPIError("SELECT 1", {}, psycopg.InterfaceError("cursor already closed"))
    translated = translate(error)
    assert translated is error
    assert classify(translated) == "unforeseen"


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (PoisonMessage("value is not JSON"), "poison"),
        (RecursionError("too deep"), "unforeseen"),
        (RuntimeError("a bug"), "unforeseen"),
        (Unavailable("down"), "outage"),
    ],
)
def test_verdicts(error: BaseException, verdict: Verdict) -> None:
    assert classify(error) == verdict


def test_reason_is_one_bounded_line() -> None:
    text = reason(RuntimeError("line one\nline two " + "x" * 5000))
    assert "\n" not in text
    assert text.startswith("RuntimeError: line one line two")
    assert len(text) == 1000

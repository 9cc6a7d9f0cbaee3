"""Signed cursors and W3C trace context (no I/O): what is accepted, what is refused or dropped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.db.orders import Position
from app.services.cursor import ForgedCursor, decode_cursor, encode_cursor
from app.telemetry import valid_traceparent, valid_tracestate

SECRET = "x" * 32
HERE = Position(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4())
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_cursor_round_trips_for_its_caller() -> None:
    cursor = encode_cursor(HERE, secret=SECRET, principal="sub:a")
    assert decode_cursor(cursor, secret=SECRET, principal="sub:a") == HERE


@pytest.mark.parametrize(
    ("secret", "principal"), [("y" * 32, "sub:a"), (SECRET, "sub:b")], ids=["key", "caller"]
)
def test_a_cursor_for_another_key_or_caller_is_refused(secret: str, principal: str) -> None:
    cursor = encode_cursor(HERE, secret=SECRET, principal="sub:a")
    with pytest.raises(ForgedCursor):
        decode_cursor(cursor, secret=secret, principal=principal)


def test_an_altered_cursor_is_refused() -> None:
    cursor = encode_cursor(HERE, secret=SECRET, principal="sub:a")
    payload, mac = cursor.split(".")
    later = encode_cursor(Position(datetime(2030, 1, 1, tzinfo=UTC), HERE.id), secret="z" * 32,
                          principal="sub:a").split(".")[0]  # fmt: skip
    for bad in (f"{later}.{mac}", f"{payload}.", payload, "", "...", "%%%.%%%", "a" * 200):
        with pytest.raises(ForgedCursor):
            decode_cursor(bad, secret=SECRET, principal="sub:a")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([TRACEPARENT], TRACEPARENT),
        ([f" {TRACEPARENT} "], TRACEPARENT),
        ([TRACEPARENT, TRACEPARENT], None),  # twice: which one?
        ([TRACEPARENT.upper()], None),
        (["01" + TRACEPARENT[2:]], None),  # a version we cannot vouch for
        (["00-" + "0" * 32 + "-b7ad6b7169203331-01"], None),
        (["00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01"], None),
        ([TRACEPARENT + "-extra"], None),
        (["x" * 10_000], None),
        ([], None),
    ],
)
def test_traceparent(values: list[str], expected: str | None) -> None:
    assert valid_traceparent(values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["congo=t61rcWkgMzE"], "congo=t61rcWkgMzE"),
        (["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (["rojo=1", "congo=2"], "rojo=1,congo=2"),
        (["tenant@vendor=v"], "tenant@vendor=v"),
        (["Upper=1"], None),
        (["novalue"], None),
        (["k=a,b"], None),
        (["k=" + "v" * 257], None),
        ([",".join(f"k{i}=v" for i in range(33))], None),
        (["k=v\u00e9"], None),
        ([",".join(f"k{i}=" + "v" * 200 for i in range(3))], None),  # over 512 characters
        ([""], None),
    ],
)
def test_tracestate(values: list[str], expected: str | None) -> None:
    assert valid_tracestate(values) == expected

"""Facts that Python and the migrations both state, checked against the migrated database.

Alembic owns the schema; where code repeats one of its facts (a shard count, a lock
class, a status list, an input rule), these tests hold the two together instead of a
"keep them equal" comment. Each asks the database itself: a catalogue, or the verdict
of a constraint at the boundary the Python side draws.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import psycopg
import pytest

from app.db.locks import IDEMPOTENCY_KEY, OUTBOX_SHARDS
from app.domain.money import MAX_PRICE
from app.domain.order import EMAIL_PATTERN, FIRST_VERSION, NewItem
from app.domain.status import Status

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def sql(database_url: str) -> Iterator[Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def scalar(sql: Connection, query: str, *params: object) -> object:
    row = sql.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_the_outbox_has_as_many_shards_as_the_relays_lease(sql: Connection) -> None:
    assert OUTBOX_SHARDS & (OUTBOX_SHARDS - 1) == 0  # a power of two: the mask is exact
    expression = scalar(
        sql,
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
        " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        " WHERE d.adrelid = 'outbox'::regclass AND a.attname = 'shard'",
    )
    assert expression == f"(hashtext(key) & {OUTBOX_SHARDS - 1})"
    assert scalar(sql, "SELECT count(*) FROM relay_leases") == OUTBOX_SHARDS
    assert scalar(sql, "SELECT max(shard) FROM relay_leases") == OUTBOX_SHARDS - 1


def test_a_new_order_in_python_is_the_databases_default(sql: Connection) -> None:
    """The API writes a new order's status and version itself (app.domain.order.placed)
    rather than reading back the defaults: they must be the same."""
    rows = sql.execute(
        "SELECT column_name, column_default FROM information_schema.columns"
        " WHERE table_name = 'orders' AND column_name IN ('status', 'version')"
    ).fetchall()
    defaults = {str(name): str(default) for name, default in rows}
    assert defaults == {"status": f"'{Status.PENDING.value}'::text", "version": str(FIRST_VERSION)}


def advisory_classes_in_functions(sql: Connection) -> set[int]:
    """The lock classes our database functions and triggers take (the two-key form)."""
    sources = sql.execute(
        "SELECT prosrc FROM pg_proc WHERE prosrc LIKE '%advisory%'"
        " AND pronamespace = 'public'::regnamespace"
    ).fetchall()
    found = re.findall(r"pg_advisory\w*lock\w*\(\s*(\d+)\s*,", " ".join(str(s) for (s,) in sources))
    return {int(number) for number in found}


def test_our_lock_classes_are_not_the_databases_own(sql: Connection) -> None:
    in_functions = advisory_classes_in_functions(sql)
    # What an outbox insert really holds until commit, as pg_locks shows it: the scan above
    # must see it, or it proves nothing.
    with sql.transaction(force_rollback=True):
        sql.execute(
            "INSERT INTO outbox (id, topic, key, event_type, subject, payload, headers)"
            " VALUES (%s, 'orders', 'k', 'order.created', 's', '{}', '{}')",
            (uuid.uuid4(),),
        )
        held = {
            int(classid)
            for (classid,) in sql.execute(
                "SELECT classid::bigint FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid() AND objsubid = 2"
            ).fetchall()
        }
    assert held and held <= in_functions
    assert IDEMPOTENCY_KEY not in in_functions


def test_the_status_list_is_the_databases(sql: Connection) -> None:
    definition = str(
        scalar(
            sql,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conname = 'orders_status_known'",
        )
    )
    assert set(re.findall(r"'(\w+)'::text", definition)) == {status.value for status in Status}


EMAILS = [
    "customer@example.com",
    "a.b+tag@sub.example.co",
    "o'hara@example.ie",
    "x@a-b.example",
    "a@b",
    "a b@example.com",
    "@example.com",
    "a@-x.com",
    "a@x-.com",
    "a@example.com\n",
    "a@exämple.com",
    "ä@example.com",
    "a@" + "x" * 64 + ".com",
    "x" * 242 + "@example.com",  # 254 characters: the longest allowed
    "x" * 243 + "@example.com",
]


def python_accepts_email(email: str) -> bool:
    return len(email) <= 254 and re.match(EMAIL_PATTERN, email) is not None


def database_accepts_email(sql: Connection, email: str) -> bool:
    try:
        sql.execute("SELECT CAST(%s AS email_address)", (email,))
    except psycopg.errors.CheckViolation:
        return False
    return True


@pytest.mark.parametrize("email", EMAILS, ids=range(len(EMAILS)))
def test_python_and_the_database_agree_on_every_email(sql: Connection, email: str) -> None:
    assert python_accepts_email(email) == database_accepts_email(sql, email)


def item_limits() -> dict[str, msgspec.inspect.Type]:
    fields = msgspec.inspect.type_info(NewItem).fields  # type: ignore[union-attr]
    return {
        field.name: getattr(field.type, "type", field.type)  # through Annotated metadata
        for field in fields
    }


def item_refused_by(sql: Connection, *, name: str, price: Decimal, quantity: int) -> str | None:
    """The constraint that refuses such an item (None: it is stored)."""
    try:
        with sql.transaction(force_rollback=True):
            order_id = uuid.uuid4()
            sql.execute(
                "INSERT INTO orders (id, customer_id, email, currency)"
                " VALUES (%s, %s, 'a@example.com', 'USD')",
                (order_id, uuid.uuid4()),
            )
            sql.execute(
                "INSERT INTO order_items (order_id, position, product_id, name, price, quantity)"
                " VALUES (%s, 0, %s, %s, %s, %s)",
                (order_id, uuid.uuid4(), name, price, quantity),
            )
    except psycopg.errors.CheckViolation as refused:
        return refused.diag.constraint_name
    return None


def test_item_limits_are_the_databases(sql: Connection) -> None:
    limits = item_limits()
    name, quantity = limits["name"], limits["quantity"]
    assert isinstance(name, msgspec.inspect.StrType) and name.max_length is not None
    assert isinstance(quantity, msgspec.inspect.IntType) and quantity.le and quantity.ge
    ok = {"name": "n" * name.max_length, "price": MAX_PRICE, "quantity": quantity.le}
    assert item_refused_by(sql, **ok) is None  # each at the edge Python draws: stored
    assert item_refused_by(sql, **{**ok, "name": "n" * (name.max_length + 1)}) == (
        "order_items_name_length"
    )
    assert item_refused_by(sql, **{**ok, "price": MAX_PRICE + Decimal("0.01")}) == (
        "order_items_price_valid"
    )
    assert item_refused_by(sql, **{**ok, "quantity": quantity.le + 1}) == (
        "order_items_quantity_valid"
    )
    assert item_refused_by(sql, **{**ok, "quantity": quantity.ge - 1}) == (
        "order_items_quantity_valid"
    )

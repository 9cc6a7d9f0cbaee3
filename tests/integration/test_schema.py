"""The schema's own guarantees, checked with plain SQL as any writer would meet them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from app.config import sqlalchemy_url
from app.db.tables import metadata
from tests.support.servers import PostgresServer, downgrade, migrate

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def sql(database_url: str) -> Iterator[Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def insert_order(
    conn: Connection, *, total: str = "149.97", email: str = "a@example.com"
) -> uuid.UUID:
    order_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO orders (id, customer_id, email, total_amount, currency)"
        " VALUES (%s, %s, %s, %s, 'USD')",
        (order_id, uuid.uuid4(), email, Decimal(total)),
    )
    return order_id


def insert_item(
    conn: Connection, order_id: uuid.UUID, position: int, price: str, quantity: int
) -> None:
    conn.execute(
        "INSERT INTO order_items (order_id, position, product_id, name, price, quantity)"
        " VALUES (%s, %s, %s, 'Thing', %s, %s)",
        (order_id, position, uuid.uuid4(), Decimal(price), quantity),
    )


def test_an_order_with_items_matching_its_total_commits(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="149.97")
        insert_item(sql, order_id, 0, "49.99", 3)
    assert sql.execute("SELECT total_amount FROM orders WHERE id = %s", (order_id,)).fetchone() == (
        Decimal("149.97"),
    )


def test_an_order_without_items_is_refused_at_commit(sql: Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused, sql.transaction():
        insert_order(sql)
    assert refused.value.diag.constraint_name == "orders_have_items"
    assert sql.execute("SELECT count(*) FROM orders").fetchone() == (0,)


def test_the_check_is_deferred_so_items_may_follow_their_order(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="10.00")
        assert sql.execute("SELECT count(*) FROM order_items").fetchone() == (0,)
        insert_item(sql, order_id, 0, "10.00", 1)
    assert sql.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_total_follows_the_items(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="0")  # wrong on purpose: recomputed from the items
        insert_item(sql, order_id, 0, "49.99", 3)
        insert_item(sql, order_id, 1, "0.01", 1)
    total = sql.execute("SELECT total_amount FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert total == (Decimal("149.98"),)
    with sql.transaction():
        sql.execute(
            "UPDATE order_items SET quantity = 1 WHERE order_id = %s AND position = 0", (order_id,)
        )
    total = sql.execute("SELECT total_amount FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert total == (Decimal("50.00"),)


def test_a_total_edited_by_hand_is_refused(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="10.00")
        insert_item(sql, order_id, 0, "10.00", 1)
    with pytest.raises(psycopg.errors.CheckViolation) as refused, sql.transaction():
        sql.execute("UPDATE orders SET total_amount = 1 WHERE id = %s", (order_id,))
    assert refused.value.diag.constraint_name == "orders_total_matches_items"


def test_removing_the_last_item_is_refused(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="10.00")
        insert_item(sql, order_id, 0, "10.00", 1)
    with pytest.raises(psycopg.errors.CheckViolation) as refused, sql.transaction():
        sql.execute("DELETE FROM order_items WHERE order_id = %s", (order_id,))
    assert refused.value.diag.constraint_name == "orders_have_items"


def test_updated_at_is_the_writers_if_set_now_if_not_and_never_goes_back(
    sql: Connection,
) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="10.00")
        insert_item(sql, order_id, 0, "10.00", 1)

    def updated_at() -> object:
        return sql.execute("SELECT updated_at FROM orders WHERE id = %s", (order_id,)).fetchone()

    later = "2999-01-01T00:00:00.000001Z"
    sql.execute("UPDATE orders SET version = 2, updated_at = %s WHERE id = %s", (later, order_id))
    (kept,) = sql.execute("SELECT %s::timestamptz", (later,)).fetchone() or (None,)
    assert updated_at() == (kept,), "a time the writer sets is kept"
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        sql.execute("UPDATE orders SET updated_at = updated_at - interval '1 microsecond'")
    assert refused.value.diag.constraint_name == "orders_updated_at_forward"
    sql.execute("UPDATE orders SET version = 3 WHERE id = %s", (order_id,))
    (stamped,) = updated_at() or (None,)
    assert stamped != kept, "an UPDATE that sets no time gets the database's now()"


def test_deleting_an_order_takes_its_items(sql: Connection) -> None:
    with sql.transaction():
        order_id = insert_order(sql, total="10.00")
        insert_item(sql, order_id, 0, "10.00", 1)
    sql.execute("DELETE FROM orders WHERE id = %s", (order_id,))
    assert sql.execute("SELECT count(*) FROM order_items").fetchone() == (0,)


@pytest.mark.parametrize(
    "email", ["nope", "a@b", "a b@example.com", "@example.com", "a@-x.com", "x" * 250 + "@e.co"]
)
def test_the_database_validates_email(sql: Connection, email: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused, sql.transaction():
        insert_order(sql, email=email)
    assert refused.value.diag.constraint_name == "email_address_valid"


@pytest.mark.parametrize(
    ("price", "quantity", "constraint"),
    [
        ("-1.00", 1, "order_items_price_valid"),
        ("1.001", 1, "order_items_price_valid"),
        ("1.00", 0, "order_items_quantity_valid"),
    ],
)
def test_item_rules(sql: Connection, price: str, quantity: int, constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused, sql.transaction():
        order_id = insert_order(sql, total="1.00")
        insert_item(sql, order_id, 0, price, quantity)
    assert refused.value.diag.constraint_name == constraint


def test_seed_indexes_exist(sql: Connection) -> None:
    names = {
        row[0]
        for row in sql.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    assert {
        "idx_orders_customer_id",
        "idx_orders_status",
        "idx_orders_created_at",
        "idx_order_items_order_id",
    } <= names


def test_order_statistics_and_view(sql: Connection) -> None:
    for total, quantity in (("10.00", 1), ("30.00", 3)):
        with sql.transaction():
            order_id = insert_order(sql, total=total)
            insert_item(sql, order_id, 0, "10.00", quantity)
    stats = sql.execute("SELECT * FROM get_order_statistics()").fetchall()
    assert len(stats) == 1
    status, currency, count, total, average, first, last = stats[0]
    assert (status, currency, count, total, average) == (
        "pending",
        "USD",
        2,
        Decimal("40.00"),
        Decimal("20.00"),
    )
    assert first is not None and last is not None and first <= last
    rows = sql.execute(
        "SELECT item_count, total_quantity FROM orders_with_stats ORDER BY total_amount"
    ).fetchall()
    assert rows == [(1, 1), (1, 3)]


def test_query_shapes_match_the_migrated_schema(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        found = inspect(engine)
        for table in metadata.sorted_tables:
            columns = {column["name"] for column in found.get_columns(table.name)}
            assert columns == {column.name for column in table.columns}, table.name
    finally:
        engine.dispose()


def test_migrations_go_down_and_up_again(postgres: PostgresServer) -> None:
    name = f"m_{uuid.uuid4().hex[:12]}"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.url(name)
    try:
        migrate(url)
        downgrade(url)
        with psycopg.connect(url) as conn:
            relations = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'"
            ).fetchone()
            functions = conn.execute(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public'"
            ).fetchone()
            types = conn.execute(
                "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
                " WHERE n.nspname = 'public' AND t.typtype = 'd'"
            ).fetchone()
            assert (relations, functions, types) == ((0,), (0,), (0,))
        migrate(url)
    finally:
        with postgres.admin() as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

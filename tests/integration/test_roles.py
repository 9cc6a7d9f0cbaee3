"""Each process's database user can do its own work and nothing else (migration 0002).

Every denial is proven by attempting it as that process's login user, the way
a compromised or buggy process would, not by reading the catalog.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest

from tests.support.servers import PostgresServer, downgrade, migrate

Connection = psycopg.Connection[tuple[object, ...]]

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")
EVENT = uuid.UUID("00000000-0000-4000-8000-000000000002")


@pytest.fixture
def seeded(database_url: str) -> str:
    """A database with one order and one unpublished outbox row (written as the owner)."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO orders (id, customer_id, email, total_amount, currency)"
            " VALUES (%s, gen_random_uuid(), 'a@example.com', 10, 'USD')",
            (ORDER,),
        )
        conn.execute(
            "INSERT INTO order_items (order_id, position, product_id, name, price, quantity)"
            " VALUES (%s, 0, gen_random_uuid(), 'Thing', 10, 1)",
            (ORDER,),
        )
        conn.execute(
            "INSERT INTO outbox (id, topic, key, event_type, subject, payload)"
            " VALUES (%s, 'orders', 'k', 'order.created', %s, '{}')",
            (EVENT, str(ORDER)),
        )
    return database_url


@contextmanager
def login(postgres: PostgresServer, database_url: str, process: str) -> Iterator[Connection]:
    with psycopg.connect(postgres.process_url(database_url, process), autocommit=True) as conn:
        yield conn


def refused(conn: Connection, statement: str, *params: object) -> bool:
    """Whether `statement` fails for lack of privilege (any other failure is re-raised)."""
    try:
        conn.execute(statement, params or None)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


OWN_WORK = {
    "relay": [
        ("SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED", ()),
        ("UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = %s", (EVENT,)),
        ("SELECT outbox_prune(%s, 10)", (timedelta(0),)),
        ("SELECT unpublished FROM outbox_backlog", ()),
    ],
    "api": [
        ("SELECT id FROM orders WHERE id = %s FOR UPDATE", (ORDER,)),
        ("UPDATE orders SET status = 'cancelled', version = version + 1 WHERE id = %s", (ORDER,)),
        ("SELECT * FROM order_items WHERE order_id = %s", (ORDER,)),
        ("SELECT * FROM order_status_history WHERE order_id = %s", (ORDER,)),
        ("DELETE FROM idempotency_keys WHERE expires_at < now()", ()),
        (
            "INSERT INTO outbox (id, topic, key, event_type, subject, payload)"
            " VALUES (gen_random_uuid(), 'orders', 'k', 'order.cancelled', 's', '{}')",
            (),
        ),
    ],
    "consumer": [
        ("SELECT total_amount, status FROM orders WHERE id = %s FOR UPDATE", (ORDER,)),
        ("UPDATE orders SET status = 'confirmed', version = version + 1 WHERE id = %s", (ORDER,)),
        (
            "INSERT INTO order_status_history (order_id, version, to_status, cause)"
            " VALUES (%s, 2, 'confirmed', 'event') RETURNING id",
            (ORDER,),
        ),
        (
            "INSERT INTO processed_events (source, event_id, event_type, outcome)"
            " VALUES ('/x', 'e1', 'order.created', 'applied') ON CONFLICT DO NOTHING"
            " RETURNING event_id",
            (),
        ),
        ("UPDATE processed_events SET outcome = 'rejected', detail = 'd'", ()),
        (
            "INSERT INTO outbox (id, topic, key, event_type, subject, payload)"
            " VALUES (gen_random_uuid(), 'orders', 'k', 'order.confirmed', 's', '{}')",
            (),
        ),
    ],
}


@pytest.mark.parametrize("process", sorted(OWN_WORK))
def test_each_process_can_do_its_own_work(
    postgres: PostgresServer, seeded: str, process: str
) -> None:
    with login(postgres, seeded, process) as conn:
        for statement, params in OWN_WORK[process]:
            conn.execute(statement, params or None)


DENIED = {
    "relay": [
        "SELECT * FROM orders",
        "SELECT * FROM order_items",
        "SELECT * FROM processed_events",
        "SELECT * FROM idempotency_keys",
        "DELETE FROM outbox",  # old rows go only through outbox_prune
        "UPDATE outbox SET payload = '{\"forged\": true}'",  # marks, never rewrites events
        "UPDATE outbox SET topic = 'elsewhere'",
        "INSERT INTO outbox (id, topic, key, event_type, subject, payload)"
        " VALUES (gen_random_uuid(), 'orders', 'k', 'order.shipped', 's', '{}')",
        "SELECT outbox_unpark(gen_random_uuid())",
    ],
    "api": [
        "UPDATE outbox SET published_at = now()",  # cannot mark
        "DELETE FROM outbox",  # cannot delete
        "SELECT outbox_prune(interval '0', 10)",  # cannot prune
        "SELECT outbox_unpark(gen_random_uuid())",
        "SELECT * FROM outbox",
        "SELECT * FROM processed_events",
        "DELETE FROM orders",
        "UPDATE orders SET email = 'b@example.com'",
    ],
    "consumer": [
        "DELETE FROM orders",
        "UPDATE orders SET total_amount = 0",  # decides from the stored total, never sets it
        "INSERT INTO orders (customer_id, email, currency)"
        " VALUES (gen_random_uuid(), 'a@b.co', 'USD')",
        "SELECT * FROM idempotency_keys",
        "SELECT reason FROM order_status_history",
        "UPDATE outbox SET published_at = now()",
        "DELETE FROM outbox",
        "DELETE FROM processed_events",
        "SELECT outbox_prune(interval '0', 10)",
    ],
}
SCHEMA_CHANGES = [
    "CREATE TABLE intruder (id int)",
    "ALTER TABLE orders ADD COLUMN intruder int",
    "ALTER TABLE outbox DISABLE TRIGGER outbox_assign_seq",
    "DROP TABLE processed_events",
    "CREATE INDEX intruder ON orders (email)",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE FUNCTION outbox_prune(retention interval, batch integer DEFAULT 1000)"
    " RETURNS integer LANGUAGE sql AS 'SELECT 0'",
    "TRUNCATE outbox",
]


@pytest.mark.parametrize("process", sorted(DENIED))
def test_each_process_is_refused_everything_else(
    postgres: PostgresServer, seeded: str, process: str
) -> None:
    with login(postgres, seeded, process) as conn:
        allowed = [s for s in DENIED[process] + SCHEMA_CHANGES if not refused(conn, s)]
    assert allowed == []


@pytest.mark.parametrize("process", ["api", "relay", "consumer"])
def test_no_process_can_take_another_role(
    postgres: PostgresServer, seeded: str, process: str
) -> None:
    others = [
        role
        for role in ("orders_api", "orders_relay", "orders_consumer", "postgres")
        if not role.endswith(process)
    ]
    with login(postgres, seeded, process) as conn:
        taken = [role for role in others if not refused(conn, f"SET ROLE {role}")]
    assert taken == []


def test_a_process_cannot_pass_its_rights_on(postgres: PostgresServer, seeded: str) -> None:
    with login(postgres, seeded, "api") as conn:
        conn.execute("GRANT SELECT ON orders TO PUBLIC")  # PostgreSQL only warns: not granted
    with login(postgres, seeded, "relay") as conn:
        assert refused(conn, "SELECT * FROM orders")


def test_the_roles_themselves_cannot_log_in(postgres: PostgresServer, database_url: str) -> None:
    prefix, _, rest = database_url.partition("://")
    url = f"{prefix}://orders_relay@{rest.partition('@')[2]}"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()


def test_a_wrong_password_is_refused(postgres: PostgresServer, database_url: str) -> None:
    if postgres.local is None:
        pytest.skip("the given server's authentication is its operator's choice")
    wrong = PostgresServer(postgres.base_url, passwords={"relay": "not-the-password"})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.process_url(database_url, "relay"), connect_timeout=5).close()


def test_downgrade_takes_the_grants_back(postgres: PostgresServer) -> None:
    name = f"r_{uuid.uuid4().hex[:12]}"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.url(name)
    try:
        migrate(url)
        downgrade(url, "0001")
        with login(postgres, url, "api") as conn:
            assert refused(conn, "SELECT * FROM orders")  # no grant left in this database
        migrate(url)
        with login(postgres, url, "api") as conn:
            conn.execute("SELECT * FROM orders")
    finally:
        with postgres.admin() as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
